"""Summaries: turns that no longer fit the context become one 'summary' memory citing their messages
(the seed's "[SUMMARY]"), so what was said stays recallable after the chat session forgets it."""

from __future__ import annotations

from mindset.chat import SamplingParams, encode_prompt, generate_from_ids

SUMMARY_PROMPT = "Summarize this conversation in one or two sentences, keeping names, numbers and facts about the user:\n\n{transcript}"
SUMMARY_TOKENS = 64


def summarize(loaded, messages: list[tuple[str, str]]) -> str:
    """One short summary of (role, text) turns by the model, greedy; the transcript is cut from the front
    until the question fits the context. Empty when nothing fits."""
    lines = [f"{role}: {' '.join(text.split())}" for role, text in messages]
    while lines:
        ids = encode_prompt(loaded.tokenizer, SUMMARY_PROMPT.format(transcript="\n".join(lines)))
        if len(ids) + SUMMARY_TOKENS <= loaded.context_length:
            return generate_from_ids(loaded, ids, SamplingParams(max_new_tokens=SUMMARY_TOKENS)).text.strip()
        lines = lines[1:] if len(lines) > 1 else [lines[0][: len(lines[0]) // 2]] if len(lines[0]) > 20 else []
    return ""
