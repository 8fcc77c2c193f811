"""Recall beyond ANN_THRESHOLD memories: relevance candidates from a faiss index (mindset.memory's FaissStore,
IVF with n/400 lists, 16 to 256) instead of a cosine with every memory.

Generative Agents' score needs each memory's relevance, recency and importance; only relevance is expensive
(a D-wide dot product per memory, 230 MB read at 10^5 x 576). So the candidates are the union of
  - the CANDIDATES memories the faiss index finds nearest to the query (inner product of unit vectors),
  - the CANDIDATES best by recency and importance alone (exact: two scalars per memory),
  - the memories BM25 matched,
and the exact score is computed for those only. Recency and importance are normalised over every memory as
in the exact path (recency's extremes come from the extremes of last_accessed, since decay is monotone);
relevance's minimum, which the exact path takes over every memory, is the least of the candidates, a fixed
sample of SAMPLE memories and the index's nearest to the negated query; its maximum is the best candidate's. The top-k can therefore differ
from the exact one when the index misses a memory or the estimated minimum is off; benchmarks/agent_recall.py
reports how often the two agree.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

ANN_THRESHOLD = 50_000  # memories; below it the exact scan costs a few ms
ANN_NPROBE = 16  # inverted lists searched: of 250 lists at 10^5 memories, about 6% of the memories scanned
CANDIDATES = 100
SAMPLE = 1000


@contextmanager
def one_thread():
    """faiss on one OpenMP thread: a single query is microseconds of work, and on a busy machine OpenMP's
    spinning threads made it 20-200x slower (measured: 370 ms median with 2 threads, 18 ms with 1, load 20)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def default_factory(n: int) -> str:
    return f"IVF{min(max(n // 400, 16), 256)},Flat"  # faiss wants about 39 training points per list


class AnnCandidates:
    """A FaissStore over the index's unit embeddings; each entry's value is its row in the index."""

    def __init__(self, embeddings: torch.Tensor, factory: str | None = None, nprobe: int = ANN_NPROBE, seed: int = 0, *,
                 index: np.ndarray | None = None, trained: int | None = None):
        """index: a serialized faiss index over exactly these rows (agent.ann_file checked it), restored instead
        of trained; trained: how many rows its inverted lists were trained on (default: all of them)."""
        from mindset.memory.store import make_store

        n, dim = embeddings.shape
        self.factory = factory or default_factory(n)
        self.trained = n if trained is None else int(trained)
        self.store = make_store(f"faiss:{self.factory}", dim, max(2 * n, 1024), metric="ip", value_shape=(), value_dtype=torch.long,
                                eviction="none", nprobe=nprobe)
        self.store.insert(embeddings.float(), torch.arange(n))
        if index is None:
            with one_thread():
                self.store.rebuild()  # train now, at open, rather than on the first query
        else:
            self.store.restore_index(torch.from_numpy(np.asarray(index, np.uint8)))  # a mismatch is a MindsetError
        sample = torch.from_numpy(np.random.default_rng(seed).choice(n, min(SAMPLE, n), replace=False))
        self.sample = embeddings[sample].clone()  # contiguous: gathering the rows per query cost more than the search

    def add(self, vector: torch.Tensor, row: int) -> None:
        self.store.insert(vector.float().reshape(1, -1), torch.tensor([row]))

    def rows(self, q: torch.Tensor, k: int) -> torch.Tensor:
        with one_thread():
            hits = self.store.query(q.float().reshape(1, -1), k, touch=False)
        return self.store.values[hits.slots[0][hits.valid[0]]]


def approximate_parts(index, q: torch.Tensor, now: float, weights, words: torch.Tensor):
    """(rows, cosine, hours, (relevance, recency, importance) normalised) for the candidate rows only."""
    from mindset.agent.recall import SECONDS_PER_HOUR

    n = index.n
    last, importance = index.last_accessed[:n], index.importance[:n]
    rec_low, rec_high = (weights.decay ** (max(now - x, 0.0) / SECONDS_PER_HOUR) for x in (last.min(), last.max()))
    rec_scale = max(rec_high - rec_low, weights.recency_range) if rec_high > rec_low else 0.0
    imp_low, imp_span = importance.min(), importance.max() - importance.min()
    all_hours = np.maximum(now - last, 0.0) / SECONDS_PER_HOUR
    prior = (weights.recency * ((weights.decay ** all_hours - rec_low) / rec_scale if rec_scale else 0.0)
             + weights.importance * ((importance - imp_low) / imp_span if imp_span else 0.0))
    prior_rows = np.argpartition(-np.broadcast_to(prior, (n,)), min(CANDIDATES, n - 1))[:CANDIDATES]
    picked = [index.ann.rows(q, min(CANDIDATES, n)), torch.from_numpy(prior_rows), torch.nonzero(words[:n]).flatten()]
    rows = torch.unique(torch.cat([p.long() for p in picked]))
    emb = index._emb
    cosine = (emb[rows] @ q.to(index.dtype)).double()
    farthest = index.ann.rows(-q, 8)  # the least relevant: the nearest to -q
    sample_low = min(float((emb[farthest] @ q.to(index.dtype)).min()), float((index.ann.sample @ q.to(index.dtype)).min()))
    low, high = min(float(cosine.min()), sample_low), float(cosine.max())
    relevance = (cosine - low) / (high - low) if high > low else torch.zeros_like(cosine)
    hours = torch.from_numpy(all_hours[rows.numpy()])
    recency = (weights.decay ** hours - rec_low) / rec_scale if rec_scale else torch.zeros_like(hours)
    imp = torch.from_numpy((importance[rows.numpy()] - imp_low) / imp_span) if imp_span else torch.zeros_like(hours)
    return rows, cosine, hours, (relevance.clamp(0, 1), recency, imp)
