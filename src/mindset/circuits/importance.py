"""`importance(loaded, suite, granularity, method)`: what each component is worth to a suite, by ablation.

For each component: the suite is scored with that component ablated (hooks, see ablation.py), and its
importance is the drop in the mean log-probability of the correct answer (nats per document; positive:
the suite needs it) and in accuracy, against the unablated model on the same documents. The standard error
of the log-prob drop is paired over documents.

Two ways to get there (`estimate`):
- `exact`: the suite is scored with each component ablated. `batch=B` ablates B components in one pass:
  the suite's inputs repeated B times along the batch, the hooks ablating component r in replica r
  (`ablation.ablated_rows`), scored by the evaluate engine as one-at-a-time is; the weights are read once
  for B ablations, and the numbers are the same.
- `attribution`: the first-order estimate (attribution.py) from one forward and one backward pass per
  `batch` documents: no accuracy (a first-order estimate has no argmax), zero or mean baseline only.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mindset.circuits.ablation import METHODS, ablated_rows, collect_stats
from mindset.circuits.components import Component, list_components, parse_component
from mindset.circuits.prefix import shared_prefix
from mindset.circuits.suite import DEFAULT_LIMIT, Suite, SuiteScore, as_suite, gold_batches, score_suite, score_suite_replicated
from mindset.errors import MindsetError
from mindset.evaluate.loglikelihood import model_max_length
from mindset.fileio import atomic_write_json, atomic_write_text
from mindset.progress import track
from mindset.tables import markdown_table, rich_table


class ChanceWarning(UserWarning):
    """The model scores the suite at chance: ablations have nothing to take away."""


@dataclass
class ComponentScore:
    name: str
    kind: str
    layer: int
    head: int | None
    drop_logprob: float  # baseline mean gold log-prob minus ablated (nats per document)
    drop_logprob_stderr: float
    drop_accuracy: float | None  # baseline accuracy minus ablated (None: an attribution estimate has none)
    accuracy: float | None  # accuracy with the component ablated
    neuron: int | None = None  # an FFN neuron's index (granularity neuron)


@dataclass
class Importance:
    model: str
    suite: str
    granularity: str
    method: str
    n_docs: int
    baseline_logprob: float
    baseline_accuracy: float
    baseline_accuracy_stderr: float
    chance: float
    at_chance: bool
    n_layers: int
    n_heads: int
    scores: list[ComponentScore] = field(default_factory=list)
    estimate: str = "exact"  # exact ablation, or its first-order (attribution patching) estimate

    def ranked(self) -> list[ComponentScore]:
        return sorted(self.scores, key=lambda s: s.drop_logprob, reverse=True)

    def score(self, name: str) -> ComponentScore:
        for s in self.scores:
            if s.name == name:
                return s
        raise MindsetError(f"{name!r} was not measured in this importance map (it has {self.scores[0].name} ... {self.scores[-1].name})")

    def table(self, top: int | None = 20) -> tuple[list[str], list[list]]:
        """Ranked rows; a drop is clean minus ablated (positive: ablating the component hurts the suite)."""
        headers = ["rank", "component", "log-prob drop (nats, clean − ablated)", "± se", "accuracy drop", "accuracy ablated"]
        rows = [
            [i + 1, s.name, f"{s.drop_logprob:+.3f}", f"{s.drop_logprob_stderr:.3f}", _fmt(s.drop_accuracy, "+.3f"), _fmt(s.accuracy, ".3f")]
            for i, s in enumerate(self.ranked()[:top])
        ]
        return headers, rows

    def summary(self) -> str:
        return (
            f"{self.suite} on {self.model}: {self.n_docs} documents, baseline accuracy {self.baseline_accuracy:.3f} "
            f"± {self.baseline_accuracy_stderr:.3f} (chance {self.chance:.2f}), mean correct-answer log-prob "
            f"{self.baseline_logprob:.3f}; {self.method} ablation of each {self.granularity}"
            + (" (attribution patching: first-order estimate)" if self.estimate == "attribution" else "")
            + (" — AT CHANCE: nothing to map" if self.at_chance else "")
        )

    def markdown(self, top: int | None = 20) -> str:
        return self.summary() + "\n\n" + markdown_table(*self.table(top)) + "\n"

    def rich(self, top: int | None = 20):
        return rich_table(self.summary(), *self.table(top))

    def grid(self) -> np.ndarray:
        """(layers, heads) of log-prob drops for heads, (layers, neurons) for neurons; (layers, 1) otherwise.
        NaN where nothing was measured."""
        if self.granularity == "neuron":
            width = max((s.neuron for s in self.scores), default=0) + 1
        else:
            width = self.n_heads if self.granularity == "head" else 1
        grid = np.full((self.n_layers, width), np.nan)
        for s in self.scores:
            column = s.head if s.head is not None else s.neuron if s.neuron is not None and self.granularity == "neuron" else 0
            grid[s.layer, column] = s.drop_logprob
        return grid

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Importance:
        scores = [ComponentScore(**s) for s in data.get("scores", [])]
        return cls(**{**data, "scores": scores})

    @classmethod
    def load(cls, path: str | Path) -> Importance:
        path = Path(path)
        if path.is_dir():
            path = path / "importance.json"
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise MindsetError(f"{path}: not an importance map written by mindset ({err})") from None

    def save(self, folder: str | Path) -> dict[str, Path]:
        """importance.json, importance.md and importance.png in folder."""
        from mindset.circuits.plots import importance_heatmap

        folder = Path(folder)
        paths = {"json": folder / "importance.json", "markdown": folder / "importance.md", "png": folder / "importance.png"}
        atomic_write_json(paths["json"], self.as_dict())
        atomic_write_text(paths["markdown"], self.markdown(top=None))
        importance_heatmap(self, paths["png"])
        return paths


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _stderr(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def above_chance(accuracy: float, stderr: float, chance: float, n: int) -> bool:
    """Accuracy at least two standard errors above chance (the binomial one when every document agrees)."""
    se = max(stderr, math.sqrt(max(chance * (1 - chance), 1e-12) / n))
    return accuracy - chance > 2 * se


def map_granularity(model, granularity: str, components: Sequence[str] | None = None) -> str:
    """What a map measures: `granularity`, or with named components their kind (`mixed` for several kinds)."""
    if not components:
        return granularity
    kinds = {parse_component(model, c).kind for c in components}
    return kinds.pop() if len(kinds) == 1 else "mixed"


ESTIMATES = ("exact", "attribution")


def importance(
    loaded,
    suite: str | Path | Suite,
    granularity: str = "layer",
    method: str = "zero",
    *,
    components: Sequence[str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
    seed: int = 0,
    estimate: str = "exact",
    batch: int = 1,
    steps: int = 1,
    progress: bool = False,
    baseline: SuiteScore | None = None,
) -> Importance:
    """Ablate each component of `granularity` (or only the named `components`) and measure what the suite loses.

    `suite`: a shipped task name (`modus_ponens`, `capitals`, ...), an lm-eval task .yaml, or a Suite.
    `estimate`: `exact` (score the suite ablated; `batch` components per pass) or `attribution` (first-order
    estimate; `batch` documents per forward+backward pass). See the module docstring. `method="attribution"`
    is short for `estimate="attribution"` with the zero baseline (`method="mean", estimate="attribution"`: mean).
    `granularity="neuron"`: every FFN neuron (L3.mlp.N17); thousands per layer, so exact maps want `batch`.
    `steps` (attribution only): 1 is plain attribution patching; more is integrated gradients along each hook
    point's ablation (circuits/integrated.py), steps × hook points passes, for large nonlinear ablations.
    Warns (ChanceWarning) when the model is at chance on the suite: there is nothing to map.
    `baseline`: `score_suite(loaded, suite)` of this model on this very Suite, when the caller has it already (a
    map made a few layers per call, as the UI's job makes it, scores the unablated model once, not per call).
    """
    method, estimate = estimate_alias(method, estimate)
    _check(method, estimate, batch)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or (steps > 1 and estimate != "attribution"):
        raise MindsetError(f"steps must be a whole number of at least 1, and more than 1 only with the attribution estimate, not {steps!r}")
    model = loaded.model
    comps: list[Component] = [parse_component(model, c) for c in components] if components else list_components(model, granularity)
    granularity = map_granularity(model, granularity, components)
    suite = as_suite(suite, limit=limit, seed=seed)
    n = len(suite.items)
    if baseline is not None and len(baseline.gold_logprob) != n:
        raise ValueError(f"the baseline scores {len(baseline.gold_logprob)} documents, the suite has {n}: score this suite")
    base = score_suite(loaded, suite) if baseline is None else baseline
    at_chance = not above_chance(base.accuracy, base.accuracy_stderr, suite.chance, n)
    if at_chance:
        warnings.warn(
            f"{loaded.name} scores {base.accuracy:.3f} ± {base.accuracy_stderr:.3f} on {suite.name}, not above chance "
            f"({suite.chance:.2f}) over {n} documents: there is no skill here to map, so the importance map is noise",
            ChanceWarning, stacklevel=2,
        )
    max_length = model_max_length(model, loaded.tokenizer)
    stats = collect_stats(model, comps, suite.sequences(loaded.tokenizer, max_length), seed) if method != "zero" else None
    from mindset.circuits.components import blocks

    all_blocks = blocks(model)
    result = Importance(
        loaded.name, suite.name, granularity, method, n, base.logprob, base.accuracy, base.accuracy_stderr, suite.chance,
        at_chance, len(all_blocks), max(b.n_heads for b in all_blocks), estimate=estimate,
    )
    if estimate == "attribution":
        from mindset.circuits.attribution import attribute

        drops = attribute(model, comps, gold_batches(suite, loaded.tokenizer, max_length, batch, loaded.device), method, stats, steps=steps).numpy()
        for comp, drop in zip(comps, drops.T):
            result.scores.append(ComponentScore(comp.name, comp.kind, comp.layer, comp.head, float(drop.mean()), _stderr(drop), None, None, comp.neuron))
        return result
    measured: dict[int, ComponentScore] = {}
    chunks = layer_chunks(comps, batch)
    for chunk in track(chunks, len(chunks), "ablating", enabled=progress, unit=f"x{batch} components" if batch > 1 else "components"):
        group = [comps[i] for i in chunk]
        with ablated_rows(model, [[c] for c in group], method, stats, seed), shared_prefix(model, min(c.layer for c in group), len(group)):
            scores = score_suite_replicated(loaded, suite, len(group))
        for i, comp, score in zip(chunk, group, scores):
            drop = base.gold_logprob - score.gold_logprob
            measured[i] = ComponentScore(
                comp.name, comp.kind, comp.layer, comp.head, float(drop.mean()), _stderr(drop),
                base.accuracy - score.accuracy, score.accuracy, comp.neuron,
            )
    result.scores.extend(measured[i] for i in range(len(comps)))
    return result


def layer_chunks(comps: Sequence[Component], batch: int) -> list[list[int]]:
    """Indices of `comps` in passes of at most `batch`, in layer order: a pass starts at its lowest
    component's layer (`prefix.shared_prefix` runs the layers below once), so grouping by layer keeps
    each pass's shared prefix as deep as it can be."""
    order = sorted(range(len(comps)), key=lambda i: comps[i].layer)
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def estimate_alias(method: str, estimate: str) -> tuple[str, str]:
    """`method="attribution"` (the name the literature and issue 18 use) is `estimate="attribution"` with
    the zero baseline: `method` stays the ablation's baseline (zero, mean, resample) everywhere else."""
    if method != "attribution":
        return method, estimate
    if estimate not in ("exact", "attribution"):
        return method, estimate  # _check names the bad estimate
    return "zero", "attribution"


def _check(method: str, estimate: str, batch: int) -> None:
    """Whole-input checks before any pass runs."""
    if method not in METHODS:
        raise MindsetError(f"unknown ablation method {method!r}; choose one of {', '.join(METHODS)}")
    if estimate not in ESTIMATES:
        raise MindsetError(f"unknown estimate {estimate!r}; choose one of {', '.join(ESTIMATES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise MindsetError(f"batch must be a whole number of at least 1, not {batch!r}")
    if estimate == "attribution" and method == "resample":
        raise MindsetError("attribution estimates zero or mean ablation; resample has no single baseline to expand around (use --method zero or mean)")
    if estimate == "exact" and method == "resample" and batch > 1:
        raise MindsetError(f"resample ablation draws its noise run by run, so batch={batch} would not repeat one-at-a-time's numbers; use batch 1 or --method zero or mean")
