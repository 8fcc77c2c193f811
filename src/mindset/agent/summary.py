"""Summaries: turns that no longer fit the context become one 'summary' memory citing their messages
(the seed's "[SUMMARY]"), so what was said stays recallable after the chat session forgets it.

Also the one way the agent asks its model a side question (summaries, reflections): `complete_locally`
for the local model, or a Backend's `complete` (same signature: prompt, max_tokens -> text). The local
model's tokenizer and context length are the budget either way.
"""

from __future__ import annotations

from collections.abc import Callable

from mindset.chat import SamplingParams, encode_prompt, generate_from_ids

SUMMARY_PROMPT = "Summarize this conversation in one or two sentences, keeping names, numbers and facts about the user:\n\n{transcript}"
SUMMARY_TOKENS = 64
Complete = Callable[[str, int], str]


def complete_locally(loaded, prompt: str, max_tokens: int) -> str:
    """The local model's greedy answer to one chat-templated user message ('' when it does not fit)."""
    ids = encode_prompt(loaded.tokenizer, prompt)
    if len(ids) + max_tokens > loaded.context_length:
        return ""
    return generate_from_ids(loaded, ids, SamplingParams(max_new_tokens=max_tokens)).text.strip()


def fit_lines(loaded, template: str, lines: list[str], max_tokens: int, key: str = "transcript") -> str | None:
    """`template` filled with as many of the last `lines` as fit the context beside `max_tokens` new ones
    (the first kept line halved while it alone is too long); None when nothing fits."""
    lines = list(lines)
    while lines:
        prompt = template.format(**{key: "\n".join(lines)})
        if len(encode_prompt(loaded.tokenizer, prompt)) + max_tokens <= loaded.context_length:
            return prompt
        lines = lines[1:] if len(lines) > 1 else [lines[0][: len(lines[0]) // 2]] if len(lines[0]) > 20 else []
    return None


def summarize(loaded, messages: list[tuple[str, str]], complete: Complete | None = None) -> str:
    """One short summary of (role, text) turns, greedy; the transcript is cut from the front until the
    question fits the context. Empty when nothing fits."""
    prompt = fit_lines(loaded, SUMMARY_PROMPT, [f"{role}: {' '.join(text.split())}" for role, text in messages], SUMMARY_TOKENS)
    if prompt is None:
        return ""
    return (complete or (lambda p, n: complete_locally(loaded, p, n)))(prompt, SUMMARY_TOKENS).strip()
