"""Each merge method's semantics on small tensors, and how parameters resolve."""

import math

import pytest
import torch

from mindset.merge.config import ConditionalParameter
from mindset.merge.methods import METHODS, MergeInputs, get_method
from mindset.merge.methods.topk import keep_top_magnitudes, top_magnitude_mask
from mindset.merge.parameters import MISSING, evaluate, resolve


def run(name, tensors, params=None, base=None, generator=None, **shared):
    method = get_method(name)
    defaults = {p.name: p.default for p in method.shared}
    per_input = params or [{} for _ in tensors]
    return method(MergeInputs(list(tensors), base, per_input, "w", generator), {**defaults, **shared})


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_every_issue_method_is_registered():
    assert {"passthrough", "linear", "slerp", "task_arithmetic", "ties", "dare_ties", "dare_linear", "model_stock"} <= set(METHODS)


def test_linear_is_the_weighted_mean_and_keeps_the_dtype():
    a, b = randn(4, 3, seed=1), randn(4, 3, seed=2)
    out = run("linear", [a, b], [{"weight": 3.0}, {"weight": 1.0}])
    torch.testing.assert_close(out, (3 * a + b) / 4)
    raw = run("linear", [a, b], [{"weight": 3.0}, {"weight": 1.0}], normalize=False)
    torch.testing.assert_close(raw, 3 * a + b)
    half = run("linear", [a.half(), b.half()], [{"weight": 1.0}, {"weight": 1.0}])
    assert half.dtype == torch.float16  # blended in float32, returned in the inputs' dtype
    torch.testing.assert_close(half, ((a.half().float() + b.half().float()) / 2).half())


def test_linear_with_a_zero_weight_is_exactly_the_other_input():
    a, b = randn(5, 7, seed=1), randn(5, 7, seed=2)
    assert torch.equal(run("linear", [a, b], [{"weight": 1.0}, {"weight": 0.0}]), a)


def test_passthrough_copies_or_scales():
    a = randn(3, 3)
    assert torch.equal(run("passthrough", [a], [{"scale": None}]), a)
    assert torch.equal(run("passthrough", [a], [{"scale": 0.5}]), a * 0.5)


def test_slerp_endpoints_midpoint_and_collinear_inputs():
    a, b = randn(64, 32, seed=1), randn(64, 32, seed=2)
    torch.testing.assert_close(run("slerp", [a, b], base=0, t=0.0), a)
    torch.testing.assert_close(run("slerp", [a, b], base=0, t=1.0), b)
    torch.testing.assert_close(run("slerp", [b, a], base=1, t=1.0), b)  # t runs from the base, wherever it is listed
    mid = run("slerp", [a, b], base=0, t=0.5).flatten()
    ua, ub = a.flatten() / a.norm(), b.flatten() / b.norm()
    theta = torch.acos((ua * ub).sum())
    expected = (torch.sin(theta / 2) / torch.sin(theta)) * (a + b).flatten()  # angle from the unit vectors, applied to the raw ones
    torch.testing.assert_close(mid, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(run("slerp", [a, 2 * a], base=0, t=0.25), 1.25 * a)  # collinear: plain lerp


def test_task_arithmetic_adds_weighted_task_vectors():
    base, a, b = randn(8, 4, seed=1), randn(8, 4, seed=2), randn(8, 4, seed=3)
    params = [{}, {"weight": 0.5, "density": 1.0}, {"weight": 0.25, "density": 1.0}]
    out = run("task_arithmetic", [base, a, b], params, base=0, **{"lambda": 2.0})
    torch.testing.assert_close(out, base + 2.0 * (0.5 * (a - base) + 0.25 * (b - base)))
    normalized = run("task_arithmetic", [base, a, b], params, base=0, normalize=True)
    torch.testing.assert_close(normalized, base + (0.5 * (a - base) + 0.25 * (b - base)) / 0.75)


def test_ties_keeps_top_magnitudes_and_elects_signs():
    base = torch.zeros(4)
    a = torch.tensor([3.0, -1.0, 0.1, 2.0])
    b = torch.tensor([-1.0, -2.0, 0.2, 1.0])
    params = [{}, {"weight": 1.0, "density": 0.75}, {"weight": 1.0, "density": 0.75}]
    out = run("ties", [base, a, b], params, base=0)
    # a keeps 3, -1, 2 (drops 0.1); b keeps -1, -2, 1 (drops 0.2). Signs: +, -, +(tie at 0), +.
    # element 0: a=3 agrees (+), b=-1 disagrees -> 3/1; element 1: both negative -> (-1-2)/2; element 3: (2+1)/2
    torch.testing.assert_close(out, torch.tensor([3.0, -1.5, 0.0, 1.5]))


def test_top_magnitude_mask_matches_argsort_with_and_without_ties():
    values = randn(1000, seed=5)
    for k in (1, 10, 500, 999):
        reference = torch.zeros(1000)
        reference[torch.argsort(values.abs(), descending=True)[:k]] = 1
        assert torch.equal(top_magnitude_mask(values, k), reference)
    tied = torch.randint(0, 5, (1000,), generator=torch.Generator().manual_seed(0)).float()  # ambiguous cuts: argsort decides
    for k in (100, 370):
        reference = torch.zeros(1000)
        reference[torch.argsort(tied, descending=True)[:k]] = 1
        assert torch.equal(top_magnitude_mask(tied, k), reference)
    big = randn(1_100_000, seed=6)  # bracketed by a sample, counted piece by piece
    big[123] = big[456] = 0.5  # a tie, away from the cut
    for k in (1, 400_000, 1_099_999):
        reference = torch.zeros(1_100_000)
        reference[torch.argsort(big.abs(), descending=True)[:k]] = 1
        assert torch.equal(top_magnitude_mask(big, k), reference)
        assert torch.equal(keep_top_magnitudes(big, k), big * reference)
    with_nan = big.clone()
    with_nan[7] = float("nan")  # argsort ranks NaN first; so must the mask
    reference = torch.zeros(1_100_000)
    reference[torch.argsort(with_nan.abs(), descending=True)[:1000]] = 1
    assert torch.equal(top_magnitude_mask(with_nan, 1000), reference)


def test_dare_keeps_about_density_and_rescales_to_the_l1_norm():
    base = torch.zeros(20000)
    a = randn(20000, seed=1)
    params = [{}, {"weight": 1.0, "density": 0.3}]
    out = run("dare_linear", [base, a], params, base=0, generator=torch.Generator().manual_seed(7))
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.3) < 0.02
    torch.testing.assert_close(out.abs().sum(), a.abs().sum())  # rescaled so the L1 norm is unchanged
    ratio = out[kept] / a[kept]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))
    again = run("dare_linear", [base, a], params, base=0, generator=torch.Generator().manual_seed(7))
    other = run("dare_linear", [base, a], params, base=0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_model_stock_interpolates_by_the_angle():
    base = torch.zeros(2)
    ws = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]  # orthogonal task vectors: cos = 0 -> t = 0
    torch.testing.assert_close(run("model_stock", [base, *ws], base=0), base)
    same = [torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])]  # cos = 1 -> t = 1: the average
    torch.testing.assert_close(run("model_stock", [base, *same], base=0), torch.tensor([1.5, 1.5]))
    cos = 0.5
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.5, math.sqrt(3) / 2])
    t = 2 * cos / (1 + cos)
    torch.testing.assert_close(run("model_stock", [base, a, b], base=0), t * (a + b) / 2)


def test_gradients_interpolate_and_filters_pick_by_name():
    weight = get_method("linear").param("weight")
    assert evaluate([0.0, 1.0], "x", 0.25, weight) == 0.25
    assert evaluate([0.0, 1.0, 0.0], "x", 0.75, weight) == 0.5
    assert evaluate(1, "x", 0.0, weight) == 1.0 and evaluate("1e-3", "x", 0.0, weight) == 0.001
    setting = [ConditionalParameter(filter="mlp", value=0.2), ConditionalParameter(value=[0.0, 1.0])]
    assert evaluate(setting, "model.layers.3.mlp.up_proj.weight", 1.0, weight) == 0.2
    assert evaluate(setting, "model.layers.3.self_attn.q_proj.weight", 1.0, weight) == 1.0
    only_mlp = [ConditionalParameter(filter="mlp", value=0.2)]
    assert evaluate(only_mlp, "model.norm.weight", 0.0, weight) is MISSING
    # precedence: model's own setting, then the slice's, then the top level; a missed filter defers
    assert resolve(weight, [{"weight": only_mlp}, None, {"weight": 0.7}], "model.norm.weight", 0.0) == 0.7
    assert resolve(weight, [None, None, None], "w", 0.0) is MISSING
    normalize = get_method("linear").param("normalize")
    assert resolve(normalize, [None], "w", 0.0) is True
    with pytest.raises(ValueError, match="normalize must be true or false"):
        normalize.convert("maybe")


# Whole-tensor references, written the plain way (mergekit's order of operations): the methods run in
# chunks and pieces for speed and must give the same bits on tensors bigger than one chunk.


def reference_slerp(t, v0, v1, chunk=1 << 20):
    a, b = v0.reshape(1, -1), v1.reshape(1, -1)
    t = torch.tensor([t]).reshape(-1, 1)
    starts = range(0, a.shape[1], chunk)
    norm_a = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a[:, s : s + chunk], dim=1, keepdim=True) for s in starts]), dim=0)
    norm_b = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(b[:, s : s + chunk], dim=1, keepdim=True) for s in starts]), dim=0)
    dot = torch.stack([(a[:, s : s + chunk] / norm_a * (b[:, s : s + chunk] / norm_b)).sum(dim=1, keepdim=True) for s in starts]).sum(dim=0).clamp(-1, 1)
    theta = torch.acos(dot)
    result = torch.empty_like(a)
    for s in starts:
        result[:, s : s + chunk] = torch.sin((1 - t) * theta) / torch.sin(theta) * a[:, s : s + chunk] + torch.sin(t * theta) / torch.sin(theta) * b[:, s : s + chunk]
    return result.reshape(v0.shape)


def reference_ties(base, others, weights, densities):
    deltas = base.new_empty((len(others), *base.shape))
    for i, (x, density) in enumerate(zip(others, densities)):
        delta = x - base
        k = max(1, int(density * delta.numel()))
        mask = torch.zeros(delta.numel())
        mask[torch.argsort(delta.abs().reshape(-1), descending=True)[:k]] = 1
        deltas[i] = delta * mask.reshape(delta.shape)
    w = torch.tensor(weights).reshape(-1, *([1] * base.dim()))
    deltas.mul_(w)
    sign = deltas.sign()
    mask = sign == ((deltas.sum(dim=0) >= 0).float() * 2 - 1)
    mixed = (deltas * mask).sum(dim=0)
    divisor = (w * mask).sum(dim=0)
    divisor[divisor == 0] = 1
    return base + mixed / divisor


def test_chunked_methods_give_the_same_bits_as_whole_tensor_arithmetic():
    a, b, c = randn(1500, 1700, seed=1), randn(1500, 1700, seed=2), randn(1500, 1700, seed=3)  # 2.5M elements: 3 SLERP chunks, 10 pieces
    assert torch.equal(run("slerp", [a, b], base=0, t=0.3), reference_slerp(0.3, a, b))
    params = [{}, {"weight": 0.7, "density": 0.5}, {"weight": 0.4, "density": 0.2}]
    assert torch.equal(run("ties", [a, b, c], params, base=0), reference_ties(a, [b, c], [0.7, 0.4], [0.5, 0.2]))
    out = torch.empty_like(a)
    assert run("ties", [a, b, c], params, base=0).data_ptr() != out.data_ptr()
    method = get_method("ties")
    filled = method(MergeInputs([a, b, c], 0, params, "w", None, out), {p.name: p.default for p in method.shared})
    assert filled.data_ptr() == out.data_ptr() and torch.equal(out, reference_ties(a, [b, c], [0.7, 0.4], [0.5, 0.2]))
