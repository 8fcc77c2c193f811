"""Greedy generation until a stop string, as lm-eval's `generate_until` does it, on mindset's decode loop.

The prompt is encoded like lm-eval's batch encoder (the tokenizer's default special tokens unless the prompt
already starts with BOS) and cut from the left to `max_length - max_gen_toks` tokens when longer. Generation
stops at an end-of-turn token, at `max_gen_toks` tokens, or as soon as a stop string appears; the text is
the generated tokens decoded without special tokens, cut at the first stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mindset.errors import MindsetError
from mindset.evaluate.loglikelihood import model_max_length


@dataclass
class Generated:
    text: str
    tokens: int
    truncated: int = 0  # prompt tokens cut from the left


def encode_prompt(tokenizer, text: str) -> list[int]:
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(text)["input_ids"])


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    for stop in until:
        if stop:
            text = text.split(stop)[0]
    return text


def generate_until(loaded, context: str, until: Sequence[str], max_gen_toks: int = 256, *, max_length: int | None = None, fast_cpu: bool = True) -> Generated:
    from mindset.chat.generation import generate_from_ids
    from mindset.chat.sampling import SamplingParams

    tokenizer = loaded.tokenizer
    max_length = max_length or model_max_length(loaded.model, tokenizer)
    room = max_length - max_gen_toks
    if room <= 0:
        raise MindsetError(f"max_gen_toks ({max_gen_toks}) must be less than the model's context ({max_length} tokens)")
    ids = encode_prompt(tokenizer, context)
    truncated = max(0, len(ids) - room)
    ids = ids[-room:]
    if not ids:
        raise MindsetError("a generation prompt encodes to no tokens")
    eos = tokenizer.decode([tokenizer.eos_token_id], skip_special_tokens=False) if tokenizer.eos_token_id is not None else None
    stops = list(until) + ([eos] if eos and eos not in until else [])
    params = SamplingParams(temperature=0.0, max_new_tokens=max_gen_toks)
    result = generate_from_ids(loaded, ids, params, stop=stops, fast_cpu=fast_cpu)
    tokens = result.tokens[:-1] if result.tokens and result.tokens[-1] in result.stop_ids else result.tokens
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return Generated(cut_at_stops(text, stops), len(result.tokens), truncated)
