"""Recipe step `distill` with protection: train's distill step plus a `protect:` field.

Protected training needs both capabilities: circuits builds the protection (importance maps, canaries),
train runs the distillation with anything that meets its `train.protection.Protection` Protocol. The
arrow runs one way, circuits -> train: this module wires them, and train never imports circuits.
"""

from __future__ import annotations

from pydantic import Field

from mindset.circuits.protect_options import ProtectOptions, protection_from_options
from mindset.runcontext import RunContext
from mindset.train.steps import DistillParams, run_distill


class ProtectedDistillParams(DistillParams):
    protect: ProtectOptions | None = Field(
        None, description="protected training: {suites: [...], granularity, threshold, lr_scale, l2, check_every, max_drop, limit, ...}")


def distill_step(ctx: RunContext, params: ProtectedDistillParams) -> dict:
    protection = None
    if params.protect is not None:
        protection = protection_from_options(ctx.loaded, params.protect, progress=ctx.progress)
        for note in protection.notes:
            ctx.console.print(f"warning: {note}")
    out, result = run_distill(ctx, params, protection)
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
