"""Answer accuracy for benchmarks/agent_recall.py --answers: a person's 20 facts told over three sessions, then
each question asked in a later session through Agent.reply (greedy, MAX_NEW_TOKENS), with memory and without.

The prompt layout of the recalled memories (agent.layout.LAYOUTS) is chosen on a second person
(TUNING_FACTS, session seed 1): every layout answers those 20 questions and the best (ties: the earlier in
LAYOUTS, so the default "system" wins a tie) is then measured once on the test person (FACTS, seed 0), beside
the default layout and the answers without memory. Nothing is chosen on the test questions.

The sessions are written through Agent.remember (the embedding and importance a reply's observation gets,
without generating 60 replies). Each question is asked in its own copy of the folder, so one question's
stored turn cannot help or crowd the next; reload=0, so only recall carries the facts. An answer counts
when it contains the fact's answer word (case-insensitive). Without memory: the same questions to an Agent
on an empty folder.

backend: a URL of an OpenAI-compatible server that writes the replies (Agent's --backend path) while the
embeddings, recall and prompt stay local; agent_recall.py --answers-backend llama-server starts llama.cpp's
server on mindset's q8_0 GGUF export of the same model.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

MAX_NEW_TOKENS = 24  # the answers are one short sentence; longer only costs time
KS = (1, 3, 5)
TUNING_SEED, TEST_SEED = 1, 0


def write_sessions(loaded, folder: Path, embed=None, facts=None, seed: int = TEST_SEED) -> None:
    from agent_facts import sessions

    from mindset.agent import Agent

    for turns in sessions(seed, facts=facts):
        agent = Agent(loaded, folder, embed=embed)
        for text in turns:
            agent.remember(text)
        agent.close()


def ask(loaded, folder: Path, question: str, embed=None, layout: str = "system", backend=None) -> tuple[str, list[str]]:
    """(the answer, the texts recalled into its prompt, best first)."""
    from mindset.agent import Agent
    from mindset.chat import SamplingParams

    agent = Agent(loaded, folder, params=SamplingParams(max_new_tokens=MAX_NEW_TOKENS), embed=embed, reload=0, layout=layout, backend=backend)
    answer = agent.reply(question)
    recalled = [m.text for _, m in agent.last_recalled]
    agent.close()
    return answer, recalled


class Person:
    """One person's facts written to a folder, with the retrieval of each question (what mindset controls)."""

    def __init__(self, loaded, root: Path, name: str, facts, seed: int, embed):
        from mindset.agent import Agent

        self.loaded, self.root, self.facts, self.embed = loaded, root, facts, embed
        self.written = root / f"{name}-written"
        write_sessions(loaded, self.written, embed, facts, seed)
        probe = Agent(loaded, self.written, embed=embed)
        self.top = {s: [m.text for _, m in probe.recall(q, max(KS))] for s, q, _ in facts}
        probe.close()

    def ask_all(self, layout: str | None, backend, tick) -> list[dict]:
        """Every question once; layout None asks without memory (an empty folder)."""
        rows = []
        for i, (statement, question, word) in enumerate(self.facts):
            folder = self.root / f"q{i}"
            if layout is not None:
                shutil.copytree(self.written, folder)
            answer, recalled = ask(self.loaded, folder, question, self.embed, layout or "system", backend)
            shutil.rmtree(folder)
            rows.append({"question": question, "word": word, "answer": answer, "hit": word.lower() in answer.lower(),
                         "in_prompt": statement in recalled, **{f"top{k}": statement in self.top[statement][:k] for k in KS}})
            tick(f"{layout or 'no memory'}: {question} -> {answer[:60]!r}")
        return rows


def answers(spec: str, embed_model: str | None = None, layouts=None, backend_url: str | None = None, label: str | None = None,
            on_part=None) -> dict:
    """The summary: each layout's hits on the tuning person, the chosen and the default layout's on the test
    person, without memory there, and every row. `on_part(summary so far)` after each pass, so a cut run keeps its part."""
    from agent_facts import FACTS, TUNING_FACTS
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mindset.agent.embed import resolve_embedder
    from mindset.agent.layout import DEFAULT_LAYOUT, LAYOUTS
    from mindset.models import load

    layouts = list(layouts or LAYOUTS)
    loaded = load(spec, device="cpu", dtype="float32")
    embed = resolve_embedder(embed_model, loaded)
    backend = None
    if backend_url is not None:
        from mindset.agent.backend import Backend

        backend = Backend(backend_url)
    start = time.perf_counter()
    found = {"model": label or spec, "embedder": embed.name, "max_new_tokens": MAX_NEW_TOKENS, "backend": backend_url,
             "tuning": {}, "test": {}, "rows": {"tuning": {}, "test": {}}}
    test_passes = 1 + (len(layouts) > 1) + 1  # chosen, the default when it differs, without memory
    total = len(TUNING_FACTS) * (len(layouts) if len(layouts) > 1 else 0) + len(FACTS) * test_passes
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with tempfile.TemporaryDirectory() as root, Progress(*columns, transient=False) as progress:
        task = progress.add_task("writing the sessions", total=total)

        def tick(line: str) -> None:
            progress.update(task, advance=1, description=line[:70])
            if not progress.console.is_terminal:  # a log file gets one line per answer instead of the bar
                print(f"[{int(progress.tasks[0].completed)}/{int(progress.tasks[0].total)} {time.perf_counter() - start:.0f} s] {line}", flush=True)

        def record(part: str, name: str, rows: list[dict]) -> None:
            found["rows"][part][name] = rows
            found[part][name] = {"hits": sum(r["hit"] for r in rows), "questions": len(rows), "in_prompt": sum(r["in_prompt"] for r in rows),
                                 **{f"top{k}": sum(r[f"top{k}"] for r in rows) for k in KS}}
            found["seconds"] = time.perf_counter() - start
            if on_part is not None:
                on_part(found)

        chosen = layouts[0]
        if len(layouts) > 1:
            tuning = Person(loaded, Path(root), "tuning", TUNING_FACTS, TUNING_SEED, embed)
            for layout in layouts:
                record("tuning", layout, tuning.ask_all(layout, backend, tick))
            chosen = max(layouts, key=lambda name: (found["tuning"][name]["hits"], -layouts.index(name)))
            if chosen == DEFAULT_LAYOUT or DEFAULT_LAYOUT not in layouts:
                progress.update(task, total=total - len(FACTS))  # one memory pass on the test person, not two
        found["chosen"] = chosen
        test = Person(loaded, Path(root), "test", FACTS, TEST_SEED, embed)
        for layout in dict.fromkeys([chosen, DEFAULT_LAYOUT if DEFAULT_LAYOUT in layouts else chosen]):
            record("test", layout, test.ask_all(layout, backend, tick))
        record("test", "without memory", test.ask_all(None, backend, tick))
    return found


def table_rows(found: dict) -> list[list]:
    def cell(stats: dict, key: str = "hits") -> str:
        return f"{stats[key]}/{stats['questions']} ({100 * stats[key] / stats['questions']:.0f}%)"

    rows = []
    for part in ("tuning", "test"):
        for name, stats in found[part].items():
            mark = " (chosen)" if name == found.get("chosen") and part == "test" else ""
            retrieval = [cell(stats, f"top{k}") for k in KS] if name != "without memory" else ["–"] * len(KS)
            rows.append([found["model"], part, name + mark, cell(stats), *retrieval,
                         cell(stats, "in_prompt") if name != "without memory" else "–"])
    return rows


def publish_answers(found: dict, script: str, suffix: str = "") -> None:
    """Print the table and write it as agent_answers{suffix}.json beside the script."""
    from common import publish

    target = str(Path(script).with_name(f"agent_answers{suffix}.py"))
    publish(target, f"answer contains the fact (greedy, {found['max_new_tokens']} tokens), layout chosen on the tuning person; "
            "the right memory in the top k", ["model", "facts", "layout", "answer", *[f"top {k}" for k in KS], "in the reply's prompt"],
            table_rows(found), found)
