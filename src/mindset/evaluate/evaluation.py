"""One model on a list of tasks: resolve the task names, score each task, write the run folder.

A run folder holds `results.json` (per task: n, metrics with standard errors, chance, and each document's
scores, which `compare` pairs across models) and `samples.jsonl` (every prompt, choice log-likelihood and
generation). The shipped suites are written as task files under `<run folder>/tasks/` first, so the run
can be repeated with lm-eval on exactly the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mindset.errors import MindsetError
from mindset.evaluate.runner import TaskResult, evaluate_task
from mindset.evaluate.taskfile import load_task
from mindset.evaluate.tasks import FEWSHOT_SEED, Task
from mindset.fileio import atomic_write_json, atomic_write_text

DEFAULT_LIMIT = 40  # documents per task on the command line: a few minutes for SmolLM2 on 2 CPU cores
DEFAULT_TEST_SIZE = 200  # generated test documents per shipped task (capitals: the 97 test countries)


@dataclass
class EvalRun:
    model: str
    source: str
    tasks: list[TaskResult] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "source": self.source,
            "settings": self.settings,
            "tasks": {t.task: {**t.as_dict(samples=False), "docs_hash": _docs_hash(t), "doc_scores": _doc_scores(t)} for t in self.tasks},
        }


def _docs_hash(result: TaskResult) -> str:
    """Identifies the documents and prompts scored, so compare pairs only runs that saw the same ones."""
    import hashlib

    return hashlib.sha256("\x00".join(s["context"] for s in result.samples).encode()).hexdigest()[:16]


def _doc_scores(result: TaskResult) -> dict[str, list[float]]:
    return {name: [s["scores"][name] for s in result.samples] for name in result.metrics}


def resolve_tasks(names: str | list[str], folder: Path, *, seed: int = 0, n_test: int = DEFAULT_TEST_SIZE) -> list[Path]:
    """Task files for a comma-separated list of suites, task names and .yaml paths."""
    from mindset.evaluate.suites import expand, write_task

    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not items:
        raise MindsetError("no tasks given; name suites (capitals, arithmetic, canaries) or task .yaml files")
    paths: list[Path] = []
    for item in items:
        if item.endswith((".yaml", ".yml")) or "/" in item:
            if not Path(item).is_file():
                raise MindsetError(f"{item}: no such task file")
            load_task(Path(item))  # a malformed task file fails here, before any model is loaded
            paths.append(Path(item))
        else:
            paths += [write_task(name, folder, seed=seed, n_test=n_test) for name in expand([item])]
    return list(dict.fromkeys(paths))


def evaluate_model(
    loaded,
    task_files: list[Path],
    *,
    limit: int | None = DEFAULT_LIMIT,
    num_fewshot: int | None = None,
    seed: int = FEWSHOT_SEED,
    progress: bool = False,
    on_task: Callable[[TaskResult], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> EvalRun:
    specs = [load_task(p) for p in task_files]  # every file is read and checked before any scoring
    tasks = [Task(spec, num_fewshot=num_fewshot) for spec in specs]
    for task in tasks:
        task.check(limit, seed)
    run = EvalRun(loaded.name, loaded.source.describe(), settings={"limit": limit, "num_fewshot": num_fewshot, "fewshot_seed": seed})
    for task in tasks:
        result = evaluate_task(loaded, task, limit=limit, seed=seed, progress=progress, warn=warn)
        run.tasks.append(result)
        if on_task:
            on_task(result)
    return run


def run_names(specs: list[str]) -> list[tuple[str, str]]:
    """(column label, folder name) for each model spec, each unique among the specs.

    Two specs can share a last path component (runs/a/student, runs/b/student): the second becomes column
    `student (2)` in folder `student-2`, so no run overwrites another. The label is stored in results.json,
    which is how `mindset compare` rebuilds the same columns from the folders.
    """
    slugs = [_slug(spec) for spec in specs]
    labels, folders, seen = [], [], set()
    for slug in slugs:
        n = 1
        while (slug if n == 1 else f"{slug}-{n}") in seen or (n > 1 and f"{slug}-{n}" in slugs):
            n += 1
        folder = slug if n == 1 else f"{slug}-{n}"
        seen.add(folder)
        folders.append(folder)
        labels.append(slug if n == 1 else f"{slug} ({n})")
    return list(zip(labels, folders))


def _slug(spec: str) -> str:
    """A folder name for a model spec: its last path component, with anything unusual replaced."""
    import re

    name = Path(spec.rstrip("/")).name or spec
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def save_run(run: EvalRun, folder: str | Path, label: str | None = None) -> Path:
    """results.json (with `label`, the run's column in comparisons, when given) and samples.jsonl."""
    folder = Path(folder)
    atomic_write_json(folder / "results.json", run.as_dict() | ({"label": label} if label else {}))
    lines = [json.dumps({"task": t.task, **s}, ensure_ascii=False, default=str) for t in run.tasks for s in t.samples]
    atomic_write_text(folder / "samples.jsonl", "\n".join(lines) + "\n")
    return folder / "results.json"


def load_run(folder: str | Path) -> dict:
    """results.json of an eval run folder, or of a recipe run folder's eval step (`<run>/eval/`)."""
    folder = Path(folder)
    for candidate in (folder / "results.json", folder / "eval" / "results.json", folder):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise MindsetError(f"{candidate}: not a results file ({err.msg})") from None
            if not isinstance(data, dict) or "tasks" not in data:
                raise MindsetError(f"{candidate}: not a mindset eval results file")
            data.setdefault("label", folder.name)
            return data
    raise MindsetError(f"{folder}: no results.json (run `mindset eval` or a recipe with an eval step first)")
