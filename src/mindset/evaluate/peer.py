"""Peer check: the same task files scored by lm-eval's HF backend and by mindset, compared sample by sample.

Needs lm-eval (`pip install 'mindset-lab[lm-eval]'`). Both read the same HF model folder and the same task
YAML; lm-eval runs with its defaults (batch size 1, few-shot seed 1234). For each task the check compares
every document's prompt, every choice's log-likelihood (to `tolerance`), every generation, and every metric
(exactly; mc2, a smooth function of the log-likelihoods, to the same 1e-4).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from mindset.evaluate.runner import TaskResult, evaluate_task, metric_key
from mindset.evaluate.taskfile import load_task
from mindset.evaluate.tasks import Task


@dataclass
class PeerReport:
    task: str
    docs: int
    loglikelihoods: int = 0  # compared
    max_ll_diff: float = 0.0
    generations: int = 0
    problems: list[str] = field(default_factory=list)
    lm_eval: dict[str, float] = field(default_factory=dict)
    mindset: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_lm_eval(folder: str | Path, task_files: list[Path], limit: int | None, batch_size: int = 1) -> dict:
    """lm-eval's simple_evaluate on local task files with its HF backend; returns its results dict."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import lm_eval
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    folders = sorted({str(p.parent.parent) for p in task_files})
    manager = TaskManager(include_path=folders, include_defaults=False)
    names = [load_task(p).task for p in task_files]
    return lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(folder), "dtype": "float32", "device": "cpu"},
        tasks=names,
        task_manager=manager,
        limit=limit,
        batch_size=batch_size,
        log_samples=True,
        bootstrap_iters=1000,
    )


# functions of the log-likelihoods themselves (not of their argmax): equal to the log-likelihoods' float
# rounding, so to the same 1e-4; every other metric must be equal
CONTINUOUS = {"mc2"}


def _same(metric: str, a: float, b: float) -> bool:
    tolerance = 1e-4 if metric.split(",")[0] in CONTINUOUS else 1e-12
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def compare(lm_results: dict, ours: TaskResult, tolerance: float = 1e-4) -> PeerReport:
    by_filter: dict[str, list[dict]] = {}
    for sample in lm_results["samples"][ours.task]:
        by_filter.setdefault(sample["filter"], []).append(sample)
    report = PeerReport(ours.task, len(ours.samples))
    for filter_name, samples in by_filter.items():
        samples.sort(key=lambda s: s["doc_id"])
        if len(samples) != len(ours.samples):
            report.problems.append(f"lm-eval scored {len(samples)} documents, mindset {len(ours.samples)}")
            return report
        first = filter_name == next(iter(by_filter))
        for theirs, mine in zip(samples, ours.samples):
            d = mine["doc_id"]
            if first and theirs["arguments"][0][0] != mine["context"]:
                report.problems.append(f"doc {d}: prompts differ")
            if ours.output_type == "multiple_choice" and first:
                for i, (r, b) in enumerate(zip(theirs["resps"], mine["loglikelihoods"])):
                    a = r[0][0]
                    report.loglikelihoods += 1
                    report.max_ll_diff = max(report.max_ll_diff, abs(a - b))
                    if abs(a - b) > tolerance:
                        report.problems.append(f"doc {d} choice {i}: log-likelihood {b:.6f} vs lm-eval {a:.6f}")
            elif ours.output_type == "generate_until":
                if first:
                    report.generations += 1
                    if theirs["resps"][0][0] != mine["generation"]:
                        report.problems.append(f"doc {d}: generation {mine['generation']!r} vs lm-eval {theirs['resps'][0][0]!r}")
                if theirs["filtered_resps"][0] != mine["filtered"].get(filter_name):
                    report.problems.append(f"doc {d}: filter {filter_name} gives {mine['filtered'].get(filter_name)!r} vs lm-eval {theirs['filtered_resps'][0]!r}")
            for metric in theirs["metrics"]:
                name = metric_key(metric, filter_name)
                if name not in mine["scores"] or not _same(name, float(theirs[metric]), mine["scores"][name]):
                    report.problems.append(f"doc {d}: {name} {mine['scores'].get(name)} vs lm-eval {theirs[metric]}")
    results = lm_results["results"][ours.task]
    for key, value in results.items():
        if "," not in key or key.startswith("alias") or "_stderr," in key:
            continue
        metric, filter_name = key.split(",", 1)
        name = metric_key(metric, filter_name)
        report.lm_eval[name] = float(value)
        mine = ours.metrics.get(name)
        if mine is None:
            report.problems.append(f"lm-eval reports {key}, mindset has no {name}")
            continue
        report.mindset[name] = mine["value"]
        if not _same(name, mine["value"], float(value)):
            report.problems.append(f"{name}: mindset {mine['value']} vs lm-eval {value}")
        their_se = results.get(f"{metric}_stderr,{filter_name}")
        if isinstance(their_se, float) and mine["stderr"] is not None and not _same(name, mine["stderr"], their_se):
            report.problems.append(f"{name} stderr: mindset {mine['stderr']} vs lm-eval {their_se}")
    return report


def peer_check(folder: str | Path, task_files: list[Path], limit: int | None = None, tolerance: float = 1e-4, batch_size: int = 1) -> list[PeerReport]:
    """Run lm-eval and mindset on the same model folder and task files; one report per task."""
    from mindset.models import load

    lm_results = run_lm_eval(folder, task_files, limit, batch_size)
    loaded = load(str(folder), device="cpu", dtype="float32")
    reports = []
    for path in task_files:
        ours = evaluate_task(loaded, Task(load_task(path)), limit=limit)
        reports.append(compare(lm_results, ours, tolerance))
    return reports
