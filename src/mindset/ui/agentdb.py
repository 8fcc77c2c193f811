"""The memory view's second half: the chat agent's database (`mindset chat --memory DIR`), opened by
`mindset ui MODEL --agent-memory DIR`. Its memories listed (paged, sorted by importance, recency or creation),
the recall scores a query would give (without refreshing anyone's recency), a memory's text or importance
edited, a memory deleted.

Every read and write goes through mindset.agent's own Agent (and its MemoryDB): each write is one
transaction, an edited text is re-embedded so recall finds it by its new words, and a chat process on the
same folder sees the change (SQLite WAL, as two chats share a folder). The embeddings come from the
embedder that wrote the database: all-MiniLM-L6-v2 when the database says so, else the loaded model's
original (unedited) hidden states; a database embedded by another model is a one-line error at start.

`mindset ui` sets `workbench.agent_memory` to an AgentMemoryView; without one, GET /api/agent answers
{"enabled": false} and the other routes 404.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError

SORTS = {"importance": "importance", "recency": "last_accessed", "created": "created", "id": "id"}
MAX_PAGE = 500


class MemoryEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, min_length=1, description="the memory's new text (re-embedded)")
    importance: int | None = Field(None, ge=1, le=10, description="the memory's new importance, 1 (mundane) .. 10 (poignant)")


class AgentMemoryView:
    """One agent database, read and written through an Agent on `loaded` (its embedder, its index)."""

    def __init__(self, folder: str | Path, loaded):
        from mindset.agent import Agent

        folder = Path(folder)
        self.agent = Agent(loaded, folder, embed=_embedder(folder, loaded), reload=0)
        self.lock = threading.Lock()

    @staticmethod
    def check(folder: str | Path) -> str:
        """The embedder the database names; a missing, foreign or corrupt database is one MindsetError naming
        the file (`mindset ui` checks before loading the model)."""
        from mindset.agent.db import FILENAME, MemoryDB

        folder = Path(folder)
        if not (folder / FILENAME).is_file():
            raise MindsetError(f"--agent-memory {folder} holds no {FILENAME}; give the folder of `mindset chat MODEL --memory DIR`")
        db = MemoryDB(folder)
        try:
            return db.setting("embedder") or ""
        finally:
            db.close()

    @property
    def path(self) -> Path:
        return self.agent.db.path

    def close(self) -> None:
        self.agent.close()

    def summary(self) -> dict[str, Any]:
        db = self.agent.db
        return {"path": str(self.path), "memories": db.count("memories"), "messages": db.count("messages"),
                "embedder": db.setting("embedder"), "weights": self.agent.weights.model_dump(), "sorts": list(SORTS)}

    def page(self, offset: int, limit: int, sort: str, descending: bool) -> dict[str, Any]:
        if sort not in SORTS:
            raise MindsetError(f"sort {sort!r}: sort the agent's memories by one of {', '.join(SORTS)}")
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise MindsetError(f"offset {offset} and limit {limit}: offset is at least 0, limit between 1 and {MAX_PAGE}")
        with self.lock:
            rows = self.agent.db.page(offset, limit, SORTS[sort], descending)
            now = time.time()
            return {"total": self.agent.db.count("memories"), "offset": offset, "limit": limit, "sort": sort, "descending": descending,
                    "memories": [self._row(m, now) for m in rows]}

    def recall(self, query: str, k: int) -> dict[str, Any]:
        if not query.strip():
            raise MindsetError("recall: the query is empty; give the text a reply would recall memories for")
        if not 1 <= k <= 50:
            raise MindsetError(f"k {k}: ask for 1 to 50 memories")
        with self.lock:
            found = self.agent.recall(query, k, touch=False)
            now = time.time()
            return {"query": query, "memories": [{**self._row(m, now), "score": r.score, "relevance": r.relevance, "recency_score": r.recency,
                                                  "importance_score": r.importance, "lexical": r.lexical, "cosine": r.cosine}
                                                 for r, m in found]}

    def edit(self, memory_id: int, change: MemoryEdit) -> dict[str, Any]:
        if change.text is None and change.importance is None:
            raise MindsetError("the edit changes nothing: give text and/or importance")
        with self.lock:
            self._exists(memory_id)
            return self._row(self.agent.edit(memory_id, text=change.text, importance=change.importance), time.time())

    def delete(self, memory_id: int) -> dict[str, Any]:
        with self.lock:
            self._exists(memory_id)
            self.agent.forget(memory_id)
            return {"deleted": memory_id, "memories": self.agent.db.count("memories")}

    def _exists(self, memory_id: int) -> None:
        if not self.agent.db.memories([memory_id]):
            raise HTTPException(404, f"there is no memory {memory_id} in {self.path}")

    def _row(self, m, now: float) -> dict[str, Any]:
        hours = max(now - m.last_accessed, 0.0) / 3600
        return {"id": m.id, "text": m.text, "kind": m.kind, "created": m.created, "last_accessed": m.last_accessed,
                "importance": m.importance, "recency": self.agent.weights.decay**hours, "sources": m.sources, "cites": m.cites}


def _embedder(folder: Path, loaded):
    """The embedder that wrote the database: MiniLM when its setting names it, else `loaded`'s hidden states."""
    from mindset.agent.embed import resolve_embedder

    stored = AgentMemoryView.check(folder)
    return resolve_embedder("all-minilm-l6-v2" if "minilm" in stored.lower() else None, loaded)


def router(workbench) -> APIRouter:
    """/api/agent...: over `workbench.agent_memory` (an AgentMemoryView, or None: then every route is a 404)."""
    api = APIRouter(prefix="/api/agent", tags=["agent memory"])

    def view() -> AgentMemoryView:
        found = getattr(workbench, "agent_memory", None)
        if found is None:
            raise HTTPException(404, "no agent database: start mindset ui with --agent-memory DIR (a `mindset chat --memory` folder)")
        return found

    @api.get("", summary="The agent database: its file, counts, embedder and recall weights ({enabled: false} without one)")
    def get_summary() -> dict:
        if getattr(workbench, "agent_memory", None) is None:  # 200, not 404: the page asks every time, and a 404 is a console error
            return {"enabled": False, "hint": "start mindset ui with --agent-memory DIR (a `mindset chat --memory` folder)"}
        return {"enabled": True, **view().summary()}

    @api.get("/memories", summary="One page of the agent's memories, sorted by importance, recency (last access) or creation")
    def get_memories(offset: int = 0, limit: int = 20, sort: str = "created", descending: bool = True) -> dict:
        return view().page(offset, limit, sort, descending)

    @api.get("/recall", summary="The memories a reply to QUERY would recall, with their scores (recency not refreshed)")
    def get_recall(query: str, k: int = 5) -> dict:
        return view().recall(query, k)

    @api.post("/memories/{memory_id}", summary="Edit a memory's text (re-embedded) and/or importance, in one transaction")
    def post_memory(memory_id: int, body: MemoryEdit) -> dict:
        return view().edit(memory_id, body)

    @api.post("/memories/{memory_id}/delete", summary="Delete a memory")
    def delete_memory(memory_id: int) -> dict:
        return view().delete(memory_id)

    return api
