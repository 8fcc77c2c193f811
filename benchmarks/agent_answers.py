"""Answer accuracy for benchmarks/agent_recall.py --answers: the 20 facts told over three sessions, then each
question asked in a later session through Agent.reply (greedy), with memory and without.

The sessions are written through Agent.remember (the embedding and importance a reply's observation gets,
without generating 60 replies). Each question is asked in its own copy of the folder, so one question's
stored turn cannot help or crowd the next; reload=0, so only recall carries the facts (the reloaded
history would otherwise hold the last session's turns). An answer counts when it contains the fact's
answer word (case-insensitive). Without memory: the same questions to an Agent on an empty folder.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

MAX_NEW_TOKENS = 32
KS = (1, 3, 5)


def write_sessions(loaded, folder: Path, embed=None) -> None:
    from agent_facts import sessions

    from mindset.agent import Agent

    for turns in sessions():
        agent = Agent(loaded, folder, embed=embed)
        for text in turns:
            agent.remember(text)
        agent.close()


def ask(loaded, folder: Path, question: str, embed=None) -> tuple[str, list[str]]:
    """(the answer, the texts recalled into its prompt, best first)."""
    from mindset.agent import Agent
    from mindset.chat import SamplingParams

    agent = Agent(loaded, folder, params=SamplingParams(max_new_tokens=MAX_NEW_TOKENS), embed=embed, reload=0)
    answer = agent.reply(question)
    recalled = [m.text for _, m in agent.last_recalled]
    agent.close()
    return answer, recalled


def answers(spec: str, embed_model: str | None = None, on_row=None) -> dict:
    """The summary (and every row); `on_row(summary so far)` after each question, so a cut run keeps its part."""
    from agent_facts import FACTS

    from mindset.agent import Agent
    from mindset.agent.embed import resolve_embedder
    from mindset.models import load

    loaded = load(spec, device="cpu", dtype="float32")
    embed = resolve_embedder(embed_model, loaded)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        written, empty = Path(root) / "written", Path(root) / "empty"
        write_sessions(loaded, written, embed)
        probe = Agent(loaded, written, embed=embed)
        top = {statement: [m.text for _, m in probe.recall(question, max(KS))] for statement, question, _ in FACTS}
        probe.close()
        for i, (statement, question, word) in enumerate(FACTS):
            copy = Path(root) / f"q{i}"
            shutil.copytree(written, copy)
            with_memory, recalled = ask(loaded, copy, question, embed)
            without, _ = ask(loaded, empty, question, embed)
            shutil.rmtree(empty)
            rows.append({"question": question, "word": word, "with_memory": with_memory, "without_memory": without,
                         "hit_with": word.lower() in with_memory.lower(), "hit_without": word.lower() in without.lower(),
                         "in_prompt": statement in recalled, **{f"top{k}": statement in top[statement][:k] for k in KS}})
            print(rows[-1], flush=True)
            if on_row is not None:
                on_row(summary(spec, embed.name, rows, start))
    return summary(spec, embed.name, rows, start)


def summary(spec: str, embedder: str, rows: list[dict], start: float) -> dict:
    return {"model": spec, "embedder": embedder, "questions": len(rows), "seconds": time.perf_counter() - start,
            "with_memory": sum(r["hit_with"] for r in rows), "without_memory": sum(r["hit_without"] for r in rows),
            "in_prompt": sum(r["in_prompt"] for r in rows), **{f"top{k}": sum(r[f"top{k}"] for r in rows) for k in KS}, "rows": rows}


def publish_answers(found: dict, script: str) -> None:
    from common import publish

    n = found["questions"]

    def cell(x):
        return f"{x}/{n} ({100 * x / n:.0f}%)"

    publish(script, "the 20 facts: answer contains the fact, with memory and without; the right memory in the top k",
            ["model", "embedder", "answer, with memory", "answer, without", *[f"top {k}" for k in KS], "in the reply's prompt"],
            [[found["model"], found["embedder"], cell(found["with_memory"]), cell(found["without_memory"]),
              *[cell(found[f"top{k}"]) for k in KS], cell(found["in_prompt"])]], found)
