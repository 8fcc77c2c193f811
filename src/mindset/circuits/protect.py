"""Protected training: slow down (or freeze) the components a capability depends on, watch the canaries,
and roll back when one fails.

Units: the trainable parameters are split into one optimizer parameter group per attention block
(`L3.attn`), per MLP (`L3.mlp`), and one for the rest (embeddings, norms, head). A head shares its
weight matrices with its layer's other heads, so protecting a head protects its attention block; a layer
protects both of its blocks. Protected units (importance ≥ `threshold` in any given map, or named
explicitly) train at `lr × lr_scale` (0: frozen); `l2` adds l2 · Σ‖θ − θ₀‖² over them, a pull toward
the weights they started from.

The canary monitor (a Lightning callback) scores the canary suites before training and every
`check_every` steps. When a suite's accuracy has dropped more than `max_drop` below its baseline (a suite
the model was at chance on when mapped is only logged, its accuracy being noise, unless `chance_rollback`),
the trainable weights and the optimizer state go back to the last state that passed (kept in memory), and
the implicated units (those whose weights moved at least `implicate` × the largest move since that state)
get their learning-rate scale multiplied by `tighten` (below `freeze_below`: frozen). The LR schedule
and the data keep going (rolled-back steps are not replayed). Every check and rollback is logged to
TensorBoard (`canary/*`) and kept in `history` / `events` for the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field

from mindset.circuits.components import blocks, parse_component
from mindset.circuits.suite import Suite, as_suite, score_suite
from mindset.errors import MindsetError

REST = "rest"


class ProtectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.1, description="protect components whose importance (drop in the correct answer's log-prob when ablated, nats) is at least this")
    lr_scale: float = Field(0.1, ge=0, le=1, description="learning-rate multiplier of protected components (0: frozen)")
    l2: float = Field(0.0, ge=0, description="strength of the pull of protected weights toward their original values")
    check_every: int = Field(10, ge=1, description="score the canaries every N optimizer steps")
    max_drop: float = Field(0.1, ge=0, le=1, description="roll back when a canary's accuracy falls more than this below its baseline")
    tighten: float = Field(0.1, ge=0, lt=1, description="at a rollback, implicated components' LR scale is multiplied by this")
    freeze_below: float = Field(1e-3, ge=0, description="an LR scale below this becomes 0 (frozen)")
    implicate: float = Field(0.5, gt=0, le=1, description="implicated: moved at least this fraction of the largest move since the last good state")
    limit: int = Field(20, ge=1, description="documents per canary suite (shipped tasks)")
    rollback: bool = Field(True, description="False: only watch and log the canaries (an unprotected baseline run)")
    chance_rollback: bool = Field(False, description="also roll back for a canary the model was at chance on when mapped "
                                  "(its accuracy is noise); off: such a suite is only scored and logged")


def unit_of(param_name: str, prefixes: dict[str, str]) -> str:
    for unit, prefix in prefixes.items():
        if param_name.startswith(prefix + "."):
            return unit
    return REST


def component_units(comp) -> list[str]:
    """The optimizer units a component's weights live in (a Component or an importance map's score)."""
    return {"head": [f"L{comp.layer}.attn"], "attn": [f"L{comp.layer}.attn"], "mlp": [f"L{comp.layer}.mlp"],
            "layer": [f"L{comp.layer}.attn", f"L{comp.layer}.mlp"]}[comp.kind]


@dataclass
class Protection:
    """What to protect and how; `setup` binds it to a model, `callback()` gives the canary monitor."""

    config: ProtectionConfig = field(default_factory=ProtectionConfig)
    importances: Sequence = ()  # mindset.circuits.Importance maps
    components: Sequence[str] = ()  # protected explicitly, by name
    canaries: Sequence[Suite | str] = ()
    scales: dict[str, float] = field(default_factory=dict)  # unit -> current LR scale
    protected: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # one entry per canary check
    events: list[dict] = field(default_factory=list)  # rollbacks
    notes: list[str] = field(default_factory=list)  # warnings from building it (a suite at chance), for the report

    def setup(self, model, tokenizer, trainable: set[str], lr: float) -> None:
        """Resolve protected components to units; refuse protection over parameters that do not train."""
        self.model, self.tokenizer, self.lr = model, tokenizer, lr
        self.prefixes: dict[str, str] = {}
        for b in blocks(model):
            self.prefixes[f"L{b.index}.attn"] = b.attn_path
            self.prefixes[f"L{b.index}.mlp"] = b.mlp_path
        wanted = [*self.components]
        for result in self.importances:
            wanted += [s.name for s in result.scores if s.drop_logprob >= self.config.threshold]
        units: list[str] = []
        for name in dict.fromkeys(wanted):
            units += component_units(parse_component(model, name))
        self.protected = list(dict.fromkeys(units))
        self.params: dict[str, list[tuple[str, torch.nn.Parameter]]] = {}
        for pname, param in model.named_parameters():
            if pname in trainable:
                self.params.setdefault(unit_of(pname, self.prefixes), []).append((pname, param))
        frozen = [u for u in self.protected if u not in self.params]
        if frozen:
            raise MindsetError(
                f"protection covers {', '.join(frozen)}, whose parameters are not trainable in this run; "
                "protect only trainable components, or make them trainable (--trainable)"
            )
        self.scales = {u: (self.config.lr_scale if u in self.protected else 1.0) for u in self.params}
        self.origin = {n: p.detach().clone() for u in self.protected for n, p in self.params[u]} if self.config.l2 else {}
        self.suites = [as_suite(s, limit=self.config.limit) for s in self.canaries]

    def param_groups(self) -> list[dict]:
        return [{"params": [p for _, p in ps], "lr": self.lr * self.scales[u], "unit": u} for u, ps in self.params.items()]

    def penalty(self) -> torch.Tensor | None:
        if not self.origin:
            return None
        named = dict(self.model.named_parameters())
        return self.config.l2 * sum(((named[n] - w0) ** 2).sum() for n, w0 in self.origin.items())

    def callback(self):
        from mindset.circuits.monitor import CanaryMonitor

        return CanaryMonitor(self)

    # --- used by the monitor -------------------------------------------------------------------------

    def watched_only(self) -> set[str]:
        """Canary suites the model was at chance on when mapped (Importance.at_chance): their accuracy is
        noise, so it is scored and logged but never rolls training back (a noise dip once did, in the sweep)."""
        if self.config.chance_rollback:
            return set()
        return {r.suite for r in self.importances if getattr(r, "at_chance", False)}

    def score(self) -> dict[str, float]:
        return {s.name: score_suite(self.model, s, self.tokenizer).accuracy for s in self.suites}

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for ps in self.params.values() for n, p in ps}

    def implicated(self, good: dict[str, torch.Tensor]) -> dict[str, float]:
        """Relative move of each unit's weights since `good`; the units that moved most are implicated."""
        moves = {}
        for unit, ps in self.params.items():
            if self.scales[unit] == 0:
                continue
            delta = math.sqrt(sum(float(((p.detach() - good[n]) ** 2).sum()) for n, p in ps))
            norm = math.sqrt(sum(float((good[n] ** 2).sum()) for n, _ in ps)) or 1.0
            moves[unit] = delta / norm
        top = max(moves.values(), default=0.0)
        return {u: m for u, m in moves.items() if top > 0 and m >= self.config.implicate * top}

    def tighten(self, units: Sequence[str]) -> None:
        for unit in units:
            scale = self.scales[unit] * self.config.tighten
            self.scales[unit] = 0.0 if scale < self.config.freeze_below else scale
