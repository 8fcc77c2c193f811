import sqlite3

import pytest
import torch

from mindset.errors import MindsetError
from mindset.memory import TorchStore, make_store, open_store
from mindset.memory.persistence import ENTRIES, SETTINGS, TENSORS


def random_entries(n, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)


def brute_force(keys, queries, metric, k):
    if metric == "l2":
        scores = -torch.cdist(queries, keys).square()
    elif metric == "cosine":
        scores = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(keys, dim=-1).T
    else:
        scores = queries @ keys.T
    return torch.topk(scores, k, dim=1)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_query_returns_the_exact_top_k(metric):
    keys, values = random_entries(200)
    store = TorchStore(8, 256, metric=metric)
    ids = store.insert(keys, values)
    queries = torch.randn(5, 8)
    hits = store.query(queries, 7)
    expected = brute_force(keys, queries, metric, 7)
    assert torch.equal(hits.ids, ids[expected.indices])
    assert torch.allclose(hits.scores, expected.values, atol=1e-4)
    assert torch.equal(store.values[hits.slots], values[expected.indices])


def test_query_scores_in_chunks_like_all_at_once(monkeypatch):
    import mindset.memory.torch_store as torch_store

    keys, values = random_entries(300)
    store = TorchStore(8, 300)
    store.insert(keys, values)
    queries = torch.randn(4, 8)
    whole = store.query(queries, 10, touch=False)
    monkeypatch.setattr(torch_store, "SCORE_CHUNK", 4 * 37)  # 37 slots per chunk
    chunked = store.query(queries, 10, touch=False)
    assert torch.equal(whole.slots, chunked.slots) and torch.allclose(whole.scores, chunked.scores)


def test_fewer_entries_than_k_pads_with_minus_one():
    store = TorchStore(8, 16)
    store.insert(*random_entries(3))
    hits = store.query(torch.randn(2, 8), 5)
    assert hits.slots.shape == (2, 5)
    assert hits.valid.sum(1).tolist() == [3, 3]
    assert torch.isinf(hits.scores[:, 3:]).all() and (hits.ids[:, 3:] == -1).all()


def test_remove_and_len():
    store = TorchStore(8, 16)
    ids = store.insert(*random_entries(10))
    assert len(store) == 10
    assert store.remove(ids[:4]) == 4 and store.remove([999]) == 0
    assert len(store) == 6
    hits = store.query(torch.randn(3, 8), 6)
    assert not torch.isin(hits.ids, ids[:4]).any()
    assert store.stats()["removals"] == 4


def test_fifo_evicts_the_oldest_and_counts():
    store = TorchStore(8, 4, eviction="fifo")
    first = store.insert(*random_entries(4, seed=1))
    second = store.insert(*random_entries(3, seed=2))
    alive = set(store.entry_ids[store.occupied].tolist())
    assert alive == {int(first[3]), *second.tolist()}
    assert store.stats()["evictions"] == 3


def test_lrfu_keeps_entries_that_are_used():
    keys = torch.eye(8)[:4]
    store = TorchStore(8, 4, eviction="lrfu", metric="ip")
    ids = store.insert(keys, keys)
    for _ in range(5):
        store.query(keys[[0, 2]], 1)  # entries 0 and 2 are read again and again
    new = store.insert(torch.eye(8)[4:6], torch.eye(8)[4:6])
    alive = set(store.entry_ids[store.occupied].tolist())
    assert alive == {int(ids[0]), int(ids[2]), *new.tolist()}
    assert store.stats()["evictions"] == 2


def test_lrfu_lambda_one_is_recency():
    keys = torch.eye(8)[:3]
    store = TorchStore(8, 3, eviction="lrfu", lrfu_lambda=1.0, metric="ip")
    ids = store.insert(keys, keys)
    for _ in range(10):
        store.query(keys[[0]], 1)  # entry 0: many old accesses
    store.query(keys[[1]], 1)  # entry 1: one recent access
    store.query(keys[[2]], 1)  # entry 2: the most recent
    store.insert(torch.eye(8)[3:4], torch.eye(8)[3:4])
    assert int(ids[0]) not in store.entry_ids.tolist()


def test_full_store_without_eviction_is_an_error():
    store = TorchStore(8, 4, eviction="none")
    store.insert(*random_entries(4))
    with pytest.raises(MindsetError, match="full .*eviction is off"):
        store.insert(*random_entries(1))
    assert len(store) == 4


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s: s.insert(torch.randn(2, 5), torch.randn(2, 8)), "wrong key dimension 5"),
        (lambda s: s.query(torch.randn(2, 9), 1), "wrong key dimension 9"),
        (lambda s: s.query(torch.randn(8), 1), r"must be a \(n, 8\) tensor"),
        (lambda s: s.insert(torch.randn(2, 8), torch.randn(3, 8)), "expected values of shape"),
        (lambda s: s.query(torch.randn(1, 8), 0), "k must be a positive"),
        (lambda s: s.query(torch.randn(1, 8), -3), "k must be a positive"),
        (lambda s: s.query(torch.randn(1, 8), 17), "more than the store's 16 slots"),
        (lambda s: s.insert(torch.randn(17, 8), torch.randn(17, 8)), "do not fit"),
    ],
)
def test_bad_input_is_a_clear_error(call, match):
    store = TorchStore(8, 16)
    store.insert(*random_entries(4))
    with pytest.raises(MindsetError, match=match):
        call(store)


def test_bad_settings_are_errors():
    with pytest.raises(MindsetError, match="unknown metric"):
        TorchStore(8, 4, metric="manhattan")
    with pytest.raises(MindsetError, match="unknown eviction"):
        TorchStore(8, 4, eviction="random")
    with pytest.raises(MindsetError, match="unknown store backend"):
        make_store("annoy", 8, 4)


def test_merge_is_a_running_mean_weighted_by_count():
    store = TorchStore(2, 4, metric="ip")
    store.insert(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]]))
    store.merge(torch.tensor([0]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 3.0]]))
    store.merge(torch.tensor([0]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 3.0]]))
    assert torch.allclose(store.keys[0], torch.tensor([1 / 3, 2 / 3]))
    assert torch.allclose(store.values[0], torch.tensor([1.0, 2.0]))
    assert int(store.merges[0]) == 2 and store.stats()["write_hit_rate"] == pytest.approx(2 / 3)


def saved_store(tmp_path, backend="torch"):
    store = make_store(backend, 8, 64, metric="l2")
    keys, values = random_entries(40)
    store.insert(keys, values, sources=[f"text {i}" for i in range(40)])
    store.remove(store.entry_ids[store.occupied][:5])
    store.query(torch.randn(3, 8), 4)
    return store, store.save(tmp_path / "store")


@pytest.mark.parametrize("backend", ["torch", "faiss:Flat", "faiss:HNSW16", "faiss:IVF4,Flat"])
def test_reload_gives_identical_query_results_and_metadata(tmp_path, backend):
    store, folder = saved_store(tmp_path, backend)
    assert {p.name for p in folder.iterdir()} == {SETTINGS, TENSORS, ENTRIES}
    again = open_store(folder)
    queries = torch.randn(6, 8)
    a, b = store.query(queries, 5, touch=False), again.query(queries, 5, touch=False)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.scores, b.scores)
    assert store.entries(a.slots[0]) == again.entries(b.slots[0])
    assert again.stats() == store.stats()
    assert again.next_id == store.next_id and again.clock == store.clock


def test_metadata_lives_in_sqlite(tmp_path):
    _, folder = saved_store(tmp_path)
    with sqlite3.connect(folder / ENTRIES) as db:
        rows = db.execute("SELECT id, source, access_count FROM entries ORDER BY id").fetchall()
    assert len(rows) == 35 and rows[0][1] == "text 5"


def corrupt(folder, how):
    if how == "missing tensors":
        (folder / TENSORS).unlink()
    elif how == "truncated tensors":
        data = (folder / TENSORS).read_bytes()
        (folder / TENSORS).write_bytes(data[: len(data) // 2])
    elif how == "bad json":
        (folder / SETTINGS).write_text("{not json")
    elif how == "row count":
        with sqlite3.connect(folder / ENTRIES) as db:
            db.execute("DELETE FROM entries WHERE id = (SELECT MIN(id) FROM entries)")
    elif how == "not sqlite":
        (folder / ENTRIES).write_bytes(b"garbage" * 100)
    elif how == "wrong dim":
        text = (folder / SETTINGS).read_text().replace('"dim": 8', '"dim": 9')
        (folder / SETTINGS).write_text(text)


@pytest.mark.parametrize("how", ["missing tensors", "truncated tensors", "bad json", "row count", "not sqlite", "wrong dim"])
def test_corrupt_store_is_a_clear_error(tmp_path, how):
    _, folder = saved_store(tmp_path)
    corrupt(folder, how)
    with pytest.raises(MindsetError, match="corrupt|incomplete|mismatched"):
        open_store(folder)


def test_store_that_does_not_fit_the_layer_is_an_error(tmp_path):
    _, folder = saved_store(tmp_path)
    with pytest.raises(MindsetError, match="8-dimensional keys, but this layer's hidden size is 576"):
        open_store(folder, expect_dim=576)
    with pytest.raises(MindsetError, match="not a store"):
        open_store(tmp_path)


def test_interrupted_save_leaves_the_previous_store(tmp_path, monkeypatch):
    import mindset.memory.persistence as persistence

    store, folder = saved_store(tmp_path)
    before = open_store(folder)
    store.insert(*random_entries(10, seed=5))

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(persistence, "_write_entries", crash)  # dies after the tensors were written
    with pytest.raises(KeyboardInterrupt):
        store.save(folder)
    again = open_store(folder)
    assert len(again) == len(before) == 35
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no temporary folder left behind
    monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(persistence, "_write_entries", crash)
        store.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_store_moves_with_its_module():
    layer = torch.nn.Module()
    layer.store = TorchStore(8, 4)
    layer.to(torch.float64)
    assert layer.store.keys.dtype == torch.float64 and layer.store.crf.dtype == torch.float64
    assert "store.keys" not in layer.state_dict()  # stores save themselves, not in the model's weights
