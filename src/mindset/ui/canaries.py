"""Canary suite deltas for POST /api/measure: the suites protected training watches (circuits' canaries:
modus_ponens, syllogisms, negation, copying, counting, ordering), scored on the original and the current
model with the circuits scorer (`circuits.suite.build_suite` / `score_suite`, the evaluate package's
log-likelihood engine), and the difference.

Per suite: accuracy (argmax choice correct, or the target greedy for generation tasks) and the mean gold
log-probability (nats per document), original and current, and current − original. An edit that keeps the
function gives deltas of 0 (up to float rounding); one that changes it moves the log-probability first —
accuracy on a handful of documents moves only when an answer flips. Suites and the original's scores are
cached per (suite, size, seed): the original never changes.
"""

from __future__ import annotations

from typing import Any

from mindset.errors import MindsetError


def canary_names(requested: list[str]) -> list[str]:
    """Task names from suite or task names ('canaries' is all six); an unknown one is a MindsetError."""
    from mindset.evaluate.suites import SUITES, TASKS

    out: list[str] = []
    for name in requested:
        tasks = SUITES.get(name) or ([name] if name in TASKS else None)
        if tasks is None:
            raise MindsetError(f"canary suite {name!r}: choose from {', '.join(['canaries', *TASKS])}")
        out += [t for t in tasks if t not in out]
    return out


class Canaries:
    """Scores of the canary suites, the original's cached."""

    def __init__(self, original):
        self.original = original
        self._suites: dict[tuple, Any] = {}
        self._scores: dict[tuple, Any] = {}

    def suite(self, name: str, limit: int, seed: int):
        from mindset.circuits.suite import build_suite

        key = (name, limit, seed)
        if key not in self._suites:
            self._suites[key] = build_suite(name, limit=limit, seed=seed)
        return self._suites[key]

    def deltas(self, current, suites: list[str], limit: int, seed: int = 0) -> dict[str, Any]:
        """{suites: [{name, docs, chance, original, current, delta}], mean_delta, limit, seed}."""
        from mindset.circuits.suite import score_suite

        if not 1 <= limit <= 1000:
            raise MindsetError(f"canary_limit {limit}: score 1 to 1000 documents per suite")
        rows = []
        for name in canary_names(suites):
            suite = self.suite(name, limit, seed)
            key = (name, limit, seed)
            if key not in self._scores:
                self._scores[key] = _plain(score_suite(self.original, suite))
            before, after = self._scores[key], _plain(score_suite(current, suite))
            rows.append({"name": suite.name, "task": name, "docs": len(suite.items), "chance": suite.chance, "original": before, "current": after,
                         "delta": {k: after[k] - before[k] for k in before}})  # fmt: skip
        mean = {k: sum(r["delta"][k] for r in rows) / len(rows) for k in ("accuracy", "logprob")} if rows else {}
        return {"suites": rows, "mean_delta": mean, "limit": limit, "seed": seed}


def _plain(score) -> dict[str, float]:
    return {"accuracy": score.accuracy, "logprob": score.logprob}
