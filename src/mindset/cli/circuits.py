"""mindset circuits map | trace | patch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ListOption, ModelArg, OverwriteOpt, console, err_console, load_model, options_from, out_option

if TYPE_CHECKING:
    from mindset.circuits.steps import CircuitsParams, PatchParams, TraceParams

circuits_app = typer.Typer(help="Which components a capability depends on: ablation maps, causal traces and activation patching.", no_args_is_help=True)


def _out(out: Optional[Path], model: str, what: str) -> Path:
    return out or Path("runs") / "circuits" / Path(model).name.removesuffix(".gguf") / what


@circuits_app.command("map")
@options_from("mindset.circuits.steps:CircuitsParams", exclude=("trace",), names={"components": "--component"},
              shorts={"suite": "-s", "granularity": "-g", "method": "-m", "components": "-c"}, defaults={"top": 20},
              convert={"limit": lambda v: v or None}, helps={"limit": "documents of the suite (0: all)", "top": "rows of the printed table"})
def map_command(
    model: str = ModelArg,
    out: Optional[Path] = out_option(None, "folder for importance.json/.md/.png (default runs/circuits/<model>/<suite>-<granularity>-<method>)"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    params: CircuitsParams,
) -> None:
    """Ablate each component and measure the drop in the suite's correct-answer log-prob and accuracy."""
    import warnings

    from mindset.circuits import ChanceWarning, importance
    from mindset.circuits.importance import estimate_alias, map_granularity
    from mindset.fileio import check_output

    loaded = load_model(model, device, dtype)
    method, estimate = estimate_alias(params.method, params.estimate)
    folder = check_output(_out(out, model, f"{Path(params.suite).stem}-{map_granularity(loaded.model, params.granularity, params.components)}-{method}"
                                    + ("-attribution" if estimate == "attribution" else "")), overwrite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ChanceWarning)
        result = importance(loaded, params.suite, params.granularity, params.method, components=params.components, limit=params.limit, seed=params.seed,
                            estimate=params.estimate, batch=params.batch, progress=True)
    for w in caught:
        if issubclass(w.category, ChanceWarning):
            err_console.print(f"[bold yellow]warning:[/] {w.message}", highlight=False)
    paths = result.save(folder)
    console.print(result.rich(params.top))
    console.print(f"map written to [bold]{paths['json']}[/], table {paths['markdown'].name}, heatmap {paths['png'].name}")


@circuits_app.command("trace")
@options_from("mindset.circuits.steps:TraceParams", shorts={"prompt": "-p"})
def trace_command(
    model: str = ModelArg,
    kinds: Optional[list[str]] = ListOption(["resid", "mlp", "attn"], "--kinds", help="states to restore: resid, mlp, attn"),
    noise: Optional[float] = typer.Option(None, "--noise", help="noise std (default: 3 x std of the subject embeddings)"),
    seed: int = typer.Option(0, "--seed", help="seed of the noise draws"),
    out: Optional[Path] = out_option(None, "folder for trace.json and trace.png (default runs/circuits/<model>/trace)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    params: TraceParams,
) -> None:
    """ROME-style causal trace: corrupt the subject, restore one state at a time, plot where the answer comes back."""
    from mindset.circuits.trace import causal_trace

    loaded = load_model(model, device, dtype)
    trace = causal_trace(loaded, params.prompt, params.subject, params.answer, kinds=tuple(kinds or ()), samples=params.samples, window=params.window,
                         noise=noise, seed=seed)
    paths = trace.save(_out(out, model, "trace"))
    console.print(trace.describe(), highlight=False)
    console.print(f"heatmap written to [bold]{paths['png']}[/]")


@circuits_app.command("patch")
@options_from("mindset.circuits.steps:PatchParams")
def patch_command(
    model: str = ModelArg,
    out: Optional[Path] = out_option(None, "folder for patch.json and patch.png (default runs/circuits/<model>/patch-<direction>)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    params: PatchParams,
) -> None:
    """Activation patching: each state from the clean run into the corrupted one (or back), scored by the logit difference."""
    from mindset.circuits.patching import patch

    loaded = load_model(model, device, dtype)
    result = patch(loaded, params.clean, params.corrupted, params.answer, params.wrong, direction=params.direction, what=params.what, batch=params.batch)
    paths = result.save(_out(out, model, f"patch-{params.direction}"))
    console.print(result.describe(), highlight=False)
    console.print(f"heatmap written to [bold]{paths['png']}[/], numbers in {paths['json'].name}")


def register(app: typer.Typer) -> None:
    app.add_typer(circuits_app, name="circuits")
