"""Recipe step `distill`: train the current (modified) model against the recipe's original model."""

from __future__ import annotations

from pydantic import Field

from mindset.circuits.protect_options import ProtectOptions, protection_from_options
from mindset.recipes.context import RunContext
from mindset.train.config import DistillConfig
from mindset.train.distill import distill


class DistillParams(DistillConfig):
    name: str = Field("distill", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="sub-folder of the run folder")
    teacher: str | None = Field(None, description="teacher model spec (default: the recipe's model, before any surgery)")
    resume: bool = Field(False, description="continue from the latest checkpoint in the run folder")
    protect: ProtectOptions | None = Field(
        None, description="protected training: {suites: [...], granularity, threshold, lr_scale, l2, check_every, max_drop, limit, ...}")


def distill_step(ctx: RunContext, params: DistillParams) -> dict:
    from mindset.models import load

    protection = None
    if params.protect is not None:
        protection = protection_from_options(ctx.loaded, params.protect, progress=ctx.progress)
        for note in protection.notes:
            ctx.console.print(f"warning: {note}")
    teacher_spec = params.teacher or ctx.model_spec
    ctx.console.print(f"teacher: [bold]{teacher_spec}[/]")
    teacher = load(teacher_spec, device=ctx.loaded.device, dtype=ctx.loaded.dtype)
    config = DistillConfig(**params.model_dump(exclude={"teacher", "resume", "protect"}))
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
    if protection is not None:
        out["protection"] = _report_protection(ctx, protection, result.run_dir, params.name)
    return out


def _report_protection(ctx: RunContext, protection, run_dir, name: str) -> dict:
    from mindset.circuits.protect_options import canary_plot, protected_table, rollback_table, rollbacks

    canary_plot(protection, run_dir / "canaries.png")
    history = protection.history
    final = history[-1]["accuracy"] if history else {}
    baseline = history[0]["accuracy"] if history else {}
    body = (
        f"Canaries {', '.join(baseline)}: importance maps on the model before training; "
        f"{len(protection.protected)} of {len(protection.scales)} optimizer units protected (LR ×{protection.config.lr_scale:g}), "
        f"checked every {protection.config.check_every} steps, {rollbacks(protection)}. "
        + "; ".join(f"{n}: {baseline[n]:.3f} → {final.get(n, float('nan')):.3f}" for n in baseline)
        + f". Every check is in `{run_dir / 'protection.json'}`.\n\n"
        + "".join(f"**Warning:** {note}\n\n" for note in protection.notes)
        + f"![canary accuracy]({name}/canaries.png)"
    )
    ctx.add_section("Protected training", body)
    ctx.add_table("Protected components", *protected_table(protection))
    if protection.events:
        ctx.add_table("Rollbacks", *rollback_table(protection))
    return {"protected": protection.protected, "rollbacks": len(protection.events), "canary_baseline": baseline, "canary_final": final,
            "scales": {u: s for u, s in protection.scales.items() if s != 1.0}}
