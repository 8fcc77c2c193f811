"""Log-likelihood of continuations given contexts, tokenized and truncated exactly as lm-eval's HF backend does.

Tokenization (lm-eval `TemplateLM.loglikelihood` / `_encode_pair`): trailing spaces of the context move to the
front of the continuation; the context is encoded alone and the continuation is what encoding
context+continuation adds after the context's token count. The model reads `context_ids + continuation_ids`,
which can differ from the tokens of the joined string: that is what lm-eval scores, so it is what we score.
An empty context is replaced by the BOS token (EOS when there is none).

Truncation: when context+continuation is longer than the model's context window plus one, tokens are cut
from the left (the context's oldest tokens), as lm-eval does; `Scored.truncated` counts them and the
caller is told.

Speed: a question's choices share its context. The context is run once, its KV cache is repeated for the
choices, and only the continuation tokens are run for each (a one-token continuation needs no second pass
at all). lm-eval instead runs context+continuation once per choice and takes log-softmax over every
position; the results agree to float rounding (tested, and checked against lm-eval itself by
`benchmarks/peer_check.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mindset.errors import MindsetError
from mindset.models.anatomy import text_config
from mindset.progress import track


@dataclass(frozen=True)
class Request:
    context: str
    continuation: str


@dataclass
class Scored:
    logprob: float  # sum of the continuation tokens' log-probabilities, in nats
    is_greedy: bool  # every continuation token is the argmax at its position
    tokens: int  # continuation tokens scored
    truncated: int = 0  # context tokens cut from the left to fit the model


def model_max_length(model, tokenizer=None) -> int:
    """The context window, looked up as lm-eval does: n_positions, max_position_embeddings, n_ctx, then the tokenizer."""
    config = text_config(model.config)
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit < 10**12:
        return int(limit)
    return 2048


def prefix_token_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode(tokenizer, text: str, add_special_tokens: bool | None = None) -> list[int]:
    """lm-eval's `tok_encode`: the tokenizer's default special tokens, unless the text already starts with BOS."""
    kwargs = {}
    if add_special_tokens is not None:
        kwargs["add_special_tokens"] = add_special_tokens
    elif text.startswith(tokenizer.decode(prefix_token_id(tokenizer))):
        kwargs["add_special_tokens"] = False
    return list(tokenizer.encode(text, verbose=False, **kwargs))


def encode_request(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval splits them."""
    if context == "":
        cont = encode(tokenizer, continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if not cont or cont[0] != prefix else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = encode(tokenizer, context + continuation)
    ctx = encode(tokenizer, context)
    return ctx, whole[len(ctx) :]


def _continuation_scores(logprobs: torch.Tensor, targets: torch.Tensor) -> tuple[float, bool]:
    """logprobs (n, V) at the positions that predict targets (n,)."""
    picked = logprobs.gather(1, targets[:, None]).squeeze(1)
    return float(picked.sum()), bool((logprobs.argmax(-1) == targets).all())


@torch.inference_mode()
def score_tokens(
    model,
    pairs: Sequence[tuple[list[int], list[int]]],
    *,
    max_length: int,
    share_context: bool = True,
    progress: bool = False,
) -> list[Scored]:
    """Score (context ids, continuation ids) pairs. Pairs with identical context ids share one context pass."""
    return score_tokens_replicated(model, pairs, 1, max_length=max_length, share_context=share_context, progress=progress)[0]


@torch.inference_mode()
def score_tokens_replicated(
    model,
    pairs: Sequence[tuple[list[int], list[int]]],
    replicas: int,
    *,
    max_length: int,
    share_context: bool = True,
    progress: bool = False,
) -> list[list[Scored]]:
    """`score_tokens` with every forward pass's batch repeated `replicas` times, replica-major: a batch of
    rows (B, ...) becomes (replicas * B, ...) whose rows r*B ... r*B+B-1 are replica r. Hooks that treat the
    replicas differently (circuits' batched ablation) get one score list per replica from one pass."""
    for ctx, cont in pairs:
        if not ctx:
            raise ValueError("context ids are empty; encode_request puts a BOS token there")
        if not cont:
            raise MindsetError("a continuation encodes to no tokens; every answer choice must be non-empty text")
        if len(cont) > max_length:
            raise MindsetError(f"an answer of {len(cont)} tokens does not fit the model's context ({max_length} tokens)")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, _) in enumerate(pairs):
        groups.setdefault(tuple(ctx), []).append(i)
    results: list[list[Scored | None]] = [[None] * len(pairs) for _ in range(replicas)]
    device = next(model.parameters()).device
    for ctx, members in track(list(groups.items()), len(groups), "log-likelihoods", enabled=progress, unit="contexts"):
        fits = all(len(ctx) + len(pairs[i][1]) <= max_length + 1 for i in members)
        if share_context and fits:
            scored = _score_shared(model, list(ctx), [pairs[i][1] for i in members], device, replicas)  # [replica][member]
        else:
            per_member = [_score_whole(model, list(ctx), pairs[i][1], max_length, device, replicas) for i in members]
            scored = [list(row) for row in zip(*per_member)]
        for r in range(replicas):
            for i, s in zip(members, scored[r]):
                results[r][i] = s
    return results  # type: ignore[return-value]


def whole_inputs(ctx: list[int], cont: list[int], max_length: int) -> tuple[list[int], int]:
    """lm-eval's input for one pair: context+continuation left-truncated to the window, last token dropped;
    and how many context tokens the truncation cut."""
    full = ctx + cont
    return full[-(max_length + 1) :][:-1], max(0, len(full) - (max_length + 1))


def _score_whole(model, ctx: list[int], cont: list[int], max_length: int, device, replicas: int = 1) -> list[Scored]:
    """lm-eval's way: one pass over context+continuation (one row per replica)."""
    inputs, truncated = whole_inputs(ctx, cont, max_length)
    logits = model(input_ids=torch.tensor([inputs] * replicas, device=device), logits_to_keep=len(cont)).logits
    targets = torch.tensor(cont, device=device)
    out = []
    for r in range(replicas):
        logprob, greedy = _continuation_scores(torch.log_softmax(logits[r].float(), dim=-1), targets)
        out.append(Scored(logprob, greedy, len(cont), truncated))
    return out


def _score_shared(model, ctx: list[int], conts: list[list[int]], device, replicas: int = 1) -> list[list[Scored]]:
    """One pass over the context (its KV cache kept), then one batched pass over the continuations;
    [replica][continuation]."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    out = model(input_ids=torch.tensor([ctx] * replicas, device=device), past_key_values=cache, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (R, V): predicts every continuation's first token
    longer = [i for i, c in enumerate(conts) if len(c) > 1]
    rest = None
    if longer:
        width = max(len(conts[i]) - 1 for i in longer)
        # right-padded: causal attention keeps padding out of the real positions, whose logits are all we read
        batch = torch.zeros((len(longer), width), dtype=torch.long, device=device)
        for row, i in enumerate(longer):
            batch[row, : len(conts[i]) - 1] = torch.tensor(conts[i][:-1], device=device)
        cache = out.past_key_values
        if len(longer) > 1:
            cache.batch_repeat_interleave(len(longer))  # replica r's context row becomes rows r*L ... r*L+L-1
        rest = model(input_ids=batch.repeat(replicas, 1), past_key_values=cache, use_cache=True).logits.float()  # (R*L, width, V)
    scored: list[list[Scored]] = [[] for _ in range(replicas)]
    for r in range(replicas):
        for i, cont in enumerate(conts):
            targets = torch.tensor(cont, device=device)
            if len(cont) == 1:
                logprobs = first[r][None]
            else:
                row = r * len(longer) + longer.index(i)
                logprobs = torch.cat([first[r][None], torch.log_softmax(rest[row, : len(cont) - 1], dim=-1)])
            logprob, greedy = _continuation_scores(logprobs, targets)
            scored[r].append(Scored(logprob, greedy, len(cont)))
    return scored


def loglikelihoods(
    loaded,
    requests: Sequence[Request | tuple[str, str]],
    *,
    max_length: int | None = None,
    share_context: bool = True,
    progress: bool = False,
) -> list[Scored]:
    """Log-likelihood of each request's continuation given its context, with a LoadedModel.

    max_length: the window (default: the model's, found as lm-eval finds it).
    share_context: run a shared context once per group of requests (False: one pass per request, as lm-eval).
    """
    tokenizer = loaded.tokenizer
    max_length = max_length or model_max_length(loaded.model, tokenizer)
    pairs = [encode_request(tokenizer, *((r.context, r.continuation) if isinstance(r, Request) else r)) for r in requests]
    return score_tokens(loaded.model, pairs, max_length=max_length, share_context=share_context, progress=progress)
