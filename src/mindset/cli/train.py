"""mindset distill."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import DEFAULT_MODEL, console, err_console, load_model, options_from, out_option, params_from_options, run_folder

if TYPE_CHECKING:
    from mindset.circuits.protect_options import ProtectOptions
    from mindset.train import DistillConfig


PROTECT_PANEL = "Protected training"


@options_from("mindset.circuits.protect_options:ProtectOptions", param="protect", prefix="protect-", names={"suites": "--protect-suite"},
              panel=PROTECT_PANEL, optional=True, requires="suites")
@options_from("mindset.train.config:DistillConfig", param="config")
def distill(
    student: str = typer.Argument(..., help="the model to train: a folder (e.g. after surgery), a .gguf or a name"),
    teacher: str = typer.Option(DEFAULT_MODEL, help="the model to learn from"),
    out: Optional[Path] = out_option(None, "the run folder (default runs/<name>)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run from its latest checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="delete an existing run folder of this name and start again"),
    *,
    config: DistillConfig,
    protect: Optional[ProtectOptions],
) -> None:
    """Distill a teacher into a (modified) student with Lightning; checkpoints are resumable.

    With --protect-suite, components the suites depend on train slower and the suites are watched: a drop
    rolls back (protected training; see the README's Circuits section)."""
    from mindset.train import distill as run_distill

    runs_dir, config = _run_folder(out, config)
    device = config.device
    protect_options = protect
    student_model = load_model(student, device, "auto")
    protection = None
    if protect_options is not None:
        from mindset.circuits.protect_options import protection_from_options

        protection = protection_from_options(student_model, protect_options, progress=True)
        for note in protection.notes:
            err_console.print(f"[bold yellow]warning:[/] {note}", highlight=False)
    teacher_model = load_model(teacher, str(student_model.device), str(student_model.dtype).removeprefix("torch."))
    result = run_distill(student_model, teacher_model, config, runs_dir=runs_dir, resume=resume, protection=protection, overwrite=overwrite)
    console.print(
        f"trained {result.trainable_params:,} of {result.total_params:,} parameters for {result.steps} steps in {result.seconds:.0f} s; "
        f"student saved to [bold]{result.student_dir}[/]"
    )
    if protection is not None:
        from mindset.circuits.protect_options import canary_plot, protected_table, rollback_table, rollbacks
        from mindset.tables import rich_table

        console.print(rich_table(f"Protected components ({len(protection.protected)} of {len(protection.scales)} units)", *protected_table(protection)))
        if protection.events:
            console.print(rich_table("Rollbacks", *rollback_table(protection)))
        plot = canary_plot(protection, result.run_dir / "canaries.png")
        console.print(f"{rollbacks(protection)}; every check in [bold]{result.run_dir / 'protection.json'}[/], plot {plot.name}")


def _run_folder(out: Optional[Path], config: DistillConfig) -> tuple[Path, DistillConfig]:
    """-o OUT is the run folder itself (its name becomes the run's name); without it, --name NAME means runs/NAME."""
    default = type(config).model_fields["name"].default
    runs_dir, name = run_folder(out, None if config.name == default else config.name)
    if name is None or name == config.name:
        return runs_dir, config
    return runs_dir, params_from_options(type(config), {"name": "-o/--out"}, **(config.model_dump() | {"name": name}))


def register(app: typer.Typer) -> None:
    app.command()(distill)
