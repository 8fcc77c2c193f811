"""Recall as Generative Agents retrieve (Park et al. 2023, section 4.1):

    score = α·relevance + β·recency + γ·importance

relevance is the cosine between the query's and the memory's embeddings; recency is an exponential decay,
DECAY ** (hours since the memory was last accessed), DECAY = 0.995 per hour as in the paper (which counts
game hours); importance is the memory's 1-10 rating. As in the paper, each component is min-max normalised
to [0, 1] over the candidates before weighting (a component on which all candidates agree contributes 0),
and α = β = γ = 1 by default. One departure: recency is divided by at least RecallWeights.recency_range
(0.1, about 21 hours of decay) rather than by its bare spread, because memories written a minute apart
would otherwise be stretched to recency 0 and 1 and the newest would win every recall (measured: the
scripted 20 facts, written in one sitting, dropped from 14 to 8 of 20 found without the floor).

A fourth term, δ·lexical, is the BM25 score of the query's words in the memory (SQLite FTS5, porter-stemmed,
stop words dropped; MemoryDB.lexical), divided by the best match's: benchmarks/agent_recall.py --variants
picked δ = 1 on a separate set of tuning facts (20/20 there and on the issue's 20 questions, from 14/20
with the embedding alone).

Below ann.ANN_THRESHOLD memories the search is exact: one matrix-vector product over every embedding, on
one torch thread. Beyond it relevance candidates come from faiss (agent.ann) and are rescored exactly.
Measured under load (average 15-18 on the 2 cores): 45 ms median per recall at 10^4 exact, 91 ms at 10^5
exact, 47 ms at 10^5 with faiss (its top-3 equal to the exact one for 80% of random queries).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError

SECONDS_PER_HOUR = 3600.0
LEXICAL_WEIGHT = 1.0


class RecallWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relevance: float = Field(1.0, ge=0.0, description="α: weight of the cosine between query and memory")
    recency: float = Field(1.0, ge=0.0, description="β: weight of the decay since the memory was last accessed")
    importance: float = Field(1.0, ge=0.0, description="γ: weight of the memory's 1-10 importance")
    lexical: float = Field(LEXICAL_WEIGHT, ge=0.0, description="δ: weight of the BM25 score of the words query and memory share")
    decay: float = Field(0.995, gt=0.0, le=1.0, description="recency factor per hour since last access")
    recency_range: float = Field(0.1, ge=0.0, le=1.0, description="min-max of recency divides by at least this spread")
    top_k: int = Field(3, ge=1, description="memories recalled into each reply's system prompt")


@dataclass
class Recalled:
    """One scored memory: the weighted score and its three normalised components (each in [0, 1])."""

    id: int
    score: float
    relevance: float
    recency: float
    importance: float
    cosine: float  # the raw relevance, before normalising
    hours: float  # since last access
    lexical: float = 0.0  # the normalised BM25 score (0 without a lexical match)


def min_max(values: torch.Tensor, min_range: float = 0.0) -> torch.Tensor:
    """Scale to [0, 1] over the candidates, dividing by at least `min_range`; all-equal values give zeros."""
    low, high = values.min(), values.max()
    if high - low <= 0:
        return torch.zeros_like(values)
    return (values - low) / max(float(high - low), min_range)


class MemoryIndex:
    """Recall inputs of every memory in memory: unit embeddings in a growable buffer, access times, importance."""

    def __init__(self, ids, embeddings, last_accessed, importance, dtype: torch.dtype = torch.float32, ann_threshold: int | None = None,
                 ann_file: Path | None = None):
        """ann_threshold: from this many memories on, relevance candidates come from faiss (agent.ann);
        None is ann.ANN_THRESHOLD, 0 never. ann_file: where the faiss index is kept between starts
        (agent.ann_file): read back when it matches `embeddings` (as the database holds them), else built and written."""
        from mindset.agent.ann import ANN_THRESHOLD

        self.ann_threshold = ANN_THRESHOLD if ann_threshold is None else ann_threshold
        self.ann = None
        ids = np.asarray(ids, np.int64)
        self.n = len(ids)
        self.dtype = dtype
        width = int(np.asarray(embeddings).shape[1]) if self.n else 0
        self._emb = torch.zeros(max(self.n, 16), width, dtype=dtype)
        if self.n:
            self._emb[: self.n] = _unit(torch.as_tensor(np.asarray(embeddings, np.float32)))
        self.ids = ids.copy()
        self.last_accessed = np.asarray(last_accessed, np.float64).copy()
        self.importance = np.asarray(importance, np.float64).copy()
        self.ann_file, self.ann_saved = ann_file, False  # ann_saved: nothing to write (ann_file holds the index as it is, or refused it)
        self._maybe_ann(embeddings if ann_file is not None and self.n else None)

    def _maybe_ann(self, raw=None) -> None:
        """raw: the embeddings as the database holds them, whose content key finds a saved index in ann_file."""
        if self.ann is None and self.ann_threshold and self.n >= self.ann_threshold:
            from mindset.agent import ann_file
            from mindset.agent.ann import AnnCandidates

            key = ann_file.content_key(self.ids, raw) if raw is not None else None
            self.ann = ann_file.load(self.ann_file, key, self._emb[: self.n], self.dtype) if key else None
            self.ann_saved = self.ann is not None
            if self.ann is None:
                self.ann = AnnCandidates(self._emb[: self.n])
                if key is not None:
                    ann_file.save(self.ann_file, self.ann, key, self.dtype)  # when the folder refuses it (a warning), close does not try again
                self.ann_saved = key is not None

    def persist(self, snapshot) -> bool:
        """Keep the faiss index in ann_file when it changed since it was read or written (this process added
        memories), and only while it mirrors the database: `snapshot()` (MemoryDB.snapshot) must give this
        index's ids and, normalised, its rows, else another writer got in between and the next start rebuilds."""
        from mindset.agent import ann_file

        if self.ann is None or self.ann_file is None or self.ann_saved:
            return False
        snap = snapshot()
        if not np.array_equal(snap.ids, self.ids) or snap.embeddings.shape != (self.n, self.width):
            return False
        tolerance = 2 * torch.finfo(self.dtype).eps  # one row normalised alone may round apart from a batch by an ulp
        if not torch.allclose(_unit(torch.from_numpy(snap.embeddings)).to(self.dtype).float(), self._emb[: self.n].float(), rtol=0, atol=tolerance):
            return False
        self.ann_saved = ann_file.save(self.ann_file, self.ann, ann_file.content_key(snap.ids, snap.embeddings), self.dtype)
        return self.ann_saved

    @classmethod
    def from_snapshot(cls, snap, dtype: torch.dtype = torch.float32, ann_threshold: int | None = None, ann_file: Path | None = None) -> MemoryIndex:
        """dtype: how the unit embeddings are held; bfloat16 halves the memory a query reads, at about 3
        significant digits of cosine (measured no faster on this CPU: its bf16 kernels lose what it saves)."""
        return cls(snap.ids, snap.embeddings, snap.last_accessed, snap.importance, dtype, ann_threshold, ann_file)

    @property
    def width(self) -> int:
        return self._emb.shape[1]

    def add(self, memory_id: int, embedding, when: float, importance: float) -> None:
        vector = _unit(torch.as_tensor(np.asarray(embedding, np.float32)).reshape(1, -1))
        if self.n == 0 and self.width != vector.shape[1]:
            self._emb = torch.zeros(16, vector.shape[1], dtype=self.dtype)
        self._check_width(vector.shape[1])
        if self.n == self._emb.shape[0]:  # double the buffer: appends cost O(1) on average
            self._emb = torch.cat([self._emb, torch.zeros_like(self._emb)])
        self._emb[self.n] = vector[0]
        self.n += 1
        self.ids = np.append(self.ids, memory_id)
        self.last_accessed = np.append(self.last_accessed, when)
        self.importance = np.append(self.importance, importance)
        if self.ann is not None:
            self.ann.add(vector[0], self.n - 1)
            self.ann_saved = False
        self._maybe_ann()

    def remove(self, memory_id: int) -> None:
        keep = self.ids != memory_id
        embeddings = self._emb[: self.n][torch.from_numpy(keep)]
        kept_in = self.ann_file
        self.__init__(self.ids[keep], embeddings.float().numpy(), self.last_accessed[keep], self.importance[keep], self.dtype, self.ann_threshold)
        self.ann_file = kept_in  # the rebuilt index is written by persist(), once checked against the database

    def touch(self, memory_ids, when: float) -> None:
        self.last_accessed[np.isin(self.ids, np.asarray(memory_ids, np.int64))] = when

    def top(self, query, now: float, weights: RecallWeights, k: int | None = None, lexical=None) -> list[Recalled]:
        """The k best memories for a query embedding at time `now` (unix seconds); `lexical`, (ids, BM25
        scores) from MemoryDB.lexical, adds δ·(min-max BM25) to the score (memories it leaves out score 0)."""
        if self.n == 0:
            return []
        with one_torch_thread():
            return self._top(query, now, weights, k, lexical)

    def _top(self, query, now: float, weights: RecallWeights, k: int | None, lexical) -> list[Recalled]:
        q = _unit(torch.as_tensor(np.asarray(query, np.float32)).reshape(1, -1))
        self._check_width(q.shape[1])
        words = self._lexical(lexical) if lexical is not None and weights.lexical else torch.zeros(self.n, dtype=torch.float64)
        if self.ann is not None:
            from mindset.agent.ann import approximate_parts

            rows, cosine, hours, parts = approximate_parts(self, q[0], now, weights, words)
            words, ids = words[rows], self.ids[rows.numpy()]
        else:
            rows, ids = None, self.ids
            cosine = (self._emb[: self.n] @ q[0].to(self.dtype)).double()
            hours = torch.from_numpy(np.maximum(now - self.last_accessed, 0.0) / SECONDS_PER_HOUR)
            parts = (min_max(cosine), min_max(weights.decay ** hours, weights.recency_range), min_max(torch.from_numpy(self.importance)))
        total = weights.relevance * parts[0] + weights.recency * parts[1] + weights.importance * parts[2] + weights.lexical * words
        k = min(k or weights.top_k, len(ids))
        # ties broken toward the newer memory: a tiny id-ordered offset far below any real score difference
        order = torch.topk(total + torch.from_numpy(ids.astype(np.float64)) * 1e-12, k).indices.tolist()
        return [Recalled(int(ids[i]), float(total[i]), float(parts[0][i]), float(parts[1][i]), float(parts[2][i]),
                         float(cosine[i]), float(hours[i]), float(words[i])) for i in order]

    def _lexical(self, lexical) -> torch.Tensor:
        """BM25 scores laid on the index's rows (ids are kept ascending), min-max over all memories."""
        ids, scores = (np.asarray(lexical[0], np.int64), np.asarray(lexical[1], np.float64))
        out = np.zeros(self.n)
        if len(ids):
            rows = np.minimum(np.searchsorted(self.ids, ids), self.n - 1)
            found = self.ids[rows] == ids
            out[rows[found]] = np.maximum(scores[found], 0.0)
        values = torch.from_numpy(out)
        return values / values.max() if values.max() > 0 else values

    def _check_width(self, width: int) -> None:
        if self.n and width != self.width:
            raise MindsetError(f"the embedder gives vectors of width {width} but the stored memories have width {self.width}; "
                               "recall with the embedder that wrote them, or use another --memory folder")


@contextmanager
def one_torch_thread():
    """Recall's tensor work on one thread: a matrix-vector product is bound by memory bandwidth, not cores, and
    on a busy machine torch's second thread spins waiting (measured at load 20: the 10^5 scan 2.2 s on two
    threads, 0.3 s on one; gathering 200 rows 83 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)
