"""mindset ppl, mindset eval, mindset compare."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, OverwriteOpt, console, err_console, load_model, options_from, out_option
from mindset.errors import MindsetError

if TYPE_CHECKING:
    from mindset.evaluate.steps import EvalParams, PplParams


@options_from("mindset.evaluate.steps:PplParams", exclude=("label",), names={"text_file": "--text"})
def ppl(model: str = ModelArg, device: str = DeviceOpt, dtype: str = DtypeOpt, *, params: PplParams) -> None:
    """Perplexity of a text, with a sliding window when it is longer than the context."""
    from mindset.evaluate.perplexity import perplexity
    from mindset.evaluate.steps import read_text

    body, source = read_text(params)
    loaded = load_model(model, device, dtype)
    result = perplexity(loaded, body, context=params.context, stride=params.stride, batch_size=params.batch_size, max_tokens=params.max_tokens, progress=True)
    console.print(
        f"perplexity [bold]{result.perplexity:.3f}[/] on {source}: {result.tokens:,} tokens, "
        f"window {result.context}, stride {result.stride}, {result.windows} windows"
    )


EVAL_HELP = """Score models on tasks; one table: tasks as rows, models as columns, deltas against the first.

mindset eval MODEL... --tasks capitals,arithmetic,canaries|path/to/task.yaml

mindset compare RUNDIR...  (the table again, from finished runs; RUNDIR is OUT/<model> or a recipe run)

Tasks: mindset's suites (capitals, arithmetic, canaries = modus_ponens, syllogisms, negation, copying,
counting, ordering) and lm-eval task YAML files with local data. Each model's results go to its own OUT/<name>/
(two models with the same folder name get <name> and <name>-2)
(results.json, samples.jsonl), the table to OUT/comparison.md and comparison.json.
"""


@options_from("mindset.evaluate.steps:EvalParams", shorts={"tasks": "-t"}, convert={"limit": lambda v: v or None},
              helps={"limit": "documents per task (0: all)"})
def eval_command(
    models: list[str] = typer.Argument(..., help="model specs: names, HF model folders or .gguf files"),
    out: Optional[Path] = out_option(None, "output folder (default runs/eval)"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    params: EvalParams,
) -> None:
    from mindset.evaluate.compare import table
    from mindset.fileio import atomic_folder, check_output
    from mindset.tables import rich_table

    _no_compare_model(models)
    out = check_output(out or Path("runs/eval"), overwrite)
    with atomic_folder(out, replace=overwrite) as tmp:  # nothing half-written: the folder appears when every model is scored
        data = _eval_models(models, tmp, params, device, dtype)
    headers, rows = table(data)
    console.print(rich_table("Evaluation (mean ± standard error; Δ vs the first model, * p<0.05, ** p<0.01)", headers, rows))
    console.print(f"wrote {out / 'comparison.md'} and {out / 'comparison.json'}")


def _eval_models(models: list[str], out: Path, params: EvalParams, device: str, dtype: str) -> dict:
    from mindset.evaluate.compare import comparison, write_comparison
    from mindset.evaluate.evaluation import evaluate_model, resolve_tasks, run_names, save_run

    files = resolve_tasks(params.tasks, out / "tasks", seed=params.seed, n_test=params.size)
    runs = []
    for spec, (label, folder) in zip(models, run_names(models)):
        loaded = load_model(spec, device, dtype)
        console.print(f"[bold]{loaded.source.describe()}[/]")

        def done(result) -> None:
            line = ", ".join(f"{k} {v['value']:.3f}" for k, v in result.metrics.items())
            console.print(f"  {result.task}: {line} (n={result.n}, {result.seconds:.0f} s)")

        run = evaluate_model(loaded, files, limit=params.limit, num_fewshot=params.num_fewshot, progress=True, on_task=done, warn=lambda m: err_console.print(f"[yellow]warning:[/] {m}"))
        save_run(run, out / folder, label=label)
        runs.append({**run.as_dict(), "label": label})
    data = comparison(runs)
    write_comparison(data, out)
    return data


def _no_compare_model(models: list[str]) -> None:
    """`mindset eval compare RUNDIR...` was the old spelling of `mindset compare`; say so unless a model folder is named compare."""
    if models[0] == "compare" and not Path("compare").exists():
        raise MindsetError("no model 'compare': rebuild a table from finished runs with mindset compare RUNDIR...")


def compare(
    folders: Optional[list[str]] = typer.Argument(None, help="finished runs: OUT/<model> folders of mindset eval, or recipe run folders", show_default=False),
    out: Optional[Path] = out_option(None, "folder for comparison.md and comparison.json (default: beside the first run)"),
    overwrite: bool = OverwriteOpt,
) -> None:
    """The evaluation table again, from finished runs (mindset eval's OUT/<model> folders or recipe runs)."""
    from mindset.evaluate.compare import comparison, table, write_comparison
    from mindset.evaluate.evaluation import load_run
    from mindset.fileio import check_output
    from mindset.tables import rich_table

    if not folders:
        raise MindsetError("mindset compare needs run folders: mindset compare RUNDIR...")
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
    app.command()(compare)
