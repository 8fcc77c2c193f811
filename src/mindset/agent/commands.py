"""The chat's memory commands: /remember, /forget, /recall, /memories, /sql. Output is a markdown table,
readable in a terminal and pasteable into notes; an unknown /command answers with the list."""

from __future__ import annotations

import time

from mindset.errors import MindsetError
from mindset.tables import markdown_table

COMMANDS = {
    "/remember": ("TEXT", "store TEXT as a memory"),
    "/forget": ("ID", "delete memory ID"),
    "/recall": ("QUERY", "the memories the next reply would recall for QUERY, with their scores (does not refresh them)"),
    "/memories": ("", "the newest memories with importance and recency"),
    "/summary": ("", "summarise this conversation so far into a memory now"),
    "/reflect": ("", "reflect on the recent memories now: insights stored as reflections citing their memories"),
    "/sql": ("SELECT ...", "a read-only query on the memory database (tables: messages, memories, settings)"),
}
LISTED = 20
TEXT_CHARS = 80


def is_command(text: str) -> bool:
    return text.lstrip().startswith("/")


def command_list() -> str:
    return "commands:\n" + "\n".join(f"  {f'{name} {arg}'.strip()} — {what}" for name, (arg, what) in COMMANDS.items())


def run_command(agent, text: str) -> str:
    name, _, arg = text.strip().partition(" ")
    name, arg = name.lower(), arg.strip()
    if name == "/remember":
        memory_id = agent.remember(arg)
        agent.reflect_if_due()
        return f"remembered as memory {memory_id}"
    if name == "/reflect":
        written = agent.reflect()
        return f"reflected: memor{'y' if len(written) == 1 else 'ies'} {', '.join(map(str, written))}" if written else "no reflection came of it"
    if name == "/forget":
        agent.forget(_memory_id(arg))
        return f"forgot memory {arg}"
    if name == "/recall":
        if not arg:
            raise MindsetError("/recall needs a query, e.g. /recall where do I live")
        return _recall_table(agent.recall(arg))
    if name == "/memories":
        return _memories_table(agent)
    if name == "/summary":
        memory_id = agent.summarize_conversation()
        return f"summarised as memory {memory_id}" if memory_id else "nothing to summarise yet"
    if name == "/sql":
        if not arg:
            raise MindsetError("/sql needs a query, e.g. /sql SELECT id, text FROM memories")
        columns, rows, truncated = agent.db.read_only_query(arg)
        table = markdown_table(columns, [list(r) for r in rows]) if columns else "(no columns)"
        return table + (f"\n(first {len(rows)} rows shown)" if truncated else f"\n({len(rows)} row{'s' * (len(rows) != 1)})")
    return f"unknown command {name}; " + command_list()


def _memory_id(arg: str) -> int:
    if not arg.isdigit():
        raise MindsetError(f"/forget needs a memory id (a number from /memories), not {arg!r}")
    return int(arg)


def _recall_table(recalled) -> str:
    if not recalled:
        return "no memories yet"
    rows = [[s.id, f"{s.score:.3f}", f"{s.relevance:.2f}", f"{s.recency:.2f}", f"{s.importance:.2f}", m.importance, _short(m.text)]
            for s, m in recalled]
    return markdown_table(["id", "score", "relevance", "recency", "importance", "rated", "text"], rows)


def _memories_table(agent) -> str:
    memories = agent.db.memories(latest=LISTED)
    if not memories:
        return "no memories yet"
    now, decay = time.time(), agent.weights.decay
    rows = [[m.id, m.kind, m.importance, f"{decay ** (max(now - m.last_accessed, 0) / 3600):.3f}", _when(m.created),
             ", ".join(map(str, m.cites)), _short(m.text)] for m in memories]
    return markdown_table(["id", "kind", "importance", "recency", "created (UTC)", "cites", "text"], rows)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"
