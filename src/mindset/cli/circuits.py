"""mindset circuits map | trace."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, console, err_console, load_model

circuits_app = typer.Typer(help="Which components a capability depends on: ablation maps and causal traces.", no_args_is_help=True)


def _out(out: Optional[Path], model: str, what: str) -> Path:
    return out or Path("runs") / "circuits" / Path(model).name.removesuffix(".gguf") / what


@circuits_app.command("map")
def map_command(
    model: str = ModelArg,
    suite: str = typer.Option("capitals", "--suite", "-s", help="a shipped task (capitals, ordering, modus_ponens, ...) or an lm-eval task .yaml"),
    granularity: str = typer.Option("layer", "--granularity", "-g", help="layer, mlp, attn or head (head: one run per head, slow)"),
    method: str = typer.Option("zero", "--method", "-m", help="zero, mean or resample ablation"),
    components: Optional[list[str]] = typer.Option(None, "--component", "-c", help="measure only these (repeatable): L3, L3.attn, L3.mlp, L3.H2"),
    limit: int = typer.Option(20, "--limit", help="documents of the suite"),
    top: int = typer.Option(20, "--top", help="rows of the printed table"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for importance.json/.md/.png (default runs/circuits/<model>/<suite>-<granularity>-<method>)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing map in the output folder"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Ablate each component and measure the drop in the suite's correct-answer log-prob and accuracy."""
    import warnings

    from mindset.circuits import ChanceWarning, importance
    from mindset.circuits.importance import map_granularity
    from mindset.fileio import check_output

    loaded = load_model(model, device, dtype)
    folder = check_output(_out(out, model, f"{Path(suite).stem}-{map_granularity(loaded.model, granularity, components)}-{method}"), overwrite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ChanceWarning)
        result = importance(loaded, suite, granularity, method, components=components, limit=limit or None, seed=seed, progress=True)
    for w in caught:
        if issubclass(w.category, ChanceWarning):
            err_console.print(f"[bold yellow]warning:[/] {w.message}", highlight=False)
    paths = result.save(folder)
    console.print(result.rich(top))
    console.print(f"map written to [bold]{paths['json']}[/], table {paths['markdown'].name}, heatmap {paths['png'].name}")


@circuits_app.command("trace")
def trace_command(
    model: str = ModelArg,
    prompt: str = typer.Option(..., "--prompt", "-p", help="the prompt, e.g. 'The capital of France is'"),
    subject: str = typer.Option(..., "--subject", help="the part of the prompt to corrupt, e.g. France"),
    answer: str = typer.Option(..., "--answer", help="the expected continuation, e.g. ' Paris' (its first token is traced)"),
    kinds: str = typer.Option("resid,mlp,attn", "--kinds", help="comma-separated: resid, mlp, attn"),
    samples: int = typer.Option(10, "--samples", help="noise draws"),
    window: int = typer.Option(10, "--window", help="layers restored together for mlp/attn (ROME's 10)"),
    noise: Optional[float] = typer.Option(None, "--noise", help="noise std (default: 3 x std of the subject embeddings)"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for trace.json and trace.png (default runs/circuits/<model>/trace)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """ROME-style causal trace: corrupt the subject, restore one state at a time, plot where the answer comes back."""
    from mindset.circuits.trace import causal_trace

    loaded = load_model(model, device, dtype)
    kind_list = tuple(k.strip() for k in kinds.split(",") if k.strip())
    trace = causal_trace(loaded, prompt, subject, answer, kinds=kind_list, samples=samples, window=window, noise=noise, seed=seed)
    paths = trace.save(_out(out, model, "trace"))
    console.print(trace.describe(), highlight=False)
    console.print(f"heatmap written to [bold]{paths['png']}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(circuits_app, name="circuits")
