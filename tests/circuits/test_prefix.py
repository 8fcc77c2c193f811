"""Prefix reuse in batched ablation: layers below a pass's lowest component run once, and the numbers are
one-at-a-time's."""

import random
import warnings

import numpy as np
import pytest
import torch

from mindset.circuits import ChanceWarning, importance, list_components, make_suite
from mindset.circuits.ablation import ablated_rows
from mindset.circuits.components import decoder_layers, parse_component
from mindset.circuits.importance import layer_chunks
from mindset.circuits.prefix import shared_prefix
from mindset.circuits.suite import score_suite_replicated


def _suite():
    """Shared contexts with one-token and multi-token choices: the context pass and the KV-cached continuation pass."""
    return make_suite("toy", [
        ("The capital of France is", [" Paris", " Rome in Italy", " Berlin"], 0),
        ("One two three", [" four", " five six seven"], [0, 1]),
        ("Rain falls from the", [" sky above us", " ground", " sea"], 0),
    ])


def _map(loaded, granularity, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChanceWarning)
        return importance(loaded, _suite(), granularity, **kwargs)


def test_shared_prefix_logits_equal_the_full_batch(tiny):
    """Replica-major rows ablated in layer 1 and above: with the prefix shared, every replica's logits equal
    those of the full batch, and layer 0 really ran on one replica's rows while layer 1 ran on all."""
    model = tiny.model
    ids = torch.tensor([[5, 17, 99, 3, 42], [8, 120, 6, 1, 2]])
    groups = [[parse_component(model, name)] for name in ("L1.H0", "L1.mlp", "L1")] + [[]]
    seen = {}
    layers = decoder_layers(model)

    def rows(module, args, kwargs, i):
        seen.setdefault(i, (args[0] if args else kwargs["hidden_states"]).shape[0])

    handles = [layers[i].register_forward_pre_hook(lambda m, a, k, i=i: rows(m, a, k, i), with_kwargs=True) for i in (0, 1)]
    try:
        with torch.no_grad(), ablated_rows(model, groups):
            full = model(input_ids=ids.repeat(len(groups), 1)).logits
            seen.clear()
            with shared_prefix(model, 1, len(groups)):
                shared = model(input_ids=ids.repeat(len(groups), 1)).logits
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=0)
    assert (full[:2] - full[-2:]).abs().max() > 1e-3  # the ablations do something
    assert seen == {0: 2, 1: 2 * len(groups)}


@pytest.mark.parametrize("granularity", ["head", "attn", "mlp", "layer", "neuron"])
def test_prefix_reuse_equals_one_at_a_time_in_any_order(tiny, granularity):
    """Named components in shuffled layer order, batched 2 and 3 at a time: each pass starts at its lowest
    layer, and the scores come back in the order asked for, equal to one-at-a-time's."""
    comps = [c.name for c in list_components(tiny.model, granularity)]
    if granularity == "neuron":
        comps = comps[::29]
    random.Random(0).shuffle(comps)
    one = _map(tiny, granularity, components=comps)
    want = np.array([s.drop_logprob for s in one.scores])
    assert np.abs(want).max() > 1e-4
    for batch in (2, 3):
        got = _map(tiny, granularity, components=comps, batch=batch)
        assert [s.name for s in got.scores] == comps
        np.testing.assert_allclose([s.drop_logprob for s in got.scores], want, atol=1e-5, rtol=0)
        assert [s.accuracy for s in got.scores] == [s.accuracy for s in one.scores]


def test_layer_chunks_group_by_layer(tiny_llama):
    comps = [parse_component(tiny_llama.model, n) for n in ("L1.H0", "L0.H1", "L1.H1", "L0.H0", "L0.mlp")]
    assert layer_chunks(comps, 2) == [[1, 3], [4, 0], [2]]


def test_shared_prefix_scores_a_cached_continuation_pass(tiny_gpt2):
    """The engine's continuation pass reads the context's KV cache, whose layers below the start hold one
    replica's rows: the suite's scores with the prefix shared equal those without."""
    model = tiny_gpt2.model
    groups = [[parse_component(model, "L1.H1")], [parse_component(model, "L1.mlp")]]
    with ablated_rows(model, groups):
        full = score_suite_replicated(tiny_gpt2, _suite(), len(groups))
        with shared_prefix(model, 1, len(groups)):
            shared = score_suite_replicated(tiny_gpt2, _suite(), len(groups))
    for a, b in zip(full, shared):
        np.testing.assert_allclose(a.gold_logprob, b.gold_logprob, atol=1e-5, rtol=0)


def test_shared_prefix_rejects_a_batch_that_is_not_replicas(tiny_llama):
    with shared_prefix(tiny_llama.model, 1, 3), pytest.raises(ValueError, match="not 3 replicas"):
        tiny_llama.model(input_ids=torch.tensor([[1, 2, 3], [4, 5, 6]]))
