"""`importance(loaded, suite, granularity, method)`: what each component is worth to a suite, by ablation.

For each component: the suite is scored with that component ablated (hooks, see ablation.py), and its
importance is the drop in the mean log-probability of the correct answer (nats per document; positive:
the suite needs it) and in accuracy, against the unablated model on the same documents. The standard error
of the log-prob drop is paired over documents.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mindset.circuits.ablation import METHODS, ablated, collect_stats
from mindset.circuits.components import Component, list_components, parse_component
from mindset.circuits.suite import DEFAULT_LIMIT, Suite, as_suite, score_suite
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
    drop_accuracy: float  # baseline accuracy minus ablated
    accuracy: float  # accuracy with the component ablated


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
            [i + 1, s.name, f"{s.drop_logprob:+.3f}", f"{s.drop_logprob_stderr:.3f}", f"{s.drop_accuracy:+.3f}", f"{s.accuracy:.3f}"]
            for i, s in enumerate(self.ranked()[:top])
        ]
        return headers, rows

    def summary(self) -> str:
        return (
            f"{self.suite} on {self.model}: {self.n_docs} documents, baseline accuracy {self.baseline_accuracy:.3f} "
            f"± {self.baseline_accuracy_stderr:.3f} (chance {self.chance:.2f}), mean correct-answer log-prob "
            f"{self.baseline_logprob:.3f}; {self.method} ablation of each {self.granularity}"
            + (" — AT CHANCE: nothing to map" if self.at_chance else "")
        )

    def markdown(self, top: int | None = 20) -> str:
        return self.summary() + "\n\n" + markdown_table(*self.table(top)) + "\n"

    def rich(self, top: int | None = 20):
        return rich_table(self.summary(), *self.table(top))

    def grid(self) -> np.ndarray:
        """(layers, heads) of log-prob drops for heads; (layers, 1) otherwise. NaN where nothing was measured."""
        width = self.n_heads if self.granularity == "head" else 1
        grid = np.full((self.n_layers, width), np.nan)
        for s in self.scores:
            grid[s.layer, s.head if s.head is not None else 0] = s.drop_logprob
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


def importance(
    loaded,
    suite: str | Path | Suite,
    granularity: str = "layer",
    method: str = "zero",
    *,
    components: Sequence[str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
    seed: int = 0,
    progress: bool = False,
) -> Importance:
    """Ablate each component of `granularity` (or only the named `components`) and measure what the suite loses.

    `suite`: a shipped task name (`modus_ponens`, `capitals`, ...), an lm-eval task .yaml, or a Suite.
    Warns (ChanceWarning) when the model is at chance on the suite: there is nothing to map.
    """
    if method not in METHODS:
        raise MindsetError(f"unknown ablation method {method!r}; choose one of {', '.join(METHODS)}")
    model = loaded.model
    comps: list[Component] = [parse_component(model, c) for c in components] if components else list_components(model, granularity)
    granularity = map_granularity(model, granularity, components)
    suite = as_suite(suite, limit=limit, seed=seed)
    base = score_suite(loaded, suite)
    n = len(suite.items)
    at_chance = not above_chance(base.accuracy, base.accuracy_stderr, suite.chance, n)
    if at_chance:
        warnings.warn(
            f"{loaded.name} scores {base.accuracy:.3f} ± {base.accuracy_stderr:.3f} on {suite.name}, not above chance "
            f"({suite.chance:.2f}) over {n} documents: there is no skill here to map, so the importance map is noise",
            ChanceWarning, stacklevel=2,
        )
    stats = collect_stats(model, comps, suite.sequences(loaded.tokenizer, model_max_length(model, loaded.tokenizer)), seed) if method != "zero" else None
    from mindset.circuits.components import blocks

    all_blocks = blocks(model)
    result = Importance(
        loaded.name, suite.name, granularity, method, n, base.logprob, base.accuracy, base.accuracy_stderr, suite.chance,
        at_chance, len(all_blocks), max(b.n_heads for b in all_blocks),
    )
    for comp in track(comps, len(comps), "ablating", enabled=progress, unit="components"):
        with ablated(model, [comp], method, stats, seed):
            score = score_suite(loaded, suite)
        drop = base.gold_logprob - score.gold_logprob
        result.scores.append(ComponentScore(
            comp.name, comp.kind, comp.layer, comp.head, float(drop.mean()), _stderr(drop),
            base.accuracy - score.accuracy, score.accuracy,
        ))
    return result
