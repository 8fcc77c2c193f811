"""mindset ppl, mindset eval (and mindset eval compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, console, err_console, load_model, params_from_options
from mindset.errors import MindsetError


def ppl(
    model: str = ModelArg,
    text: Optional[Path] = typer.Option(None, "--text", help="a UTF-8 text file (default: the shipped Austen corpus)"),
    split: str = typer.Option("valid", help="corpus split when no --text: train or valid"),
    context: Optional[int] = typer.Option(None, help="window in tokens (default: model context, at most 1024)"),
    stride: Optional[int] = typer.Option(None, help="tokens between windows (default: half the window)"),
    batch_size: int = typer.Option(1, "--batch-size", help="windows per forward pass"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="score only the first N tokens"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Perplexity of a text, with a sliding window when it is longer than the context."""
    from mindset.evaluate.perplexity import perplexity
    from mindset.evaluate.steps import PplParams, read_text

    names = {"text_file": "--text", "split": "--split", "context": "--context", "stride": "--stride", "batch_size": "--batch-size", "max_tokens": "--max-tokens"}
    params = params_from_options(PplParams, names, text_file=text, split=split, context=context, stride=stride, batch_size=batch_size, max_tokens=max_tokens)
    body, source = read_text(params)
    loaded = load_model(model, device, dtype)
    result = perplexity(loaded, body, context=params.context, stride=params.stride, batch_size=params.batch_size, max_tokens=params.max_tokens, progress=True)
    console.print(
        f"perplexity [bold]{result.perplexity:.3f}[/] on {source}: {result.tokens:,} tokens, "
        f"window {result.context}, stride {result.stride}, {result.windows} windows"
    )


EVAL_HELP = """Score models on tasks; one table: tasks as rows, models as columns, deltas against the first.

mindset eval MODEL... --tasks capitals,arithmetic,canaries|path/to/task.yaml

mindset eval compare RUNDIR...  (the table again, from finished runs; RUNDIR is OUT/<model> or a recipe run)

Tasks: mindset's suites (capitals, arithmetic, canaries = modus_ponens, syllogisms, negation, copying,
counting, ordering) and lm-eval task YAML files with local data. Each model's results go to OUT/<model>/
(results.json, samples.jsonl), the table to OUT/comparison.md and comparison.json.
"""


def eval_command(
    models: list[str] = typer.Argument(..., help="model specs; or 'compare' followed by run folders"),
    tasks: str = typer.Option("capitals,arithmetic,canaries", "--tasks", "-t", help="comma-separated suites, task names or task .yaml files"),
    limit: Optional[int] = typer.Option(40, "--limit", help="documents per task (0: all)"),
    num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot", help="override each task's num_fewshot"),
    seed: int = typer.Option(0, "--seed", help="seed of the generated suites"),
    size: int = typer.Option(200, "--size", help="generated test documents per shipped task"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default runs/eval; for compare: beside the first run)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output folder (compare: its comparison files)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    if models and models[0] == "compare":
        return _compare(models[1:], out, overwrite)
    from mindset.evaluate.compare import table
    from mindset.fileio import atomic_folder, check_output
    from mindset.tables import rich_table

    if limit is not None and limit < 0:
        raise MindsetError("--limit: must be 0 (all documents) or more")
    out = check_output(out or Path("runs/eval"), overwrite)
    with atomic_folder(out, replace=overwrite) as tmp:  # nothing half-written: the folder appears when every model is scored
        data = _eval_models(models, tmp, tasks, seed, size, limit, num_fewshot, device, dtype)
    headers, rows = table(data)
    console.print(rich_table("Evaluation (mean ± standard error; Δ vs the first model, * p<0.05, ** p<0.01)", headers, rows))
    console.print(f"wrote {out / 'comparison.md'} and {out / 'comparison.json'}")


def _eval_models(models: list[str], out: Path, tasks: str, seed: int, size: int, limit, num_fewshot, device: str, dtype: str) -> dict:
    from mindset.evaluate.compare import comparison, write_comparison
    from mindset.evaluate.evaluation import evaluate_model, resolve_tasks, run_names, save_run

    files = resolve_tasks(tasks, out / "tasks", seed=seed, n_test=size)
    runs = []
    for spec, (label, folder) in zip(models, run_names(models)):
        loaded = load_model(spec, device, dtype)
        console.print(f"[bold]{loaded.source.describe()}[/]")

        def done(result) -> None:
            line = ", ".join(f"{k} {v['value']:.3f}" for k, v in result.metrics.items())
            console.print(f"  {result.task}: {line} (n={result.n}, {result.seconds:.0f} s)")

        run = evaluate_model(loaded, files, limit=limit or None, num_fewshot=num_fewshot, progress=True, on_task=done, warn=lambda m: err_console.print(f"[yellow]warning:[/] {m}"))
        save_run(run, out / folder, label=label)
        runs.append({**run.as_dict(), "label": label})
    data = comparison(runs)
    write_comparison(data, out)
    return data


def _compare(folders: list[str], out: Optional[Path], overwrite: bool = False) -> None:
    from mindset.evaluate.compare import comparison, table, write_comparison
    from mindset.evaluate.evaluation import load_run
    from mindset.fileio import check_output
    from mindset.tables import rich_table

    if not folders:
        raise MindsetError("mindset eval compare needs run folders: mindset eval compare RUNDIR...")
    runs = [load_run(f) for f in folders]
    out = out or Path(folders[0]).resolve().parent
    check_output(out / "comparison.md", overwrite)
    data = comparison(runs)
    headers, rows = table(data)
    console.print(rich_table("Comparison (mean ± standard error; Δ vs the first run, * p<0.05, ** p<0.01)", headers, rows))
    md, js = write_comparison(data, out)
    console.print(f"wrote {md} and {js}")


def register(app: typer.Typer) -> None:
    app.command()(ppl)
    app.command("eval", help=EVAL_HELP)(eval_command)
