"""Circuits on the real SmolLM2-135M (slow)."""

import pytest

pytestmark = pytest.mark.slow


def test_causal_trace_finds_the_subject_and_the_last_token(smollm2):
    from mindset.circuits.trace import causal_trace

    trace = causal_trace(smollm2, "The capital of France is", "France", " Paris", kinds=("resid",), samples=4)
    assert trace.tokens == ["The", " capital", " of", " France", " is"] and trace.answer_token == " Paris"
    assert trace.p_clean > 0.5 and trace.p_corrupted < 0.2 * trace.p_clean
    grid = trace.grids["resid"]  # (layers, positions)
    subject, last = trace.subject_start, len(trace.tokens) - 1
    # ROME's two sites: the subject's state in early layers, the last token's state in late layers
    assert max(grid[layer][subject] for layer in range(10)) > 0.7 * trace.p_clean
    assert max(grid[layer][last] for layer in range(20, 30)) > 0.7 * trace.p_clean
    assert max(grid[layer][1] for layer in range(30)) < 0.2 * trace.p_clean  # " capital" comes before the noise


def test_layer_importance_on_capitals(smollm2):
    import warnings

    from mindset.circuits import ChanceWarning, importance

    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceWarning)  # SmolLM2 knows its capitals: no warning
        result = importance(smollm2, "capitals", "layer", "zero", limit=8, components=["L0", "L10", "L29"])
    assert not result.at_chance and result.baseline_accuracy > 0.7
    assert result.ranked()[0].drop_logprob > 1.0
