"""importance(): hooks equal weight surgery, the honest mapping test, files, and bad input."""

import json
import warnings

import pytest
import torch

from benchmarks.toy import (
    attention_only_llama,
    previous_token_attention,
    previous_token_suite,
    restrict_attention_training,
    train_previous_token,
)
from mindset.circuits import ChanceWarning, Importance, importance, list_components, make_suite, parse_component
from mindset.circuits.ablation import ablated, collect_stats
from mindset.circuits.components import blocks
from mindset.errors import MindsetError


def raises_user_error(match):
    return pytest.raises(MindsetError, match=match)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_head_and_mlp_ablation_hooks_equal_zeroed_weights(tiny):
    """Zero-ablating head 1 of layer 1 by the pre-hook = zeroing that head's input columns of the output
    projection; zero-ablating an MLP = zeroing its output projection (Llama o_proj/down_proj; GPT-2 Conv1D c_proj)."""
    model = tiny.model
    ids = torch.tensor([[5, 17, 99, 3, 42, 7, 8, 120]])
    b = blocks(model)[1]
    with ablated(model, [parse_component(model, "L1.H1")], "zero"):
        hooked = _logits(model, ids)
    with ablated(model, [parse_component(model, "L0.mlp")], "zero"):
        hooked_mlp = _logits(model, ids)
    clean = _logits(model, ids)
    assert not torch.allclose(hooked, clean)
    sl = slice(b.head_dim, 2 * b.head_dim)
    weight = b.out_proj.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        if type(b.out_proj).__name__ == "Conv1D":
            weight[sl] = 0  # GPT-2 Conv1D: (in, out)
        else:
            weight[:, sl] = 0
    surgery = _logits(model, ids)
    with torch.no_grad():
        weight.copy_(saved)
    torch.testing.assert_close(hooked, surgery, atol=1e-5, rtol=1e-5)
    mlp = blocks(model)[0].mlp
    out_proj = mlp.down_proj if hasattr(mlp, "down_proj") else mlp.c_proj
    saved = {n: p.detach().clone() for n, p in out_proj.named_parameters()}
    with torch.no_grad():
        for p in out_proj.parameters():
            p.zero_()
    surgery_mlp = _logits(model, ids)
    with torch.no_grad():
        for n, p in out_proj.named_parameters():
            p.copy_(saved[n])
    torch.testing.assert_close(hooked_mlp, surgery_mlp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_logits(model, ids), clean)  # hooks are gone


def test_layer_zero_ablation_skips_the_layer(tiny_llama):
    model = tiny_llama.model
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with ablated(model, [parse_component(model, "L1")], "zero"):
        hooked = _logits(model, ids)
    layers = model.model.layers
    model.model.layers = torch.nn.ModuleList([layers[0]])
    model.config.num_hidden_layers = 1
    try:
        skipped = _logits(model, ids)
    finally:
        model.model.layers = layers
        model.config.num_hidden_layers = 2
    torch.testing.assert_close(hooked, skipped, atol=1e-5, rtol=1e-5)


def test_mean_ablation_uses_the_clean_mean(tiny_llama):
    model = tiny_llama.model
    comp = parse_component(model, "L0.mlp")
    mlp = blocks(model)[0].mlp
    outputs = []
    handle = mlp.register_forward_hook(lambda m, a, out: outputs.append(out[0]))
    stats = collect_stats(model, [comp], [[1, 2, 3, 4], [9, 8, 7]])
    handle.remove()
    expected = torch.cat(outputs).mean(0)
    assert stats.counts[(0, "mlp")] == 7
    torch.testing.assert_close(stats.mean((0, "mlp")), expected)
    with ablated(model, [comp], "mean", stats):
        seen = []
        handle = mlp.register_forward_hook(lambda m, a, out: seen.append(out))  # runs after the ablation hook
        _logits(model, torch.tensor([[5, 6, 7]]))
        handle.remove()
    torch.testing.assert_close(seen[0], expected.expand(1, 3, -1))


@pytest.fixture(scope="module")
def previous_token_model():
    """Ground truth by construction: in a 2-layer, 4-head attention-only model only L1.H2 may learn (the
    other seven heads stay random and keep writing into the residual stream); trained on "predict the
    previous token", it becomes a previous-token head, and its attention pattern says so."""
    loaded = attention_only_llama(seed=0, init=0.1)
    restrict_attention_training(loaded, layer=1, head=2)
    assert train_previous_token(loaded, steps=200) > 0.95
    attention = previous_token_attention(loaded)
    assert attention[1, 2] > 0.9 and attention.flatten().topk(2).values[1] < 0.5  # the mechanism, seen directly
    return loaded


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_the_head_that_implements_previous_token_copying_ranks_first(previous_token_model, method):
    result = importance(previous_token_model, previous_token_suite(), "head", method)
    ranked = result.ranked()
    assert ranked[0].name == "L1.H2"
    assert ranked[0].drop_logprob > 5 * max(ranked[1].drop_logprob, 0.05)
    assert ranked[0].drop_accuracy > 0.3 and not result.at_chance


def test_result_files_round_trip(tiny_gpt2, tmp_path):
    suite = make_suite("toy", [("ab", ["c", "d"], 0), ("cd", ["e", "f"], 1), ("ef", ["g", "h"], 0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChanceWarning)
        result = importance(tiny_gpt2, suite, "head", "zero")
    paths = result.save(tmp_path / "map")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = Importance.load(tmp_path / "map")
    assert again == result
    assert result.grid().shape == (2, 4)
    assert "L0.H0" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["granularity"] == "head"


def test_shipped_suite_scores_with_the_eval_engine(tiny_llama):
    """Baseline accuracy of a shipped task equals `mindset eval`'s acc on the same documents."""
    import tempfile
    from pathlib import Path

    from mindset.circuits import build_suite, score_suite
    from mindset.evaluate import evaluate_task, load_task, write_suites
    from mindset.evaluate.tasks import Task

    suite = build_suite("ordering", limit=8)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_suites(["ordering"], Path(tmp))[0]
        expected = evaluate_task(tiny_llama, Task(load_task(path)), limit=8)
        lls = [s["loglikelihoods"][s["gold"][0]] for s in expected.samples]
    score = score_suite(tiny_llama, suite)
    assert score.accuracy == pytest.approx(expected.metrics["acc"]["value"])
    assert score.gold_logprob == pytest.approx(lls, abs=1e-4)


def test_chance_suite_warns(tiny_llama):
    with pytest.warns(ChanceWarning, match="nothing to map|no skill here to map"):
        result = importance(tiny_llama, "modus_ponens", "mlp", limit=4)
    assert result.at_chance


def test_bad_component_names(tiny_llama):
    model = tiny_llama.model
    with raises_user_error("has 2 layers"):
        importance(tiny_llama, previous_token_suite(4), components=["L7.mlp"])
    with raises_user_error("has 4 heads"):
        parse_component(model, "L0.H9")
    with raises_user_error("not a component name"):
        parse_component(model, "layer3.head2")
    with raises_user_error("unknown granularity"):
        list_components(model, "neurons")
    assert [c.name for c in list_components(model, "neuron")][158:162] == ["L0.mlp.N158", "L0.mlp.N159", "L1.mlp.N0", "L1.mlp.N1"]
    assert parse_component(model, "L1.mlp.N7") == list_components(model, "neuron")[167]
    with raises_user_error("has 160 neurons"):
        parse_component(model, "L0.mlp.N160")
    with raises_user_error("unknown ablation method"):
        importance(tiny_llama, previous_token_suite(4), method="noise")
    with raises_user_error("unknown task or suite"):
        importance(tiny_llama, "modus_ponen")
    assert [c.name for c in list_components(model, "attn")] == ["L0.attn", "L1.attn"]


def test_a_suite_splits_into_its_first_documents_and_the_rest():
    suite = make_suite("toy", [("ab", ["c", "d"], 0), ("cd", ["e", "f"], 1), ("ef", ["g", "h"], 0)], chance=0.5)
    first, rest = suite.split(2)
    assert [it.context for it in first.items] == ["ab", "cd"] and [it.context for it in rest.items] == ["ef"]
    assert {(s.name, s.chance, s.greedy) for s in (first, rest)} == {(suite.name, suite.chance, suite.greedy)}
