"""An assistant that remembers: every turn stored in the memory database, the best memories recalled into
the system prompt of each reply (with their dates), across sessions and processes sharing one folder."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mindset.agent.db import Memory, MemoryDB, NewMemory
from mindset.agent.importance import heuristic_importance, model_can_rate, rate_with_model
from mindset.agent.layout import DEFAULT_LAYOUT, check_layout, place
from mindset.agent.recall import MemoryIndex, Recalled, RecallWeights
from mindset.chat import ChatSession, SamplingParams, encode_prompt
from mindset.errors import MindsetError

DEFAULT_SYSTEM = "You are a helpful assistant."
IMPORTANCE_MODES = ("auto", "model", "heuristic")


class Agent:
    """Chat with memory: `reply(text)` answers (or runs a /command) and stores the turn.

    embed: `embed(texts) -> (N, D)` tensor; default the model's own hidden states (HiddenStateEmbedder).
    importance: "model" asks the model to rate 1-10, "heuristic" uses importance.heuristic_importance,
    "auto" (default) the model only when it has at least importance.RATING_MIN_PARAMS parameters.
    reload: how many of the latest stored messages start the new conversation's history.
    index_dtype: how the recall index holds embeddings (torch.float32 default; torch.bfloat16 halves the scan).
    backend: an agent.backend.Backend (an OpenAI-compatible server) that writes the replies, summaries and
    reflections instead of `loaded`, which still embeds, rates and measures the context.
    ann_threshold: from this many memories on, recall's relevance candidates come from faiss (agent.ann); 0 never.
    That index is kept beside the database (agent.ann_file) and read back at the next start while the memories match it.
    reflect_every: reflect (agent.reflect) after this many new memories; 0 never (the default: a small
    model's reflections are mostly noise that recall would then bring back).
    layout: where the recalled memories go in the prompt (agent.layout.LAYOUTS; measured in agent_answers.py).
    """

    def __init__(self, loaded, folder: str | Path, *, params: SamplingParams | None = None, system: str | None = None,
                 embed: Callable | None = None, importance: str = "auto", weights: RecallWeights | None = None, reload: int = 6,
                 index_dtype=None, backend=None, reflect_every: int = 0, ann_threshold: int | None = None,
                 layout: str = DEFAULT_LAYOUT):
        if reflect_every < 0:
            raise MindsetError(f"reflect_every {reflect_every} is negative; give 0 (never) or a number of memories")
        if importance not in IMPORTANCE_MODES:
            raise MindsetError(f"importance {importance!r} is not one of {', '.join(IMPORTANCE_MODES)}")
        self.loaded, self.layout = loaded, check_layout(layout)
        self.db = MemoryDB(folder)
        if embed is None:
            from mindset.agent.embed import resolve_embedder

            embed = resolve_embedder(None, loaded)
        self.embed = embed
        self._check_embedder(getattr(embed, "name", None))
        self.rate_with_model = importance == "model" or (importance == "auto" and model_can_rate(loaded))
        self.weights = weights or RecallWeights()
        self.system = system or DEFAULT_SYSTEM
        self.conversation = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.backend, self.reflect_every = backend, reflect_every
        if backend is None:
            self.session = ChatSession(loaded, params)
        else:
            from mindset.agent.backend import BackendSession

            self.session = BackendSession(loaded, backend, params)
        self.session.messages = self._reloaded(reload)
        self._reloaded_count = len(self.session.messages)  # reloaded turns belong to older conversations
        self._summarized = 0  # how many of this conversation's messages a summary already covers
        self.last_recalled: list[tuple[Recalled, Memory]] = []
        self.db.changed_elsewhere()
        self.index_dtype, self.ann_threshold = index_dtype, ann_threshold
        self.index = self._load_index()

    def close(self) -> None:
        """Close the database, first keeping the faiss index beside it when this session changed it (ann_file)."""
        try:
            self.index.persist(self.db.snapshot)
        finally:
            self.db.close()

    # -- a turn ---------------------------------------------------------------------------------------
    def reply(self, text: str, on_text: Callable[[str], None] | None = None) -> str:
        """The answer to a message (its text streams to `on_text`), or a /command's output."""
        from mindset.agent.commands import is_command, run_command

        if is_command(text):
            return run_command(self, text)
        if not text.strip():
            raise MindsetError("the message is empty")
        vector = self._embed_one(text)
        self.last_recalled = self.recall_vector(self._embed_query(text, vector), touch=True, text=text)
        self.session.system, sent = self._fit_prompt(text, self.last_recalled)
        dropped_before = self.session.dropped_turns
        result = self.session.reply(sent, on_text=on_text)
        self.session.messages[-2]["content"] = text  # the history keeps the user's words, not this turn's memories
        memory = NewMemory(text, self.importance_of(text), vector)
        _, (memory_id,) = self.db.write_turn(self.conversation, [("user", text), ("assistant", result.text)], [memory], sources_from=0)
        self.index.add(memory_id, vector, time.time(), memory.importance)
        if self.session.dropped_turns > dropped_before:
            self.summarize_dropped()
        self.reflect_if_due()
        return result.text

    def complete(self, prompt: str, max_tokens: int) -> str:
        """A side question (summary, reflection) to the backend when there is one, else to the local model."""
        from mindset.agent.summary import complete_locally

        return self.backend.complete(prompt, max_tokens) if self.backend is not None else complete_locally(self.loaded, prompt, max_tokens)

    def reflect(self) -> list[int]:
        """/reflect: one reflection over the recent memories now; the ids of the reflections written."""
        from mindset.agent.reflect import reflect

        return reflect(self)

    def reflect_if_due(self) -> list[int]:
        from mindset.agent.reflect import due

        return self.reflect() if due(self) else []

    def summarize_dropped(self) -> int | None:
        """Summarise this conversation's turns the session has dropped (not yet summarised) into a memory
        citing them; the memory's id, or None when there was nothing to summarise."""
        from mindset.agent.summary import summarize

        stored = self.db.messages(self.conversation)
        # the session drops two messages at a time from the front: the reloaded ones first, then this conversation's
        n_gone = max(2 * self.session.dropped_turns - self._reloaded_count, 0)
        gone = stored[self._summarized : n_gone]
        if not gone:
            return None
        text = summarize(self.loaded, [(m[2], m[3]) for m in gone], self.complete)
        self._summarized += len(gone)
        if not text:
            return None
        return self.remember("[SUMMARY] " + text, kind="summary", sources=[m[0] for m in gone])

    def summarize_conversation(self) -> int | None:
        """/summary: this conversation's turns so far into one summary memory citing them."""
        from mindset.agent.summary import summarize

        stored = self.db.messages(self.conversation)
        text = summarize(self.loaded, [(m[2], m[3]) for m in stored], self.complete) if stored else ""
        return self.remember("[SUMMARY] " + text, kind="summary", sources=[m[0] for m in stored]) if text else None

    def importance_of(self, text: str) -> int:
        return rate_with_model(self.loaded, text) if self.rate_with_model else heuristic_importance(text)

    # -- memory ---------------------------------------------------------------------------------------
    def remember(self, text: str, kind: str = "observation", sources=(), cites=()) -> int:
        """Store a memory now (sources: message ids it came from; cites: memory ids, a reflection's evidence)."""
        if not text.strip():
            raise MindsetError("/remember needs the text to remember, e.g. /remember my sister is called Ana")
        vector = self._embed_one(text)
        memory = NewMemory(text, self.importance_of(text), vector, kind, sources, cites)
        memory_id = self.db.add_memory(memory)
        self._sync()
        self.index.add(memory_id, vector, time.time(), memory.importance)
        return memory_id

    def forget(self, memory_id: int) -> None:
        if not self.db.forget(memory_id):
            raise MindsetError(f"there is no memory {memory_id}; /memories lists them with their ids")
        self._sync()
        self.index.remove(memory_id)

    def edit(self, memory_id: int, *, text: str | None = None, importance: int | None = None) -> Memory:
        """Change a memory's text (re-embedded, so recall finds it by the new words) and/or importance."""
        if text is not None and not text.strip():
            raise MindsetError(f"memory {memory_id}: the new text is empty; give the text, or forget the memory")
        if importance is not None and not 1 <= importance <= 10:
            raise MindsetError(f"importance {importance} is outside 1..10")
        vector = self._embed_one(text) if text is not None else None
        if not self.db.update_memory(memory_id, text=text, importance=importance, embedding=vector):
            raise MindsetError(f"there is no memory {memory_id}; /memories lists them with their ids")
        self._sync()
        (memory,) = self.db.memories([memory_id])
        self.index.remove(memory_id)
        self.index.add(memory_id, vector if vector is not None else self.db.embedding(memory_id), memory.last_accessed, memory.importance)
        return memory

    def recall(self, query: str, k: int | None = None, *, touch: bool = False) -> list[tuple[Recalled, Memory]]:
        """The k best memories for a query; `touch` refreshes their recency (a reply's recall does)."""
        return self.recall_vector(self._embed_query(query), k, touch=touch, text=query)

    def recall_vector(self, vector, k: int | None = None, *, touch: bool = False, text: str | None = None) -> list[tuple[Recalled, Memory]]:
        """Recall by a query embedding; `text`, when given, adds the BM25 term (RecallWeights.lexical)."""
        self._sync()
        now = time.time()
        lexical = self.db.lexical(text) if text and self.weights.lexical else None
        scored = self.index.top(vector, now, self.weights, k, lexical=lexical)
        if touch and scored:
            ids = [s.id for s in scored]
            self.db.touch(ids, now)
            self.index.touch(ids, now)
        memories = {m.id: m for m in self.db.memories([s.id for s in scored])}
        return [(s, memories[s.id]) for s in scored if s.id in memories]

    # -- helpers --------------------------------------------------------------------------------------
    def _sync(self) -> None:
        """Reload the index when another process committed to the database since we last looked."""
        if self.db.changed_elsewhere():
            self.index = self._load_index()

    def _load_index(self) -> MemoryIndex:
        import torch

        from mindset.agent.ann_file import FILENAME

        return MemoryIndex.from_snapshot(self.db.snapshot(), self.index_dtype or torch.float32, self.ann_threshold, self.db.path.parent / FILENAME)

    def _embed_one(self, text: str) -> np.ndarray:
        return np.asarray(self.embed([text]), dtype=np.float32).reshape(-1)

    def _embed_query(self, text: str, as_memory: np.ndarray | None = None) -> np.ndarray:
        """The vector a recall searches with: the embedder's `query` side when it has one, else the memory's."""
        query = getattr(self.embed, "query", None)
        if query is None:
            return self._embed_one(text) if as_memory is None else as_memory
        return np.asarray(query([text]), dtype=np.float32).reshape(-1)

    def _fit_prompt(self, text: str, recalled: list[tuple[Recalled, Memory]]) -> tuple[str, str]:
        """(system, user message) with as many recalled memories (best first) as fit, placed by self.layout."""
        room = min(self.session.params.max_new_tokens, 64)
        for keep in range(len(recalled), -1, -1):
            system, sent = place(self.layout, self.system, [m for _, m in recalled[:keep]], text)
            ids = encode_prompt(self.loaded.tokenizer, [{"role": "user", "content": sent}], system=system)
            if len(ids) + room <= self.loaded.context_length:
                return system, sent
        return self.system, text

    def _reloaded(self, count: int) -> list[dict[str, str]]:
        rows = self.db.messages(latest=count) if count else []
        messages = [{"role": role, "content": text} for _, _, role, text, _ in rows if role in ("user", "assistant")]
        while messages and messages[0]["role"] != "user":
            messages.pop(0)
        return messages

    def _check_embedder(self, name: str | None) -> None:
        stored = self.db.setting("embedder")
        if name is None or stored == name:
            return
        if stored is not None and self.db.count("memories"):
            raise MindsetError(f"{self.db.path} was embedded by {stored!r}, not {name!r}; chat with that model or use another --memory folder")
        self.db.set_setting("embedder", name)


def memory_prompt(system: str, memories: list[Memory]) -> str:
    """The "system" layout's system message (kept for callers that build it themselves)."""
    return place("system", system, memories, "")[0]
