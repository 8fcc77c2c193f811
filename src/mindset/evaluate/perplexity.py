"""Perplexity of a text under a model, with a sliding window for texts longer than the context.

Every token after the first is scored exactly once (with stride == context, the disjoint-chunk
shortcut, the first token of each chunk has no history and is skipped, as in HF's recipe). Windows of `context` tokens start every `stride`
tokens; each window scores only the tokens the previous window did not, so each scored token sees at
least `context - stride` tokens of history (all of it while the text fits in one window).
The result is token-weighted: exp(total NLL / scored tokens), not a mean of window means.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from mindset.errors import MindsetError
from mindset.models.loading import context_length
from mindset.progress import track


@dataclass
class Perplexity:
    perplexity: float
    nll: float  # mean negative log-likelihood per scored token, in nats
    tokens: int  # scored tokens
    windows: int
    context: int
    stride: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    begin: int  # first input token
    end: int  # one past the last input token
    first_target: int  # first token this window scores (absolute position)


def plan_windows(n_tokens: int, context: int, stride: int) -> list[Window]:
    """Windows that together score tokens 1..n-1 once each."""
    if context < 2:
        raise MindsetError(f"the window must hold at least 2 tokens, got {context}")
    if not 0 < stride <= context:
        raise MindsetError(f"the stride must be between 1 and the window ({context}), got {stride}")
    windows, scored_up_to = [], 1  # token 0 has no history and is never scored
    for begin in range(0, max(n_tokens - 1, 1), stride):
        end = min(begin + context, n_tokens)
        # a window's first token has no history inside it: with stride == context it goes unscored
        first = max(scored_up_to, begin + 1)
        if end > first:
            windows.append(Window(begin, end, first))
            scored_up_to = end
        if end == n_tokens:
            break
    return windows


@torch.inference_mode()
def perplexity_of_ids(
    model,
    ids: list[int] | torch.Tensor,
    *,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 1,
    progress: bool = False,
) -> Perplexity:
    """Perplexity of a token sequence. context defaults to the model's (at most 1024), stride to half of it."""
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise MindsetError(f"perplexity needs at least 2 tokens, the text has {ids.numel()}")
    limit = context_length(model)
    context = context or min(1024, limit)
    if context > limit:
        raise MindsetError(f"a window of {context} tokens is longer than the model's context ({limit})")
    stride = stride or max(1, context // 2)
    windows = plan_windows(ids.numel(), context, stride)
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    batches = _batches(windows, batch_size)
    for batch in track(batches, len(batches), "perplexity", enabled=progress, unit="batches of windows" if batch_size > 1 else "windows"):
        inputs = torch.stack([ids[w.begin : w.end] for w in batch]).to(device)
        # logits only where a target is scored: the position before each new target
        keep = max(w.end - w.first_target for w in batch) + 1
        logits = model(input_ids=inputs, logits_to_keep=keep).logits.float()
        for row, w in enumerate(batch):
            n_new = w.end - w.first_target
            predicting = logits[row, -(n_new + 1) : -1]  # (n_new, V)
            targets = inputs[row, -n_new:]
            nll = torch.nn.functional.cross_entropy(predicting, targets, reduction="sum")
            total_nll += float(nll)
            total_tokens += n_new
    mean = total_nll / total_tokens
    return Perplexity(math.exp(mean), mean, total_tokens, len(windows), context, stride)


def _batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    """Consecutive windows of equal length share a forward pass."""
    batches: list[list[Window]] = []
    for w in windows:
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and (last[0].end - last[0].begin) == (w.end - w.begin):
            last.append(w)
        else:
            batches.append([w])
    return batches


def perplexity(
    model,
    text: str,
    *,
    tokenizer=None,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 1,
    max_tokens: int | None = None,
    progress: bool = False,
) -> Perplexity:
    """Perplexity of `text`. `model` is a LoadedModel, or an HF model given with its `tokenizer`.

    max_tokens: score only the first max_tokens tokens of the text (for quick looks on slow machines).
    """
    if tokenizer is None:
        if not hasattr(model, "tokenizer"):
            raise TypeError("pass a LoadedModel, or an HF model together with tokenizer=")
        model, tokenizer = model.model, model.tokenizer
    elif hasattr(model, "tokenizer"):
        model = model.model
    if not text.strip():
        raise MindsetError("the text is empty")
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    return perplexity_of_ids(model, ids, context=context, stride=stride, batch_size=batch_size, progress=progress)
