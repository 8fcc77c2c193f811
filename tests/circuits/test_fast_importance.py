"""Batched exact ablation equals one-at-a-time; attribution patching is exact where first order is, and
agrees with exact ablation on tiny models."""

import warnings

import numpy as np
import pytest
import torch

from mindset.circuits import ChanceWarning, importance, list_components, make_suite
from mindset.circuits.ablation import ablated, collect_stats
from mindset.circuits.attribution import Batch, attribute
from mindset.circuits.components import blocks
from mindset.circuits.prune import mlp_projections
from mindset.circuits.suite import Item, Suite
from mindset.errors import MindsetError

GRANULARITIES = ("head", "attn", "mlp", "layer")


def _suite():
    """Multiple choice with shared contexts, multi-token choices of different lengths, two correct choices in
    one document (mc2-style), and one-token choices: every branch of the scoring path."""
    return make_suite("toy", [
        ("The capital of France is", [" Paris", " Rome in Italy", " Berlin"], 0),
        ("One two three", [" four", " five six seven"], [0, 1]),
        ("a b c d e", [" f", " g"], 1),
        ("Rain falls from the", [" sky above us", " ground", " sea"], 0),
    ])


def _greedy_suite():
    return Suite("greedy-toy", [Item("Once upon a", (" time there was",), (0,)), Item("x y", (" z",), (0,))], 0.0, greedy=True)


def _map(loaded, suite, granularity, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChanceWarning)
        return importance(loaded, suite, granularity, **kwargs)


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_batched_ablation_equals_one_at_a_time_at_every_granularity(tiny, method):
    for suite in (_suite(), _greedy_suite()):
        for granularity in GRANULARITIES:
            one = _map(tiny, suite, granularity, method=method)
            n = len(one.scores)
            for batch in (3, n):  # a ragged last chunk, and everything in one pass
                batched = _map(tiny, suite, granularity, method=method, batch=batch)
                assert [s.name for s in batched.scores] == [s.name for s in one.scores]
                got = np.array([s.drop_logprob for s in batched.scores])
                want = np.array([s.drop_logprob for s in one.scores])
                assert np.abs(want).max() > 1e-3  # the ablations do something
                np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
                assert [s.accuracy for s in batched.scores] == [s.accuracy for s in one.scores]


def test_batched_ablation_replicas_are_independent(tiny_llama):
    """Replica r of a pass sees only its own ablation: the logits of an unablated replica equal the clean run's."""
    from mindset.circuits.ablation import ablated_rows
    from mindset.circuits.components import parse_component

    model = tiny_llama.model
    ids = torch.tensor([[5, 17, 99, 3, 42]])
    with torch.no_grad():
        clean = model(input_ids=ids).logits
        with ablated(model, [parse_component(model, "L1.H2")]):
            alone = model(input_ids=ids).logits
        with ablated_rows(model, [[], [parse_component(model, "L1.H2")], []]):
            rows = model(input_ids=ids.repeat(3, 1)).logits
    torch.testing.assert_close(rows[0], clean[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[2], clean[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[1], alone[0], atol=1e-5, rtol=0)


def _linear_metric_batches(ids, token):
    """A metric linear in the logits: the summed logit of one token over every position, per row."""
    return [Batch(ids, torch.arange(ids.shape[0]), ids.shape[0], lambda logits: logits[..., token].sum(-1))]


def _linear_case(model, comps, method):
    """(attribution estimate, exact ablation effect) for a metric linear in the logits, (rows, components)."""
    ids = torch.tensor([[5, 17, 99, 3, 42, 7], [8, 120, 6, 1, 2, 77]])
    stats = collect_stats(model, comps, ids.tolist()) if method == "mean" else None
    estimate = attribute(model, comps, _linear_metric_batches(ids, 11), method, stats)
    with torch.no_grad():
        clean = model(input_ids=ids).logits[..., 11].sum(-1)
        exact = []
        for c in comps:
            with ablated(model, [c], method, stats):
                exact.append(clean - model(input_ids=ids).logits[..., 11].sum(-1))
    return estimate, torch.stack(exact, 1)


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_attribution_equals_ablation_where_first_order_is_exact(tiny, method):
    """With the final norm replaced by the identity and a metric linear in the logits, the metric is linear
    in the last layer's MLP output and in its update (what a layer ablation replaces); with that MLP's output
    projection zeroed too, also in its heads and attention output (nothing nonlinear reads them any more).
    There the first-order estimate is the ablation effect itself: hook points, baselines and signs, exactly."""
    model = tiny.model
    body = model.model if hasattr(model, "model") else model.transformer
    norm_name = "norm" if hasattr(body, "norm") else "ln_f"
    saved = getattr(body, norm_name)
    setattr(body, norm_name, torch.nn.Identity())
    last = len(list_components(model, "layer")) - 1
    try:
        comps = [c for g in ("mlp", "layer") for c in list_components(model, g) if c.layer == last]
        estimate, exact = _linear_case(model, comps, method)
        assert exact.abs().min() > 1e-2
        torch.testing.assert_close(estimate, exact, atol=1e-5, rtol=1e-5)
        out_proj = mlp_projections(blocks(model)[last].mlp)[1]
        with torch.no_grad():
            for p in out_proj.parameters():
                p.zero_()
        comps = [c for g in ("head", "attn") for c in list_components(model, g) if c.layer == last]
        estimate, exact = _linear_case(model, comps, method)
        assert exact.abs().max() > 1e-2
        torch.testing.assert_close(estimate, exact, atol=1e-5, rtol=1e-5)
    finally:
        setattr(body, norm_name, saved)


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_attribution_ranks_heads_like_exact_ablation(tiny, method):
    """On the capitals suite (8 documents) the first-order estimates of the 8 heads' drops rank them as exact
    ablation does: measured ρ 0.98-1.0 on both tiny models for zero and mean; on the 4-document toy suite above
    it is lower (0.43-0.95), and with 2 attention blocks, MLPs or layers a rank correlation says nothing. The
    assertion is only what held with margin everywhere: ρ > 0.5 here."""
    exact = _map(tiny, "capitals", "head", method=method, batch=8, limit=8)
    estimate = _map(tiny, "capitals", "head", method=method, estimate="attribution", batch=4, limit=8)
    assert estimate.estimate == "attribution" and estimate.scores[0].accuracy is None
    rho = _spearman([s.drop_logprob for s in estimate.scores], [s.drop_logprob for s in exact.scores])
    assert rho > 0.5, rho


def test_attribution_batches_documents_without_changing_them(tiny_gpt2):
    """Padding documents together (right-padded, mc2 golds in one row each) gives each document the estimate it gets alone."""
    alone = _map(tiny_gpt2, _suite(), "head", estimate="attribution", batch=1)
    together = _map(tiny_gpt2, _suite(), "head", estimate="attribution", batch=4)
    np.testing.assert_allclose([s.drop_logprob for s in together.scores], [s.drop_logprob for s in alone.scores], atol=1e-5)
    np.testing.assert_allclose([s.drop_logprob_stderr for s in together.scores], [s.drop_logprob_stderr for s in alone.scores], atol=1e-5)


def test_bad_estimate_and_batch(tiny_llama):
    suite = _suite()
    with pytest.raises(MindsetError, match="unknown estimate"):
        importance(tiny_llama, suite, estimate="guess")
    with pytest.raises(MindsetError, match="batch must be"):
        importance(tiny_llama, suite, batch=0)
    with pytest.raises(MindsetError, match="resample"):
        importance(tiny_llama, suite, method="resample", batch=4)
    with pytest.raises(MindsetError, match="zero or mean"):
        importance(tiny_llama, suite, method="resample", estimate="attribution")


def test_cli_map_takes_estimate_and_batch(cli, tmp_path):
    """The options come from CircuitsParams: --batch gives the one-at-a-time numbers, --estimate attribution a
    map without accuracies; a bad value is one line and exit code 2."""
    import json

    runs = {}
    for name, extra in (("one", []), ("batched", ["--batch", "8"]), ("attr", ["--estimate", "attribution", "--batch", "2"])):
        code, out, err = cli("circuits", "map", "tiny-llama", "--suite", "ordering", "-g", "head", "--limit", "3", "-o", str(tmp_path / name), *extra)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "importance.json").read_text())
    np.testing.assert_allclose([s["drop_logprob"] for s in runs["batched"]["scores"]], [s["drop_logprob"] for s in runs["one"]["scores"]], atol=1e-5)
    assert runs["attr"]["estimate"] == "attribution" and runs["attr"]["scores"][0]["accuracy"] is None
    code, out, err = cli("circuits", "map", "tiny-llama", "--suite", "ordering", "--estimate", "guess", "--limit", "2")
    assert code == 2 and "estimate" in err


def test_pruning_scores_are_the_same_attribution(tiny_llama):
    """prune.attribution_scores (|estimate| summed over documents, normalised) reads the same Capture as
    importance's estimate: per head, the two agree for a single-answer suite."""
    from mindset.circuits.prune import attribution_scores
    from mindset.circuits.suite import gold_batches

    suite = make_suite("toy", [("The capital of France is", [" Paris", " Rome"], 0), ("a b c d e", [" f", " g h"], 1)])
    model = tiny_llama.model
    comps = list_components(model, "head")
    per_doc = attribute(model, comps, gold_batches(suite, tiny_llama.tokenizer, 2048, 2, "cpu")).abs().sum(0)
    expected = per_doc / per_doc.sum()
    scores = attribution_scores(tiny_llama, [suite])
    torch.testing.assert_close(torch.cat(scores.heads), expected, atol=1e-5, rtol=1e-4)


NEURONS = ["L0.mlp.N0", "L0.mlp.N3", "L0.mlp.N77", "L1.mlp.N5", "L1.mlp.N100", "L1.mlp.N127", "L1.mlp.N2"]


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_batched_neuron_ablation_equals_one_at_a_time(tiny, method):
    one = _map(tiny, _suite(), "neuron", method=method, components=NEURONS)
    assert one.granularity == "neuron" and [s.neuron for s in one.scores] == [0, 3, 77, 5, 100, 127, 2]
    want = np.array([s.drop_logprob for s in one.scores])
    assert np.abs(want).max() > 1e-4
    for batch in (3, len(NEURONS)):
        batched = _map(tiny, _suite(), "neuron", method=method, components=NEURONS, batch=batch)
        np.testing.assert_allclose([s.drop_logprob for s in batched.scores], want, atol=1e-5, rtol=0)
        assert [s.accuracy for s in batched.scores] == [s.accuracy for s in one.scores]
    assert one.grid().shape == (2, 128) and one.grid()[1, 127] == want[5]


def test_neuron_attribution_is_exact_where_first_order_is(tiny):
    """The down projection is linear: with the final norm the identity and a linear metric, the last layer's
    neurons enter the metric linearly, so their estimate is their ablation effect (zero and mean)."""
    model = tiny.model
    body = model.model if hasattr(model, "model") else model.transformer
    norm_name = "norm" if hasattr(body, "norm") else "ln_f"
    saved = getattr(body, norm_name)
    setattr(body, norm_name, torch.nn.Identity())
    try:
        comps = [c for c in list_components(model, "neuron") if c.layer == 1][::9]
        for method in ("zero", "mean"):
            estimate, exact = _linear_case(model, comps, method)
            assert exact.abs().max() > 1e-3
            torch.testing.assert_close(estimate, exact, atol=1e-5, rtol=1e-5)
    finally:
        setattr(body, norm_name, saved)


def test_neuron_attributions_add_up_to_their_mlp(tiny_llama):
    """Zero baseline, no down-projection bias (Llama): an MLP's output is Σ_n a_n W[:, n], so its estimate is the
    sum of its neurons' estimates; `method="attribution"` is the same estimate as `estimate="attribution"`."""
    neurons = _map(tiny_llama, "capitals", "neuron", method="attribution", limit=4, batch=4)
    mlps = _map(tiny_llama, "capitals", "mlp", estimate="attribution", limit=4, batch=4)
    assert neurons.estimate == "attribution" and neurons.method == "zero"
    for layer, mlp in enumerate(mlps.scores):
        total = sum(s.drop_logprob for s in neurons.scores if s.layer == layer)
        assert total == pytest.approx(mlp.drop_logprob, abs=1e-4)


def test_graddrop_keeps_last_layer_estimates_and_cuts_paths_below(tiny):
    """GradDrop's pass l cuts the gradient through layer l only: a last-layer component's gradient flows through no
    later layer, so its GradDrop estimate is |its attribution| exactly; a layer-0 component of a 2-layer model keeps
    only its path around layer 1 (the direct one), which is a different number."""
    from mindset.circuits.suite import gold_batches

    model, suite = tiny.model, make_suite("toy", [("The capital of France is", [" Paris", " Rome"], 0), ("a b c d e", [" f", " g h"], 1)])
    comps = [c for g in ("head", "mlp", "neuron") for c in list_components(model, g)][:60]
    plain = attribute(model, comps, gold_batches(suite, tiny.tokenizer, 256, 2, "cpu"))
    dropped = attribute(model, comps, gold_batches(suite, tiny.tokenizer, 256, 2, "cpu"), graddrop=True)
    last = torch.tensor([c.layer == 1 for c in comps])
    torch.testing.assert_close(dropped[:, last], plain[:, last].abs(), atol=1e-5, rtol=1e-5)
    assert (dropped >= 0).all()
    assert (dropped[:, ~last] - plain[:, ~last].abs()).abs().max() > 1e-4


@pytest.mark.parametrize("estimate", ["exact", "attribution"])
def test_a_given_baseline_stands_in_for_scoring_it_again(tiny_llama, estimate, monkeypatch):
    import sys

    from mindset.circuits.suite import score_suite

    suite = _suite()
    names = [c.name for c in list_components(tiny_llama.model, "head")[:3]]
    plain = _map(tiny_llama, suite, "head", components=names, estimate=estimate)
    given = score_suite(tiny_llama, suite)
    calls = []
    module = sys.modules["mindset.circuits.importance"]  # the package's `importance` is the function
    monkeypatch.setattr(module, "score_suite", lambda *a, **k: calls.append(a) or score_suite(*a, **k))
    reused = _map(tiny_llama, suite, "head", components=names, estimate=estimate, baseline=given)
    assert calls == [] and reused.as_dict() == plain.as_dict()
    with pytest.raises(ValueError, match="the baseline scores 4 documents, the suite has 2"):
        _map(tiny_llama, _greedy_suite(), "head", components=names, estimate=estimate, baseline=given)
