"""Evaluating a model on tasks: requests, scores per document, means with standard errors.

Metric names follow lm-eval's results: `acc`, `acc_norm`, and `metric,filter` for a filter other than
"none" (`exact_match,strict-match`, `exact_match,flexible-extract`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mindset.errors import MindsetError
from mindset.evaluate import metrics as M
from mindset.evaluate.generation import generate_until
from mindset.evaluate.loglikelihood import encode_request, model_max_length, score_tokens
from mindset.evaluate.tasks import FEWSHOT_SEED, Task
from mindset.progress import track

MC_METRICS = {"acc", "acc_norm"}


@dataclass
class TaskResult:
    task: str
    output_type: str
    n: int
    num_fewshot: int
    metrics: dict[str, dict[str, float | None]]  # name -> {"value", "stderr"}
    chance: dict[str, float] = field(default_factory=dict)
    truncated_docs: int = 0  # documents whose prompt was cut from the left to fit the model
    seconds: float = 0.0
    source: str | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)  # per document: inputs, outputs, scores

    def as_dict(self, samples: bool = True) -> dict:
        data = asdict(self)
        if not samples:
            data.pop("samples")
        return data


def metric_key(metric: str, filter_name: str) -> str:
    return metric if filter_name == "none" else f"{metric},{filter_name}"


def evaluate_task(
    loaded,
    task: Task,
    *,
    limit: int | None = None,
    seed: int = FEWSHOT_SEED,
    share_context: bool = True,
    fast_cpu: bool = True,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> TaskResult:
    """Score `loaded` on the first `limit` documents of `task` (all when None)."""
    start = time.perf_counter()
    spec = task.spec
    contexts = task.contexts(limit, seed)
    docs = task.docs[: len(contexts)]
    if spec.output_type == "multiple_choice":
        samples = _multiple_choice(loaded, task, docs, contexts, share_context, progress)
    else:
        samples = _generate(loaded, task, docs, contexts, fast_cpu, progress)
    names = list(samples[0]["scores"])
    summary = {}
    for name in names:
        value, stderr = M.mean_and_stderr([s["scores"][name] for s in samples])
        summary[name] = {"value": value, "stderr": stderr}
    truncated = sum(1 for s in samples if s["truncated"])
    if truncated and warn:
        warn(f"{task.name}: {truncated} of {len(samples)} prompts were longer than the model's context and lost their oldest tokens (cut from the left, as lm-eval does)")
    return TaskResult(
        task.name, spec.output_type, len(samples), task.num_fewshot, summary, spec.chance, truncated,
        round(time.perf_counter() - start, 3), str(spec.source) if spec.source else None, samples,
    )


def _multiple_choice(loaded, task: Task, docs, contexts, share_context: bool, progress: bool) -> list[dict]:
    spec = task.spec
    delimiter = spec.target_delimiter
    wanted = [m.metric for m in spec.metrics]
    mc2_native = spec.process_results is not None and spec.process_results.name == "process_results_mc2"
    custom = spec.process_results.load() if spec.process_results is not None and not mc2_native else None
    if custom is None and not mc2_native:
        unknown = [m for m in wanted if m not in MC_METRICS]
        if unknown:
            raise MindsetError(f"{spec.location()}: metric {unknown[0]!r} is not supported for multiple_choice (supported: acc, acc_norm)")
    choices_of = [task.doc_to_choice(doc) for doc in docs]
    golds = [task.gold_indices(doc, choices) for doc, choices in zip(docs, choices_of)] if not (mc2_native or custom) else [None] * len(docs)
    pairs, owners = [], []
    for d, (context, choices) in enumerate(zip(contexts, choices_of)):
        for choice in choices:
            pairs.append(encode_request(loaded.tokenizer, context, delimiter + choice))
            owners.append(d)
    scored = score_tokens(loaded.model, pairs, max_length=model_max_length(loaded.model, loaded.tokenizer), share_context=share_context, progress=progress)
    per_doc: list[list] = [[] for _ in docs]
    for owner, s in zip(owners, scored):
        per_doc[owner].append(s)
    samples = []
    for d, doc in enumerate(docs):
        lls = [s.logprob for s in per_doc[d]]
        greedy = [s.is_greedy for s in per_doc[d]]
        if mc2_native:
            labels = _mc2_labels(task, doc, len(lls))
            scores = {name: M.mc2(lls, labels) for name in wanted}
        elif custom is not None:
            scores = {k: float(v) for k, v in custom(doc, list(zip(lls, greedy))).items()}
        else:
            both = M.multiple_choice_scores(lls, choices_of[d], golds[d] if len(golds[d]) > 1 else golds[d][0])
            scores = {name: both[name] for name in wanted}
        samples.append({
            "doc_id": d, "context": contexts[d], "choices": choices_of[d], "gold": golds[d],
            "loglikelihoods": lls, "is_greedy": greedy, "scores": scores,
            "truncated": max(s.truncated for s in per_doc[d]),
        })
    return samples


def _mc2_labels(task: Task, doc: dict, n_choices: int) -> list[int]:
    """TruthfulQA's layout: doc["mc2_targets"]["labels"], 1 for each true choice."""
    try:
        labels = list(doc["mc2_targets"]["labels"])
    except (KeyError, TypeError):
        raise MindsetError(f"{task.spec.location()}: process_results_mc2 needs mc2_targets.labels in every document") from None
    if len(labels) != n_choices:
        raise MindsetError(f"{task.spec.location()}: a document has {n_choices} choices but {len(labels)} mc2 labels")
    return labels


def _generate(loaded, task: Task, docs, contexts, fast_cpu: bool, progress: bool) -> list[dict]:
    spec = task.spec
    for m in spec.metrics:
        if m.metric != "exact_match":
            raise MindsetError(f"{spec.location()}: metric {m.metric!r} is not supported for generate_until (supported: exact_match)")
    until, budget = task.until()
    samples = []
    for d, (doc, context) in enumerate(track(list(zip(docs, contexts)), len(docs), f"{task.name}: generating", enabled=progress, unit="documents")):
        generated = generate_until(loaded, context, until, budget, fast_cpu=fast_cpu)
        gold = task.doc_to_target(doc)
        if spec.doc_to_choice is not None:
            gold = task.doc_to_choice(doc)[gold]
        references = [str(g) for g in gold] if isinstance(gold, list) else [str(gold)]
        scores, filtered = {}, {}
        for pipeline in spec.filters:
            answer = M.apply_filters(generated.text, [step.model_dump(exclude_none=True) for step in pipeline.filter])
            filtered[pipeline.name] = answer
            for m in spec.metrics:
                options = m.model_dump(include=M.EXACT_MATCH_OPTIONS)
                best = max(M.exact_match(answer, ref, **options) for ref in references)
                scores[metric_key(m.metric, pipeline.name)] = best
        samples.append({
            "doc_id": d, "context": context, "target": gold, "generation": generated.text,
            "filtered": filtered, "scores": scores, "truncated": generated.truncated,
        })
    return samples
