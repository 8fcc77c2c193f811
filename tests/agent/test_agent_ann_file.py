"""Recall's faiss index kept beside the database (agent.ann_file): a reopen reads it back instead of training,
any change to the memories' embeddings rebuilds it, a corrupt file is rebuilt, and what it recalls equals a fresh build."""

import warnings

import numpy as np
import pytest
import torch

from mindset.agent import Agent
from mindset.agent.ann_file import FILENAME
from mindset.agent.db import MemoryDB, NewMemory, Snapshot
from mindset.agent.recall import MemoryIndex, RecallWeights
from mindset.memory.faiss_store import FaissStore

N, WIDTH, THRESHOLD = 500, 32, 100


class RandomEmbedder:
    name = "test random"

    def __init__(self, seed=7):
        self.rng = np.random.default_rng(seed)

    def __call__(self, texts):
        return self.rng.standard_normal((len(texts), WIDTH)).astype(np.float32)


@pytest.fixture
def trainings(monkeypatch):
    """How many times a faiss index was trained and filled (FaissStore.rebuild, still run for real)."""
    calls = []
    real = FaissStore.rebuild
    monkeypatch.setattr(FaissStore, "rebuild", lambda self: calls.append(len(self)) or real(self))
    return calls


def fill(folder, n=N, seed=0):
    rng = np.random.default_rng(seed)
    db = MemoryDB(folder)
    db.write_turn("", [], [NewMemory(f"memory {i}", int(rng.integers(1, 11)), rng.standard_normal(WIDTH).astype(np.float32)) for i in range(n)])
    db.set_setting("embedder", RandomEmbedder.name)
    db.close()


def open_agent(tiny_llama, folder):
    return Agent(tiny_llama, folder, embed=RandomEmbedder(), ann_threshold=THRESHOLD, reload=0)


def queries(count=12, seed=3):
    return np.random.default_rng(seed).standard_normal((count, WIDTH)).astype(np.float32)


def fresh(folder):
    db = MemoryDB(folder)
    try:
        return MemoryIndex.from_snapshot(db.snapshot(), ann_threshold=THRESHOLD)  # no file: trained here
    finally:
        db.close()


def same_recall(a, b):
    now = 2e9
    for q in queries():
        assert torch.equal(a.ann.rows(torch.from_numpy(q / np.linalg.norm(q)), 50), b.ann.rows(torch.from_numpy(q / np.linalg.norm(q)), 50))
        assert [(r.id, r.score) for r in a.top(q, now, RecallWeights(), k=5)] == [(r.id, r.score) for r in b.top(q, now, RecallWeights(), k=5)]


def test_a_reopen_reads_the_kept_index_and_recalls_as_a_fresh_build(tiny_llama, tmp_path, trainings):
    fill(tmp_path)
    first = open_agent(tiny_llama, tmp_path)
    assert trainings == [N] and (tmp_path / FILENAME).is_file()
    first.close()
    second = open_agent(tiny_llama, tmp_path)
    assert trainings == [N] and second.index.ann is not None and second.index.ann.trained == N  # read back, not trained
    built = fresh(tmp_path)
    assert len(trainings) == 2
    same_recall(second.index, built)
    second.close()


def test_a_write_in_between_rebuilds_and_a_touch_does_not(tiny_llama, tmp_path, trainings):
    fill(tmp_path)
    open_agent(tiny_llama, tmp_path).close()
    db = MemoryDB(tmp_path)
    db.touch([1, 2, 3])  # recency only: the faiss index holds none of it
    db.update_memory(4, importance=9)
    assert open_agent(tiny_llama, tmp_path).index.ann_saved and len(trainings) == 1
    last = int(db.snapshot().ids.max())
    db.forget(last)  # then a new memory takes the same id: count and max id as before, one embedding changed
    db.add_memory(NewMemory("another", 5, np.ones(WIDTH, np.float32)))
    assert int(db.snapshot().ids.max()) == last and db.count("memories") == N
    db.close()
    agent = open_agent(tiny_llama, tmp_path)
    assert len(trainings) == 2
    same_recall(agent.index, fresh(tmp_path))
    agent.close()
    open_agent(tiny_llama, tmp_path).close()
    assert len(trainings) == 3  # the fresh() build above; the rebuilt file was kept and read back


def test_a_session_that_adds_memories_keeps_its_index_at_close(tiny_llama, tmp_path, trainings):
    fill(tmp_path)
    agent = open_agent(tiny_llama, tmp_path)
    new = agent.remember("my cat is called Tom")
    probe = torch.from_numpy(agent.index._emb[agent.index.n - 1].numpy().copy())
    rows = agent.index.ann.rows(probe, 20)
    assert not agent.index.ann_saved
    agent.close()
    again = open_agent(tiny_llama, tmp_path)
    assert trainings == [N] and again.index.n == N + 1 and again.index.ann.trained == N
    assert torch.equal(again.index.ann.rows(probe, 20), rows) and again.index.ids[int(rows[0])] == new
    again.close()


def test_an_index_another_writer_overtook_is_not_kept(tiny_llama, tmp_path, trainings):
    fill(tmp_path)
    agent = open_agent(tiny_llama, tmp_path)
    agent.remember("my cat is called Tom")
    other = MemoryDB(tmp_path)
    other.add_memory(NewMemory("written by another process", 5, np.ones(WIDTH, np.float32)))
    other.close()
    assert not agent.index.persist(agent.db.snapshot)
    agent.close()
    assert open_agent(tiny_llama, tmp_path).index.n == N + 2 and len(trainings) == 2


@pytest.mark.parametrize("damage", ["flipped", "truncated", "foreign", "empty"])
def test_a_corrupt_index_file_is_rebuilt_never_trusted(tiny_llama, tmp_path, trainings, damage):
    fill(tmp_path)
    open_agent(tiny_llama, tmp_path).close()
    path = tmp_path / FILENAME
    data = bytearray(path.read_bytes())
    if damage == "flipped":  # inside the index bytes: the header still reads, the checksum does not
        data[-100] ^= 0xFF
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "foreign":
        data = bytearray(b"this is not an index" * 50)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    agent = open_agent(tiny_llama, tmp_path)
    assert len(trainings) == 2 and agent.index.ann.trained == N
    same_recall(agent.index, fresh(tmp_path))
    agent.close()
    open_agent(tiny_llama, tmp_path).close()
    assert len(trainings) == 3  # rewritten sound: the next open reads it (the third is fresh()'s)


def snapshot_of(ids, embeddings):
    return Snapshot(ids, embeddings, np.zeros(len(ids)), np.full(len(ids), 5.0))


def test_lists_trained_on_too_few_memories_are_trained_again(tmp_path, trainings):
    rng = np.random.default_rng(0)
    ids, emb = np.arange(1, 801), rng.standard_normal((800, WIDTH)).astype(np.float32)
    path = tmp_path / FILENAME

    def grown_to(total):
        index = MemoryIndex(ids[:N], emb[:N], np.zeros(N), np.full(N, 5.0), ann_threshold=THRESHOLD, ann_file=path)
        for i in range(N, total):
            index.add(int(ids[i]), emb[i], 0.0, 5)
        assert index.persist(lambda: snapshot_of(ids[:total], emb[:total]))
        before = len(trainings)
        reopened = MemoryIndex(ids[:total], emb[:total], np.zeros(total), np.full(total, 5.0), ann_threshold=THRESHOLD, ann_file=path)
        return len(trainings) - before, reopened.ann.trained

    assert grown_to(700) == (0, N)  # 700 <= 1.5 x 500: read back
    path.unlink()
    assert grown_to(800) == (1, 800)  # beyond it: trained again on all of them


def test_a_folder_that_refuses_the_file_warns_and_recall_still_works(tiny_llama, tmp_path, trainings):
    fill(tmp_path)
    (tmp_path / FILENAME).mkdir()  # the name is taken by a folder: the rename fails
    with pytest.warns(UserWarning, match="could not be kept in .*memory.faiss.*the next start builds it again"):
        agent = open_agent(tiny_llama, tmp_path)
    assert len(agent.recall_vector(queries(1)[0])) == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent.close()  # nothing changed since: no second attempt, no second warning
    assert not [w for w in caught if "could not be kept" in str(w.message)]
    assert not list(tmp_path.glob(f".{FILENAME}.tmp-*"))  # no temp file left behind
