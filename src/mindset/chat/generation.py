"""Generation over the KV cache: one prefill, then one forward pass of one token per new token.

A bare loop: no logits processors, no stopping-criteria objects, logits only for the last position.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import torch

from mindset.chat.completion import CompletionText
from mindset.chat.cpu_decode import fast_cpu_decode, pays
from mindset.chat.sampling import SamplingParams, choose_token
from mindset.errors import MindsetError

Messages = list[dict[str, str]]


@dataclass
class Generation:
    text: str
    tokens: list[int]
    prompt_tokens: int
    finish_reason: str  # "stop" (end token or stop string), "length" (max_new_tokens) or "context" (context full)
    prefill_seconds: float
    decode_seconds: float
    stop_ids: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        """Decode speed: tokens after the first, over the time spent producing them."""
        return (len(self.tokens) - 1) / self.decode_seconds if len(self.tokens) > 1 and self.decode_seconds > 0 else 0.0


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a turn: the tokenizer's and generation config's EOS, and ChatML's <|im_end|>."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(ids)


def encode_prompt(tokenizer, prompt: str | Messages, *, chat: bool = True, system: str | None = None) -> list[int]:
    """Token ids of a prompt: through the chat template (a string becomes one user turn), or raw text."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise MindsetError("the prompt is empty")
        if not chat:
            return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        messages: Messages = [{"role": "user", "content": prompt}]
    else:
        messages = list(prompt)
        if not messages or not any(m.get("content", "").strip() for m in messages):
            raise MindsetError("the conversation is empty")
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    if not tokenizer.chat_template:
        raise MindsetError("this model's tokenizer has no chat template; generate from raw text instead (chat: false)")
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


@torch.inference_mode()
def stream_steps(
    model, prompt_ids: Sequence[int], params: SamplingParams, stop_ids: Sequence[int], max_new_tokens: int, *, fast_cpu: bool = True
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (new token id, the logits (V,) it was chosen from) one at a time; ends after a stop id (which is
    yielded) or `max_new_tokens`. The logits are the model's, before temperature: what log-probabilities read.

    fast_cpu: use the batched matrix-vector path for decode steps on the CPU (see cpu_decode.py).
    Close the iterator (or exhaust it) to restore the model.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    generator = None if params.greedy else torch.Generator(device=device).manual_seed(params.seed)
    stop = set(stop_ids)
    cache = DynamicCache(config=model.config)
    input_ids = torch.tensor([list(prompt_ids)], device=device)
    with fast_cpu_decode(model, enabled=fast_cpu and pays(model)):
        for _ in range(max_new_tokens):
            logits = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
            token = choose_token(logits[0, -1], params, generator)
            yield token, logits[0, -1]
            if token in stop:
                return
            input_ids = torch.tensor([[token]], device=device)


def stream_tokens(
    model, prompt_ids: Sequence[int], params: SamplingParams, stop_ids: Sequence[int], max_new_tokens: int, *, fast_cpu: bool = True
) -> Iterator[int]:
    """`stream_steps` without the logits: new token ids one at a time. Close it (or exhaust it) to restore the model."""
    with closing(stream_steps(model, prompt_ids, params, stop_ids, max_new_tokens, fast_cpu=fast_cpu)) as steps:
        for token, _ in steps:
            yield token


def generate(
    loaded,
    prompt: str | Messages,
    params: SamplingParams | None = None,
    *,
    chat: bool = True,
    system: str | None = None,
    stop: Sequence[str] = (),
    on_text: Callable[[str], None] | None = None,
    fast_cpu: bool = True,
) -> Generation:
    """Generate a completion for `prompt` with a LoadedModel; `on_text` receives text as it is produced."""
    params = params or SamplingParams()
    prompt_ids = encode_prompt(loaded.tokenizer, prompt, chat=chat, system=system)
    return generate_from_ids(loaded, prompt_ids, params, stop=stop, on_text=on_text, fast_cpu=fast_cpu)


def check_prompt_fits(loaded, n_prompt: int, max_new_tokens: int) -> int:
    """How many new tokens fit after the prompt; a prompt that fills the context is an error."""
    context = loaded.context_length
    if n_prompt >= context:
        raise MindsetError(f"the prompt is {n_prompt} tokens long; {loaded.name} reads at most {context} tokens")
    return min(max_new_tokens, context - n_prompt)


def generate_from_ids(
    loaded, prompt_ids: list[int], params: SamplingParams, *, stop: Sequence[str] = (), on_text=None, fast_cpu: bool = True
) -> Generation:
    budget = check_prompt_fits(loaded, len(prompt_ids), params.max_new_tokens)
    stop_ids = stop_token_ids(loaded.model, loaded.tokenizer)
    completion = CompletionText(loaded.tokenizer, stop_ids, stop)
    start = first_token_at = time.perf_counter()
    with closing(stream_tokens(loaded.model, prompt_ids, params, stop_ids, budget, fast_cpu=fast_cpu)) as stream:
        for token in stream:
            if not completion.tokens:
                first_token_at = time.perf_counter()
            delta = completion.push(token)
            if delta and on_text:
                on_text(delta)
            if completion.finish_reason:
                break
    tail = completion.close("length" if budget == params.max_new_tokens else "context")
    if tail and on_text:
        on_text(tail)
    end = time.perf_counter()
    return Generation(
        completion.text, completion.tokens, len(prompt_ids), completion.finish_reason, first_token_at - start, end - first_token_at, stop_ids
    )
