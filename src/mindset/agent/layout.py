"""Where a reply's recalled memories go in the prompt. A 135M model answers from its system message poorly
(SmolLM2-135M said "a cat" with "My cat is ... named Tom" there), so the layouts are measured in
benchmarks/agent_answers.py (chosen on a separate person's facts, then reported on the test facts):

- "system": the system message lists the memories with the date each was noted (Generative Agents' form);
- "system-facts": the system message lists them as facts about the user, without dates;
- "user": the user turn carries them, right before the question ("Things I told you earlier: ...");
- "user-answer": as "user", plus an instruction to answer from them in one short sentence.

Only the prompt of the turn being answered carries the memories: the stored message and the history
the next turns see hold the user's own words.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError

LAYOUTS = ("system", "system-facts", "user", "user-answer")
DEFAULT_LAYOUT = "system"
MEMORY_CHARS = 300  # a recalled memory is cut to this many characters in the prompt


class LayoutOptions(BaseModel):
    """The layout as an option (`mindset chat --memory-layout`): a pattern rather than a Literal, so a bad
    value's message names it beside the allowed ones."""

    model_config = ConfigDict(extra="forbid")

    layout: str = Field(DEFAULT_LAYOUT, pattern=f"^({'|'.join(LAYOUTS)})$",
                        description="with --memory: where recalled memories go in the prompt: system (the system message, with their dates), "
                                    "system-facts (the system message, as facts about the user), user (the user turn, before the message), "
                                    "user-answer (as user, asking for a one-sentence answer from them)")


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise MindsetError(f"memory layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def place(layout: str, system: str, memories, text: str) -> tuple[str, str]:
    """(system message, user message) of a turn answering `text` with `memories` (agent.db.Memory, best first)."""
    if not memories:
        return system, text
    if layout == "system":
        lines = [f"- [{format_time(m.created)}] {m.text[:MEMORY_CHARS]}" for m in memories]
        return system + "\nWhat you remember from earlier conversations (noted on the date shown):\n" + "\n".join(lines), text
    lines = "\n".join(f"- {m.text[:MEMORY_CHARS]}" for m in memories)
    if layout == "system-facts":
        return system + "\nFacts you know about the user:\n" + lines, text
    if layout == "user":
        return system, f"Things I told you earlier:\n{lines}\n\n{text}"
    if layout == "user-answer":
        return system, f"Things I told you earlier:\n{lines}\n\nAnswer from these facts in one short sentence: {text}"
    raise MindsetError(f"memory layout {layout!r} is not one of {', '.join(LAYOUTS)}")


def format_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))
