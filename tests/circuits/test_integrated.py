"""Integrated-gradients attribution (`steps`): one step is plain attribution, and with many steps a
component that is its hook point's only one gets its exact ablation effect (completeness)."""

import warnings

import numpy as np
import pytest

from mindset.circuits import ChanceWarning, importance, make_suite
from mindset.errors import MindsetError


def _suite():
    return make_suite("toy", [
        ("The capital of France is", [" Paris", " Rome in Italy", " Berlin"], 0),
        ("One two three", [" four", " five six seven"], [0, 1]),
    ])


def _drops(loaded, granularity, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChanceWarning)
        return np.array([s.drop_logprob for s in importance(loaded, _suite(), granularity, **kwargs).scores])


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_many_steps_converge_to_exact_ablation(tiny, method):
    for granularity in ("mlp", "layer", "attn"):
        exact = _drops(tiny, granularity, method=method)
        plain = _drops(tiny, granularity, method=method, estimate="attribution")
        one_step = _drops(tiny, granularity, method=method, estimate="attribution", steps=1)
        ig = _drops(tiny, granularity, method=method, estimate="attribution", steps=32)
        np.testing.assert_array_equal(one_step, plain)
        scale = np.abs(exact).max()
        assert scale > 1e-3
        assert np.abs(ig - exact).max() <= 0.01 * scale  # midpoint rule: error falls as 1 / steps²
        assert np.abs(ig - exact).max() < np.abs(plain - exact).max()


def test_steps_check(tiny_llama):
    with pytest.raises(MindsetError, match="steps must be"):
        _drops(tiny_llama, "mlp", steps=4)  # exact ablation has no steps
    with pytest.raises(MindsetError, match="steps must be"):
        _drops(tiny_llama, "mlp", estimate="attribution", steps=0)
