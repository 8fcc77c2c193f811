"""A suite as circuits uses it: documents with a prompt, choices and the correct ones, scored by the
evaluate package's log-likelihood engine (prompts, tokenization and few-shot shots exactly as `mindset eval`).

Per document: `gold_logprob`, the log-probability of the correct continuation (several correct choices,
as in mc2: the log of their summed probability), and `correct`: for multiple choice, whether the argmax
choice is a correct one (lm-eval's `acc`); for generation tasks, whether the target is the greedy
continuation token by token (exact match before filters).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mindset.errors import MindsetError

DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Item:
    context: str
    choices: tuple[str, ...]  # continuations scored, with the target delimiter
    gold: tuple[int, ...]  # indices of the correct ones


@dataclass
class Suite:
    name: str
    items: list[Item]
    chance: float  # accuracy of guessing
    greedy: bool = False  # accuracy is "the target is greedy" (generation tasks), not argmax over choices
    _encoded: dict = field(default_factory=dict, repr=False)

    def encoded(self, tokenizer) -> list[tuple[list[int], list[int]]]:
        from mindset.evaluate.loglikelihood import encode_request

        key = id(tokenizer)
        if key not in self._encoded:
            self._encoded[key] = [encode_request(tokenizer, it.context, ch) for it in self.items for ch in it.choices]
        return self._encoded[key]

    def sequences(self, tokenizer, max_length: int) -> list[list[int]]:
        """Each document's prompt with its (first) correct continuation, its last `max_length` tokens: the
        clean runs for mean/resample statistics."""
        pairs, out, i = self.encoded(tokenizer), [], 0
        for it in self.items:
            ctx, cont = pairs[i + it.gold[0]]
            out.append((ctx + cont)[-max_length:])
            i += len(it.choices)
        return out

    def split(self, n: int) -> tuple[Suite, Suite]:
        """The first n documents and the rest, as two suites of the same task (e.g. to score on one and
        compute attributions on the other)."""
        return (Suite(self.name, self.items[:n], self.chance, self.greedy), Suite(self.name, self.items[n:], self.chance, self.greedy))


@dataclass
class SuiteScore:
    gold_logprob: np.ndarray  # (n_docs,)
    correct: np.ndarray  # (n_docs,) of 0/1

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def accuracy_stderr(self) -> float:
        n = len(self.correct)
        return float(self.correct.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0

    @property
    def logprob(self) -> float:
        return float(self.gold_logprob.mean())


def build_suite(name: str | Path, *, limit: int | None = DEFAULT_LIMIT, seed: int = 0, folder: str | Path | None = None) -> Suite:
    """A shipped task (`modus_ponens`, `capitals`, ...) or an lm-eval task .yaml, first `limit` test documents."""
    from mindset.evaluate.evaluation import resolve_tasks
    from mindset.evaluate.taskfile import load_task
    from mindset.evaluate.tasks import FEWSHOT_SEED, Task

    with tempfile.TemporaryDirectory(prefix="mindset-suite-") as tmp:
        paths = resolve_tasks(str(name), Path(folder or tmp), seed=seed)
        if len(paths) != 1:
            raise MindsetError(f"{name!r} is a group of {len(paths)} tasks; map one task at a time (e.g. {Path(paths[0]).stem})")
        task = Task(load_task(paths[0]))
        task.check(limit)
        contexts = task.contexts(limit, FEWSHOT_SEED)
        docs = task.docs[: len(contexts)]
        spec = task.spec
        items = []
        if spec.output_type == "multiple_choice":
            mc2 = spec.process_results is not None and spec.process_results.name == "process_results_mc2"
            for doc, context in zip(docs, contexts):
                choices = task.doc_to_choice(doc)
                if mc2:
                    gold = [i for i, label in enumerate(doc["mc2_targets"]["labels"]) if label]
                else:
                    gold = task.gold_indices(doc, choices)
                items.append(Item(context, tuple(spec.target_delimiter + c for c in choices), tuple(gold)))
            chance = float(np.mean([len(it.gold) / len(it.choices) for it in items]))
            return Suite(display(spec.task), items, chance)
        for doc, context in zip(docs, contexts):
            target = task.doc_to_target(doc)
            target = target[0] if isinstance(target, list) else target
            items.append(Item(context, (spec.target_delimiter + str(target),), (0,)))
        return Suite(display(spec.task), items, 0.0, greedy=True)


def display(task_name: str) -> str:
    from mindset.evaluate.suites import display_name

    return display_name(task_name)


def as_suite(suite, *, limit: int | None = DEFAULT_LIMIT, seed: int = 0) -> Suite:
    return suite if isinstance(suite, Suite) else build_suite(suite, limit=limit, seed=seed)


def score_suite(loaded_or_model, suite: Suite, tokenizer=None) -> SuiteScore:
    """Score every document with the current model (and whatever hooks are on it)."""
    return score_suite_replicated(loaded_or_model, suite, 1, tokenizer)[0]


def score_suite_replicated(loaded_or_model, suite: Suite, replicas: int, tokenizer=None) -> list[SuiteScore]:
    """`score_suite` with every forward pass's batch repeated `replicas` times (replica-major rows, see
    `score_tokens_replicated`): one SuiteScore per replica, for hooks that ablate a different component in each."""
    import torch

    from mindset.evaluate.loglikelihood import model_max_length, score_tokens_replicated

    is_module = isinstance(loaded_or_model, torch.nn.Module)  # an HF model has a .model too: its body
    model = loaded_or_model if is_module else loaded_or_model.model
    tokenizer = tokenizer or loaded_or_model.tokenizer
    was_training = model.training
    model.eval()
    try:
        scored = score_tokens_replicated(model, suite.encoded(tokenizer), replicas, max_length=model_max_length(model, tokenizer))
    finally:
        model.train(was_training)
    return [_suite_score(suite, part) for part in scored]


def _suite_score(suite: Suite, scored) -> SuiteScore:
    """Per document: the gold log-prob (summed probability of the correct choices) and correctness."""
    gold_lp, correct, i = [], [], 0
    for it in suite.items:
        part = scored[i : i + len(it.choices)]
        i += len(it.choices)
        lls = np.array([s.logprob for s in part])
        gold_lp.append(float(np.logaddexp.reduce(lls[list(it.gold)])))
        if suite.greedy:
            correct.append(float(part[it.gold[0]].is_greedy))
        else:
            correct.append(float(int(np.argmax(lls)) in it.gold))
    return SuiteScore(np.array(gold_lp), np.array(correct))


def make_suite(name: str, items: Sequence[tuple[str, Sequence[str], int | Sequence[int]]], chance: float | None = None) -> Suite:
    """A suite from (context, choices, gold index or indices) triples, for tasks that are not task files."""
    built = [Item(c, tuple(ch), (g,) if isinstance(g, int) else tuple(g)) for c, ch, g in items]
    if not built:
        raise MindsetError(f"suite {name!r} has no documents")
    if chance is None:
        chance = float(np.mean([len(it.gold) / len(it.choices) for it in built]))
    return Suite(name, built, chance)


def gold_batches(suite: Suite, tokenizer, max_length: int, docs_per_batch: int, device):
    """The suite's correct continuations as attribution batches (`circuits.attribution.Batch`): each
    document's gold choices, run whole as lm-eval runs them (`whole_inputs`), right-padded; the metric is each
    document's gold log-prob, the log of the summed probability of its correct choices, as `score_suite` has it."""
    import torch

    from mindset.circuits.attribution import Batch
    from mindset.evaluate.loglikelihood import whole_inputs

    pairs, starts, i = suite.encoded(tokenizer), [], 0
    for it in suite.items:
        starts.append(i)
        i += len(it.choices)
    for first in range(0, len(suite.items), docs_per_batch):
        rows, doc_of_row, spans = [], [], []  # spans: (row, first logit position, continuation ids)
        for d, (it, start) in enumerate(zip(suite.items[first : first + docs_per_batch], starts[first : first + docs_per_batch])):
            for g in it.gold:
                ctx, cont = pairs[start + g]
                inputs, _ = whole_inputs(ctx, cont, max_length)
                spans.append((len(rows), len(inputs) - len(cont), cont))
                rows.append(inputs)
                doc_of_row.append(d)
        ids = torch.zeros((len(rows), max(len(r) for r in rows)), dtype=torch.long)
        for r, inputs in enumerate(rows):
            ids[r, : len(inputs)] = torch.tensor(inputs)
        docs = torch.tensor(doc_of_row)
        n_docs = int(docs.max()) + 1

        def metric(logits, spans=spans, docs=docs, n_docs=n_docs):
            per_row = torch.stack([
                torch.log_softmax(logits[r, pos : pos + len(cont)].float(), -1).gather(1, torch.tensor(cont, device=logits.device)[:, None]).sum()
                for r, pos, cont in spans
            ])
            return torch.stack([torch.logsumexp(per_row[docs.to(logits.device) == d], 0) for d in range(n_docs)])

        yield Batch(ids.to(device), docs, n_docs, metric)
