"""`mindset run RECIPE.yaml`: validate everything, then run the steps in order, saving results after each."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

import mindset
from mindset.configfile import load_yaml, validate
from mindset.errors import MindsetError
from mindset.fileio import atomic_write_json, atomic_write_text, check_output
from mindset.recipes.config import RecipeConfig, plan_steps
from mindset.runcontext import RunContext


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def run_recipe(
    path: str | Path,
    *,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    device: str | None = None,
    console: Console | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> RunResult:
    """Run a recipe into runs_dir/<name>/, refusing an existing run folder unless `overwrite`.

    With `overwrite` the folder is not emptied first: each step replaces its own outputs, so a distill step
    with `resume: true` continues from the checkpoints of the run before.
    """
    path = Path(path)
    doc = load_yaml(path)
    if doc.data is None:
        raise MindsetError(f"{path}: the file is empty; a recipe is a mapping with model and steps")
    config = validate(RecipeConfig, doc.data, doc)
    steps = plan_steps(config, doc)  # every step name and parameter is checked before any work starts
    run_name = name or config.name or path.stem
    run_dir = check_output(Path(runs_dir) / run_name, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config.model_dump(exclude={"steps"}) | {
        "name": run_name,
        "device": device or config.device,
        "steps": [{s.name: s.params.model_dump(mode="json")} for s in steps],
    }
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))

    console = console or Console()
    ctx = RunContext(run_dir, config.model, device or config.device, config.dtype, console=console, progress=progress)
    started = datetime.datetime.now().astimezone()
    ctx.metrics["run"] = {"recipe": str(path), "name": run_name, "started": started.isoformat(timespec="seconds"), "mindset": mindset.__version__}

    def save(status: str) -> None:
        ctx.metrics["run"]["status"] = status
        atomic_write_json(run_dir / "metrics.json", ctx.metrics)
        atomic_write_text(run_dir / "report.md", _report(run_name, ctx, status))

    for index, step in enumerate(steps, 1):
        console.rule(f"[bold]step {index}/{len(steps)}: {step.name}")
        begin = time.perf_counter()
        try:
            result = step.function(ctx, step.params)
        except BaseException as err:
            reason = "interrupted (Ctrl-C)" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
            save(f"failed in step {index} ({step.name}): {reason}")
            raise
        ctx.metrics[step.key] = {**(result or {}), "seconds": round(time.perf_counter() - begin, 2)}
        save(f"running: {index} of {len(steps)} steps done")
    save("completed")
    console.print(f"report: [bold]{run_dir / 'report.md'}[/]")
    return RunResult(run_dir, ctx.metrics)


def _report(run_name: str, ctx: RunContext, status: str) -> str:
    run = ctx.metrics["run"]
    header = [f"# {run_name}", ""]
    header.append(f"- recipe: `{run['recipe']}`, started {run['started']}, mindset {run['mindset']}")
    if ctx._loaded is not None:
        loaded = ctx._loaded
        header.append(f"- model: {loaded.source.describe()}; {loaded.device}, {str(loaded.dtype).removeprefix('torch.')}")
    header.append(f"- status: {status}")
    return "\n".join(header) + "\n\n" + "\n".join(ctx.report)
