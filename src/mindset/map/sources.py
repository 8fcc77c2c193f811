"""What goes on a map: items (a prompt, a completion, labels) from eval suites and from text/JSONL files.

Suites (`capitals`, `arithmetic`, `canaries`, a task name, or an lm-eval task .yaml) are scored by
`mindset.evaluate` itself, so `correct` is exactly what `mindset eval` counts: the task's first metric
for the document (acc; exact_match under the first filter; mc2 > 0.5 for mc2 tasks). The point's prompt
is the document's own question (the task's description + doc_to_text, without the few-shot examples the
scoring prompt starts with), and its completion is the model's answer: the choice it ranked first, or its
greedy generation. Scored items are cached beside the encodings, per model fingerprint and task file.

Files: `.jsonl` (one object a line: `text`, or `prompt` with an optional `completion`; other scalar
fields become labels) and `.txt` (one item a non-empty line).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mindset.configfile import read_text
from mindset.errors import MindsetError

MAX_FILE_ITEMS = 1_000_000
SPLITS = ("test", "train")


@dataclass
class Item:
    key: str  # stable across models: source/task/split/document, so two checkpoints' points pair up
    prompt: str
    completion: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    generated: bool = False  # the completion was generated token by token (a path through the map means something)

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def split_sources(data: str | list[str]) -> list[str]:
    items = [s.strip() for s in (data.split(",") if isinstance(data, str) else data) if s.strip()]
    if not items:
        raise MindsetError("no data given; name suites (capitals, arithmetic, canaries), task .yaml files, or .jsonl/.txt files")
    return items


def check_sources(sources: list[str], limit: int | None = None) -> list[str]:
    """Read every data file and task file named, and look up every suite name, so that a malformed source
    fails in one line before a model is loaded (building the map reads them again)."""
    from mindset.evaluate.suites import expand
    from mindset.evaluate.taskfile import load_task
    from mindset.evaluate.tasks import Task

    for name in sources:
        if is_file_source(name):
            read_file_items(Path(name))
        elif name.endswith((".yaml", ".yml")):
            if not Path(name).is_file():
                raise MindsetError(f"{name}: no such task file")
            Task(load_task(Path(name))).check(limit)
        else:
            expand([name])
    return sources


def is_file_source(name: str) -> bool:
    return name.endswith((".jsonl", ".txt", ".json")) or ("/" in name and not name.endswith((".yaml", ".yml")))


def load_items(loaded, sources: list[str], workdir: Path, *, limit: int | None = 40, splits: tuple[str, ...] = ("test",), seed: int = 0,
               cache_dir: Path | None = None, fingerprint: str | None = None, say: Callable[[str], None] = lambda m: None) -> list[Item]:
    """Every item of every source, suites scored by `loaded`; task files are written under workdir/tasks."""
    for split in splits:
        if split not in SPLITS:
            raise MindsetError(f"unknown split {split!r}; use test, train or both (test,train)")
    files = [s for s in sources if is_file_source(s)]
    tasks = [s for s in sources if not is_file_source(s)]
    items: list[Item] = []
    for name in files:
        items += read_file_items(Path(name))
    if tasks:
        from mindset.evaluate.evaluation import resolve_tasks
        from mindset.evaluate.taskfile import load_task

        task_files = resolve_tasks(tasks, workdir / "tasks", seed=seed)
        for path in task_files:  # every task file is read and checked before any is scored
            load_task(path)
        for path in task_files:
            for split in splits:
                items += suite_items(loaded, path, split, limit, cache_dir=cache_dir, fingerprint=fingerprint, say=say)
    if not items:
        raise MindsetError("the data sources hold no items")
    return items


def read_file_items(path: Path) -> list[Item]:
    if not path.is_file() and not path.is_dir():
        raise MindsetError(f"{path}: no such data file")
    text = read_text(path, "data file (.jsonl or .txt)")
    items: list[Item] = []
    if path.suffix == ".txt":
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                items.append(Item(f"{path.name}:{n}", line, labels={"source": path.name}))
        return _some(items, path)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise MindsetError(f"{path}:{n}: not a JSON object ({err.msg})") from None
        if not isinstance(record, dict):
            raise MindsetError(f"{path}:{n}: each line must be a JSON object with 'text' or 'prompt'")
        prompt = record.get("prompt", record.get("text"))
        completion = record.get("completion", "")
        if not isinstance(prompt, str) or not prompt.strip():
            raise MindsetError(f"{path}:{n}: needs a non-empty string 'text' or 'prompt'")
        if not isinstance(completion, str):
            raise MindsetError(f"{path}:{n}: 'completion' must be a string")
        labels = {"source": path.name}
        for key, value in record.items():
            if key not in ("text", "prompt", "completion") and isinstance(value, (str, int, float, bool)):
                labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
        items.append(Item(f"{path.name}:{n}", prompt, completion, labels))
    return _some(items, path)


def _some(items: list[Item], path: Path) -> list[Item]:
    """A data file named on the command line that holds nothing is a mistake, not an empty contribution."""
    if not items:
        raise MindsetError(f"{path}: holds no items (a .jsonl needs one JSON object a line, a .txt one non-empty line an item)")
    return items[:MAX_FILE_ITEMS]


def suite_items(loaded, task_file: Path, split: str, limit: int | None, *, cache_dir: Path | None = None, fingerprint: str | None = None,
                say: Callable[[str], None] = lambda m: None) -> list[Item]:
    """One task's documents of one split, scored by the model, as items (cached per model and task file)."""
    from mindset.evaluate.runner import evaluate_task
    from mindset.evaluate.suites import display_name
    from mindset.evaluate.taskfile import load_task
    from mindset.evaluate.tasks import Task

    spec = load_task(task_file)
    if split == "train":
        if not spec.training_split:
            return []
        spec = spec.model_copy(update={"test_split": spec.training_split})  # few-shot examples then skip the document itself
    task = Task(spec)
    name = display_name(task.name)
    cached = _cache_path(cache_dir, fingerprint, task_file, task, split, limit)
    if cached is not None and cached.exists():
        return [Item(**d) for d in json.loads(cached.read_text(encoding="utf-8"))]
    say(f"scoring {name} ({split})")
    result = evaluate_task(loaded, task, limit=limit, progress=True)
    metric = next(iter(result.metrics))
    items = []
    for sample in result.samples:
        doc = task.docs[sample["doc_id"]]
        prompt = task.description(doc) + task.doc_to_text(doc)
        score = float(sample["scores"][metric])
        if "generation" in sample:
            completion, generated = sample["generation"], True
            answer = completion.strip()
        else:
            lls = sample["loglikelihoods"]
            picked = max(range(len(lls)), key=lls.__getitem__)
            answer = sample["choices"][picked]
            completion, generated = spec.target_delimiter + answer, False
        correct = score > 0.5 if metric == "mc2" else score == 1.0
        labels = {"source": "suite", "task": name, "split": split, "correct": "yes" if correct else "no", "score": f"{score:.3g}", "answer": answer[:200]}
        items.append(Item(f"{name}/{split}/{sample['doc_id']}", prompt, completion, labels, generated))
    if cached is not None:
        from mindset.fileio import atomic_write_text

        atomic_write_text(cached, json.dumps([asdict(i) for i in items], ensure_ascii=False))
    return items


def _existing_data_files(spec) -> list[Path]:
    """The task's data files that exist (from the working directory, else beside the task file), for the cache
    key; `data_files` is a name, a list, or a mapping split -> name(s) (the lists were hashed wrongly before)."""
    files = spec.dataset_kwargs["data_files"]
    names = [n for v in (files.values() if isinstance(files, dict) else [files]) for n in ([v] if isinstance(v, str) else v)]
    folders = [Path.cwd()] + ([spec.source.parent] if spec.source else [])
    found = {next((folder / n for folder in folders if (folder / n).is_file()), None) for n in names}
    return sorted(f for f in found if f is not None)


def _cache_path(cache_dir, fingerprint, task_file: Path, task, split: str, limit: int | None) -> Path | None:
    if cache_dir is None or fingerprint is None:
        return None
    h = hashlib.blake2b(digest_size=10)
    h.update(task_file.read_bytes())
    for f in _existing_data_files(task.spec):
        h.update(f.read_bytes())
    h.update(f"{split}|{limit}|v1".encode())
    return Path(cache_dir) / fingerprint / "items" / f"{task.name}-{split}-{h.hexdigest()}.json"
