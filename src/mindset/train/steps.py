"""Recipe step `distill`: train the current (modified) model against the recipe's original model.

This is the step without protection; `mindset.circuits.steps.distill_step` (the one the registry names)
adds the `protect:` field and calls `run_distill` here with a protection, so train never imports circuits.
"""

from __future__ import annotations

from pydantic import Field

from mindset.runcontext import RunContext
from mindset.train.config import DistillConfig
from mindset.train.distill import DistillResult, distill
from mindset.train.protection import Protection


class DistillParams(DistillConfig):
    name: str = Field("distill", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="sub-folder of the run folder")
    teacher: str | None = Field(None, description="teacher model spec (default: the recipe's model, before any surgery)")
    resume: bool = Field(False, description="continue from the latest checkpoint in the run folder")


def distill_step(ctx: RunContext, params: DistillParams) -> dict:
    return run_distill(ctx, params)[0]


def run_distill(ctx: RunContext, params: DistillParams, protection: Protection | None = None) -> tuple[dict, DistillResult]:
    """Load the teacher, distill into the current model, add the report's section; (metrics, result)."""
    from mindset.models import load

    teacher_spec = params.teacher or ctx.model_spec
    ctx.console.print(f"teacher: [bold]{teacher_spec}[/]")
    teacher = load(teacher_spec, device=ctx.loaded.device, dtype=ctx.loaded.dtype)
    config = DistillConfig(**params.model_dump(include=set(DistillConfig.model_fields)))
    result = distill(ctx.loaded, teacher, config, runs_dir=ctx.run_dir, resume=params.resume, progress=ctx.progress, protection=protection,
                     overwrite=True)  # a recipe run folder is claimed once, by `mindset run`
    del teacher
    metrics = result.metrics
    rows = [
        ["trainable parameters", f"{result.trainable_params:,} of {result.total_params:,} ({100 * result.trainable_params / result.total_params:.2f}%)"],
        ["steps", f"{result.steps} x {config.batch_size * config.grad_accum} blocks of {config.seq_len} tokens"],
        ["time", f"{result.seconds:.0f} s"],
        *[[name, f"{value:.4g}"] for name, value in sorted(metrics.items())],
    ]
    ctx.add_section(f"Distillation from {teacher_spec}", f"Checkpoints, TensorBoard logs and the student are in `{result.run_dir}`.")
    ctx.add_table("Distillation", ["", "value"], rows)
    out = {"steps": result.steps, "trainable_params": result.trainable_params, "total_params": result.total_params, "seconds": result.seconds, **metrics}
    return out, result
