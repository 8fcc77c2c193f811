import torch

from mindset.memory import TorchStore, retrieve


def tables(m=12, d=5, v=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(m, d, generator=g, dtype=torch.float64, requires_grad=True)
    values = torch.randn(m, v, generator=g, dtype=torch.float64, requires_grad=True)
    query = torch.randn(4, d, generator=g, dtype=torch.float64, requires_grad=True)
    return query, keys, values


def top_slots(query, keys, k):
    return torch.topk(query.detach() @ keys.detach().T, k, dim=1).indices


def test_finite_differences_agree_with_the_straight_through_gradient():
    query, keys, values = tables()
    slots = top_slots(query, keys, 4)
    slots[0, -1] = -1  # a padded slot (store with fewer entries) must take no weight and get no gradient
    assert torch.autograd.gradcheck(lambda q, k, v: retrieve(q, k, v, slots, 0.7), (query, keys, values))


def test_gradients_reach_only_the_retrieved_entries():
    query, keys, values = tables()
    slots = top_slots(query, keys, 3)
    retrieve(query, keys, values, slots, 1.0).sum().backward()
    read = torch.zeros(12, dtype=torch.bool)
    read[slots.flatten()] = True
    assert (keys.grad[~read] == 0).all() and (values.grad[~read] == 0).all()
    assert (keys.grad[read].abs().sum(1) > 0).all() and (values.grad[read].abs().sum(1) > 0).all()


def test_with_every_slot_selected_it_is_soft_attention_forward_and_backward():
    query, keys, values = tables()
    slots = top_slots(query, keys, 12)
    weight = torch.randn(4, 3, dtype=torch.float64)
    out = retrieve(query, keys, values, slots, 0.5)
    grads = torch.autograd.grad((out * weight).sum(), (query, keys, values))
    dense = torch.softmax(0.5 * query @ keys.T, dim=-1) @ values
    dense_grads = torch.autograd.grad((dense * weight).sum(), (query, keys, values))
    assert torch.allclose(out, dense, atol=1e-12)
    for ours, theirs in zip(grads, dense_grads):
        assert torch.allclose(ours, theirs, atol=1e-12)


def test_a_row_without_entries_reads_zeros():
    query, keys, values = tables()
    slots = torch.full((4, 3), -1)
    out = retrieve(query, keys, values, slots, 1.0)
    assert torch.equal(out, torch.zeros(4, 3, dtype=torch.float64))
    out.sum().backward()
    assert (query.grad == 0).all()


def test_store_selection_feeds_retrieval():
    store = TorchStore(5, 16, metric="cosine")
    keys = torch.randn(10, 5)
    store.insert(keys, torch.randn(10, 5))
    query = torch.nn.functional.normalize(torch.randn(3, 5), dim=-1).requires_grad_()
    hits = store.query(query.detach(), 4)
    out = retrieve(query, store.keys, store.values, hits.slots, 10.0)
    expected_w = torch.softmax(10.0 * hits.scores, dim=-1)
    assert torch.allclose(out, torch.einsum("nk,nkv->nv", expected_w, store.values[hits.slots]), atol=1e-5)
    out.sum().backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
