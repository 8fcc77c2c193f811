"""Protection from a handful of options, as `mindset distill --protect-*` and the recipe step's `protect:`
give it: map importance on the model about to train, protect what the maps mark, watch the same suites.
Also the tables and the plot that show what protection did."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field

from mindset.circuits.protect import Protection, ProtectionConfig, component_units

Granularity = Literal["head", "attn", "mlp", "layer"]


class ProtectOptions(ProtectionConfig):
    """Every ProtectionConfig field, plus the suites to map and watch and the granularities to map them at."""

    suites: list[str] = Field(..., min_length=1, description="canary suites (shipped tasks or lm-eval task .yaml): mapped for importance, then watched")
    granularity: list[Granularity] = Field(["attn", "mlp"], min_length=1, description="importance maps to build per suite (a head protects its attention block)")


# the CLI's name for each field, so an invalid value names the option the user typed
CLI_OPTIONS = {name: "--protect-" + name.replace("_", "-") for name in ProtectOptions.model_fields} | {"suites": "--protect-suite"}


def protection_from_options(loaded, options: ProtectOptions, *, progress: bool = False) -> Protection:
    """Importance maps of `loaded` (before training) for each suite and granularity, and a Protection that
    slows the components reaching `threshold` and watches the suites. Suites at chance are noted, not refused."""
    from mindset.circuits.importance import ChanceWarning, importance
    from mindset.circuits.suite import build_suite

    suites = [build_suite(name, limit=options.limit) for name in options.suites]  # an unknown name fails here, before any work
    maps = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ChanceWarning)
        for suite in suites:
            for granularity in dict.fromkeys(options.granularity):
                maps.append(importance(loaded, suite, granularity, progress=progress))
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, ChanceWarning)))
    config = ProtectionConfig(**options.model_dump(exclude={"suites", "granularity"}))
    return Protection(config, importances=maps, canaries=suites, notes=notes)


def protected_table(protection: Protection) -> tuple[list[str], list[list]]:
    """One row per unit that trained slower than the rest: why, and its LR scale at the start and the end."""
    reasons: dict[str, tuple[float, str]] = {}
    for result in protection.importances:
        for s in result.scores:
            if s.drop_logprob >= protection.config.threshold:
                for unit in component_units(s):
                    if s.drop_logprob > reasons.get(unit, (float("-inf"), ""))[0]:
                        reasons[unit] = (s.drop_logprob, f"{s.name}: log-prob drop {s.drop_logprob:+.3f} on {result.suite}")
    rows = []
    for unit in [*protection.protected, *(u for u in protection.scales if u not in protection.protected)]:
        scale = protection.scales[unit]
        start = protection.config.lr_scale if unit in protection.protected else 1.0
        if unit not in protection.protected and scale == start:
            continue
        why = reasons.get(unit, (0.0, "named" if unit in protection.protected else "implicated in a rollback"))[1]
        rows.append([unit, why, f"×{start:g}", f"×{scale:g}"])
    return ["component", "why", "LR scale at start", "LR scale at end"], rows


def rollback_table(protection: Protection) -> tuple[list[str], list[list]]:
    rows = [
        [e["step"], ", ".join(f"{n} {a:.3f} (baseline {e['baseline'][n]:.3f})" for n, a in e["failed"].items()), e["rolled_back_to"],
         ", ".join(f"{u} → ×{s:g}" for u, s in e["scales"].items()) or "nothing moved"]
        for e in protection.events
    ]
    return ["step", "canary failed", "rolled back to step", "tightened"], rows


def canary_plot(protection: Protection, path: str | Path) -> Path:
    """Canary accuracy at each check (rollback checks show the failing accuracy that was undone)."""
    from mindset.circuits.plots import lines_plot

    names = list(protection.history[0]["accuracy"]) if protection.history else []
    series = {n: ([h["step"] for h in protection.history], [h["accuracy"][n] for h in protection.history]) for n in names}
    single = len(names) == 1 and protection.config.rollback
    return lines_plot(
        series, path, title=f"canary accuracy during training ({rollbacks(protection)})", xlabel="optimizer step",
        ylabel="accuracy", hline=protection.history[0]["accuracy"][names[0]] - protection.config.max_drop if single else None,
        hline_label=f"baseline - {protection.config.max_drop:g}" if single else None,
    )


def rollbacks(protection: Protection) -> str:
    n = len(protection.events)
    return f"{n} rollback{'' if n == 1 else 's'}"
