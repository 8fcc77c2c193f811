"""Reflection (Generative Agents, Park et al. 2023, section 4.2): over the recent memories, ask the model
for the most salient high-level questions, recall the memories each question is about, and ask for an
insight that cites them by number; the insight is stored as a 'reflection' memory whose `cites` are the
memory ids it named.

The paper reflects when the importance of recent events passes a threshold; here it is every N new
memories (Agent's reflect_every, `--reflect-every`), counted from the newest memory the last reflection
saw (the 'reflected_through' setting), so two processes on one folder share the count. An answer that
cites no statement by number is stored citing every statement it was shown: they are its evidence.
"""

from __future__ import annotations

import re

QUESTIONS_PROMPT = ("Statements about the user:\n{statements}\n\nWhat are the {n} most salient high-level questions these "
                    "statements answer about the user? One question per line.")
INSIGHT_PROMPT = ("Statements about the user:\n{statements}\n\nWhat high-level insight about the user answers: {question} "
                  "Answer in one sentence, then the numbers of the statements it rests on, like: The user loves music (because of 1, 3)")
RECENT = 100  # memories the questions are asked over (the paper's 100 most recent)
QUESTIONS = 3
EVIDENCE = 6  # memories recalled for each question
QUESTION_TOKENS = 64
INSIGHT_TOKENS = 64


def numbered(memories) -> str:
    return "\n".join(f"{i}. {' '.join(m.text.split())}" for i, m in enumerate(memories, 1))


def parse_questions(answer: str, n: int = QUESTIONS) -> list[str]:
    """The first n question lines of an answer, list markers stripped."""
    lines = [re.sub(r"^\s*(\d+[.)]|[-*•])\s*", "", line).strip() for line in answer.splitlines()]
    questions = [line for line in lines if len(line) > 3 and line.endswith("?")] or [line for line in lines if len(line) > 3]
    return questions[:n]


def parse_insight(answer: str, shown: int) -> tuple[str, list[int]]:
    """(the insight without its citation, the 1-based statement numbers it cites that exist)."""
    text = " ".join(answer.split())
    match = re.search(r"\((?:because of|based on|from|statements?|see)?\s*([\d,\sand]+)\)\s*\.?\s*$", text, re.I)
    if not match:
        return text, []
    numbers = [int(x) for x in re.findall(r"\d+", match.group(1)) if 1 <= int(x) <= shown]
    return text[: match.start()].strip().rstrip(".") + ".", list(dict.fromkeys(numbers))


def reflect(agent) -> list[int]:
    """One reflection over the agent's recent memories: the ids of the reflection memories written."""
    from mindset.agent.summary import fit_lines

    recent = agent.db.memories(latest=RECENT)[::-1]
    agent.db.set_setting("reflected_through", str(max((m.id for m in recent), default=0)))
    if not recent:
        return []
    lines = [f"{i}. {' '.join(m.text.split())}" for i, m in enumerate(recent, 1)]
    prompt = fit_lines(agent.loaded, QUESTIONS_PROMPT.replace("{n}", str(QUESTIONS)), lines, QUESTION_TOKENS, key="statements")
    written = []
    for question in parse_questions(agent.complete(prompt, QUESTION_TOKENS)) if prompt else []:
        evidence = [m for _, m in agent.recall(question, k=EVIDENCE)]
        prompt = fit_lines(agent.loaded, INSIGHT_PROMPT.replace("{question}", question), numbered(evidence).splitlines(), INSIGHT_TOKENS,
                           key="statements")
        if prompt is None:
            continue
        shown = [m for line, m in zip(numbered(evidence).splitlines(), evidence) if line in prompt]  # fit_lines may drop the first
        text, numbers = parse_insight(agent.complete(prompt, INSIGHT_TOKENS), len(evidence))
        if text.strip(" ."):
            cites = [evidence[i - 1].id for i in numbers] or [m.id for m in shown]
            written.append(agent.remember(text, kind="reflection", cites=cites))
    return written


def due(agent) -> bool:
    """Whether reflect_every memories (reflections not counted) arrived since the last reflection."""
    if not agent.reflect_every:
        return False
    through = int(agent.db.setting("reflected_through") or 0)
    count = agent.db.conn.execute("SELECT count(*) FROM memories WHERE id > ? AND kind != 'reflection'", (through,)).fetchone()[0]
    return count >= agent.reflect_every
