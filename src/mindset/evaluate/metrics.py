"""Metrics with lm-eval's semantics, per document, and their mean with a standard error.

Multiple choice (lm-eval `ConfigurableTask.process_results`):
- acc: 1 if the choice with the highest summed log-likelihood is the gold one (the first on ties, as argmax).
- acc_norm: the same after dividing each log-likelihood by the choice's length in characters
  (the choice text, without the target delimiter).
- mc2 (TruthfulQA): the probability mass of the true choices, exp(ll) normalised over all choices.
Generation:
- exact_match: prediction == reference after `regexes_to_ignore` (removed, in order, from both),
  `ignore_case`, `ignore_punctuation`, `ignore_numbers` — HF evaluate's exact_match, as lm-eval uses it.
Filters (applied to generations before scoring, as lm-eval's `filter_list`): regex (findall, then
`group_select`; a tuple match keeps its first non-empty group; stripped; "[invalid]" when nothing matches),
take_first, remove_whitespace (strip), lowercase, uppercase.
Aggregation: mean, standard error = sample standard deviation / sqrt(n) (lm-eval's `mean_stderr`).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from mindset.errors import MindsetError


def argmax(values: Sequence[float]) -> int:
    return int(np.argmax(np.asarray(values, dtype=np.float64)))


def multiple_choice_scores(lls: Sequence[float], choices: Sequence[str], gold: int | list[int]) -> dict[str, float]:
    """acc and acc_norm for one document; gold is an index, or a list of acceptable indices."""
    pred = argmax(lls)
    pred_norm = argmax(np.asarray(lls, dtype=np.float64) / np.array([float(len(c)) for c in choices]))
    golds = gold if isinstance(gold, list) else [gold]
    return {"acc": float(pred in golds), "acc_norm": float(pred_norm in golds)}


def mc2(lls: Sequence[float], labels: Sequence[int]) -> float:
    """Probability mass of the true choices (labels == 1), normalised over all choices."""
    if len(lls) != len(labels):
        raise MindsetError(f"mc2 needs one label per choice: {len(lls)} choices, {len(labels)} labels")
    probs = np.exp(np.asarray(lls, dtype=np.float64))
    probs = probs / probs.sum()
    return float(probs[np.asarray(labels) == 1].sum())


def exact_match(
    prediction: str,
    reference: str,
    *,
    regexes_to_ignore: Sequence[str] | None = None,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> float:
    for pattern in regexes_to_ignore or ():
        prediction, reference = re.sub(pattern, "", prediction), re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        table = str.maketrans("", "", string.punctuation)
        prediction, reference = prediction.translate(table), reference.translate(table)
    if ignore_numbers:
        table = str.maketrans("", "", string.digits)
        prediction, reference = prediction.translate(table), reference.translate(table)
    return float(prediction == reference)


EXACT_MATCH_OPTIONS = {"regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers"}


# --- filters: each maps one generation to one generation --------------------------------------------


def regex_filter(text: str, regex_pattern: str = r"#### (\-?[0-9\.\,]+)", group_select: int = 0, fallback: str = "[invalid]") -> str:
    matches = re.findall(regex_pattern, text)
    if not matches:
        return fallback
    match = matches[group_select]
    if isinstance(match, tuple):
        match = next((m for m in match if m), fallback)
    return match.strip()


FILTERS = {
    "regex": regex_filter,
    "take_first": None,  # one generation per document: nothing to choose
    "remove_whitespace": lambda text: text.strip(),
    "lowercase": lambda text: text.lower(),
    "uppercase": lambda text: text.upper(),
}


def apply_filters(text: str, steps: Sequence[dict[str, Any]]) -> str:
    """Run one filter pipeline (a `filter_list` entry's `filter`) over a generation."""
    for step in steps:
        function = FILTERS[step["function"]]
        if function is not None:
            text = function(text, **{k: v for k, v in step.items() if k != "function"})
    return text


# --- aggregation ---------------------------------------------------------------------------------------


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt(n)); no error for a single value."""
    n = len(values)
    if n == 0:
        raise MindsetError("no documents were scored")
    mu = sum(values) / n
    if n < 2:
        return mu, None
    variance = sum((v - mu) ** 2 for v in values) / (n - 1)
    return mu, math.sqrt(variance) / math.sqrt(n)
