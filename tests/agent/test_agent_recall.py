"""Recall scoring (Generative Agents): each of relevance, recency and importance can decide the ranking."""

import numpy as np
import pytest
import torch

from mindset.agent.recall import MemoryIndex, RecallWeights, min_max

NOW = 1_000_000.0
HOUR = 3600.0


def index_of(rows):
    """rows: (id, embedding, hours since last access, importance)."""
    return MemoryIndex([r[0] for r in rows], np.array([r[1] for r in rows], np.float32),
                       [NOW - r[2] * HOUR for r in rows], [r[3] for r in rows])


def ranking(index, query, **weights):
    return [r.id for r in index.top(query, NOW, RecallWeights(**weights), k=index.n)]


# R is about the query but old and dull; T was accessed just now; I is important. Each wins on its own component.
MIXED = [(1, [1.0, 0.0], 200.0, 2), (2, [0.0, 1.0], 0.0, 2), (3, [0.0, 1.0], 200.0, 9)]
QUERY = [1.0, 0.0]


@pytest.mark.parametrize("weights, first", [({"relevance": 1, "recency": 0, "importance": 0}, 1),
                                            ({"relevance": 0, "recency": 1, "importance": 0}, 2),
                                            ({"relevance": 0, "recency": 0, "importance": 1}, 3),
                                            ({"relevance": 1.5, "recency": 1, "importance": 1}, 1),
                                            ({"relevance": 1, "recency": 1.5, "importance": 1}, 2),
                                            ({"relevance": 1, "recency": 1, "importance": 1.5}, 3)])
def test_each_component_decides_when_it_weighs_most(weights, first):
    assert ranking(index_of(MIXED), QUERY, **weights)[0] == first


def test_with_the_other_two_equal_each_component_alone_orders_the_memories():
    by_relevance = index_of([(1, [1.0, 0.0], 5, 5), (2, [0.6, 0.8], 5, 5), (3, [0.0, 1.0], 5, 5)])
    assert ranking(by_relevance, QUERY) == [1, 2, 3]
    by_recency = index_of([(1, [1.0, 0.0], 30, 5), (2, [1.0, 0.0], 1, 5), (3, [1.0, 0.0], 300, 5)])
    assert ranking(by_recency, QUERY) == [2, 1, 3]
    by_importance = index_of([(1, [1.0, 0.0], 5, 4), (2, [1.0, 0.0], 5, 1), (3, [1.0, 0.0], 5, 10)])
    assert ranking(by_importance, QUERY) == [3, 1, 2]


def test_the_score_is_the_weighted_sum_of_min_max_normalised_components():
    rows = [(1, [1.0, 0.0], 0.0, 2), (2, [0.6, 0.8], 10.0, 6), (3, [0.0, 1.0], 100.0, 10)]
    weights = RecallWeights(relevance=2.0, recency=0.5, importance=1.0, decay=0.99)
    scored = {r.id: r for r in index_of(rows).top(QUERY, NOW, weights, k=3)}
    cosine = np.array([1.0, 0.6, 0.0])
    recency = 0.99 ** np.array([0.0, 10.0, 100.0])
    importance = np.array([2, 6, 10.0])
    norm = [(x - x.min()) / (x.max() - x.min()) for x in (cosine, recency, importance)]
    expected = 2.0 * norm[0] + 0.5 * norm[1] + 1.0 * norm[2]
    for i, memory_id in enumerate((1, 2, 3)):
        got = scored[memory_id]
        assert got.score == pytest.approx(expected[i], abs=1e-6)
        assert (got.relevance, got.recency, got.importance) == pytest.approx((norm[0][i], norm[1][i], norm[2][i]), abs=1e-6)
        assert got.hours == pytest.approx([0.0, 10.0, 100.0][i])


def test_touching_refreshes_recency_and_changes_the_ranking():
    index = index_of([(1, [1.0, 0.0], 50.0, 5), (2, [1.0, 0.0], 1.0, 5)])
    assert ranking(index, QUERY) == [2, 1]
    index.touch([1], NOW)
    assert ranking(index, QUERY) == [1, 2]


def test_add_grows_past_the_buffer_and_remove_drops_one():
    index = MemoryIndex([], np.zeros((0, 0), np.float32), [], [])
    for i in range(40):  # the buffer starts at 16 rows
        index.add(i + 1, np.eye(40, dtype=np.float32)[i], NOW, 5)
    assert index.n == 40 and ranking(index, np.eye(40)[17], recency=0, importance=0)[0] == 18
    index.remove(18)
    assert index.n == 39 and 18 not in ranking(index, np.eye(40)[17])


def test_min_max_of_equal_values_is_zero_and_a_wrong_width_is_an_error():
    assert torch.equal(min_max(torch.tensor([3.0, 3.0])), torch.zeros(2))
    from mindset.errors import MindsetError

    with pytest.raises(MindsetError, match="width 3 but the stored memories have width 2"):
        index_of(MIXED).top([1.0, 0.0, 0.0], NOW, RecallWeights())


def test_recency_differences_below_the_floor_are_not_stretched():
    """Memories a minute apart differ in recency by 0.00008: without the floor the newest would get 1 and win."""
    rows = [(1, [1.0, 0.0], 1 / 60, 5), (2, [0.9, 0.436], 0.0, 5)]
    assert ranking(index_of(rows), QUERY) == [1, 2]
    assert ranking(index_of(rows), QUERY, recency_range=0.0) == [2, 1]
    assert min_max(torch.tensor([0.5, 0.55]), 0.1).tolist() == pytest.approx([0.0, 0.5])


def random_index(n, threshold, seed=0, width=32):
    rng = np.random.default_rng(seed)
    return MemoryIndex(np.arange(1, n + 1), rng.standard_normal((n, width)).astype(np.float32), NOW - rng.uniform(0, 500, n) * HOUR,
                       rng.integers(1, 11, n), ann_threshold=threshold)


def test_beyond_the_threshold_faiss_candidates_give_the_exact_ranking():
    """The approximate path (agent.ann) against the exact scan on the same 3000 memories, for queries near memories."""
    exact, approximate = random_index(3000, 0), random_index(3000, 1000)
    assert exact.ann is None and approximate.ann is not None
    rng = np.random.default_rng(1)
    agree = 0
    for target in rng.choice(3000, 20, replace=False):
        query = exact._emb[target].numpy() + 0.3 * rng.standard_normal(32).astype(np.float32) / np.sqrt(32)
        a, b = exact.top(query, NOW, RecallWeights(), k=3), approximate.top(query, NOW, RecallWeights(), k=3)
        agree += [r.id for r in a] == [r.id for r in b]
        assert a[0].id == b[0].id and a[0].score == pytest.approx(b[0].score, abs=0.05)  # relevance's minimum is estimated
    assert agree >= 18
    recency_only = RecallWeights(relevance=0, importance=0)  # recency decides: the candidates by recency are exact
    assert [r.id for r in exact.top(QUERY * 16, NOW, recency_only, k=5)] == [r.id for r in approximate.top(QUERY * 16, NOW, recency_only, k=5)]


def test_the_faiss_candidates_follow_adds_and_removes():
    index = random_index(1200, 1000)
    vector = np.zeros(32, np.float32)
    vector[3] = 1.0
    index.add(5000, vector, NOW, 10)  # new, important, and exactly the query
    assert index.top(vector, NOW, RecallWeights(), k=1)[0].id == 5000
    index.remove(5000)
    assert index.ann is not None and 5000 not in [r.id for r in index.top(vector, NOW, RecallWeights(), k=5)]


def test_bm25_decides_when_the_rest_agree_and_is_laid_on_the_right_rows():
    index = index_of([(1, [1.0, 0.0], 5, 5), (4, [1.0, 0.0], 5, 5), (9, [1.0, 0.0], 5, 5)])
    lexical = (np.array([4, 9, 77]), np.array([2.0, 1.0, 5.0]))  # 77 is not in the index (forgotten since): ignored
    got = index.top(QUERY, NOW, RecallWeights(), k=3, lexical=lexical)
    assert [r.id for r in got] == [4, 9, 1] and [r.lexical for r in got] == [1.0, 0.5, 0.0]
    assert [r.id for r in index.top(QUERY, NOW, RecallWeights(lexical=0), k=3, lexical=lexical)] == [9, 4, 1]  # newest first on a tie
