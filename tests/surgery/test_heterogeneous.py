"""A heterogeneous model (layers with different FFN widths and head counts, and an inserted layer) saved as a
folder is accepted by every capability: load, perplexity, distillation, merge (where shapes allow), serve,
the map, and circuits (ablation per head, pruning). One test per capability, on tiny-llama."""

from __future__ import annotations

import json
import math
import urllib.request
import warnings

import numpy as np
import pytest
import torch

from mindset import surgery
from mindset.errors import MindsetError
from mindset.models import load, save
from mindset.models.anatomy import blocks

IDS = torch.tensor([[5, 17, 99, 3, 42, 8, 150, 77, 23, 64]])
SHAPES = [(4, 2, 168), (4, 2, 168), (2, 1, 160)]  # (heads, kv heads, d_ff) per layer of `heterogeneous`


def heterogeneous(seed: int = 0):
    """tiny-llama with layer 0's FFN widened by 8, layer 1's second kv group removed, and an identity layer
    inserted after layer 0 (so three layers, the last with half the heads)."""
    edited = surgery.widen_ffn(load("tiny-llama", seed=seed), "0", add=8, init="random")
    edited = surgery.remove_heads(edited, {1: [2, 3]})
    return surgery.insert_layers(edited, after=0)


def shapes(loaded):
    return [(b.attention.n_heads, b.attention.n_kv_heads, b.ffn.d_ff) for b in blocks(loaded.model)]


def logits(loaded, ids=IDS):
    with torch.no_grad():
        return loaded.model(ids).logits


@pytest.fixture(scope="module")
def hetero_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hetero") / "model"
    save(heterogeneous(), folder)
    return folder


def test_load_restores_shapes_and_logits(hetero_dir):
    loaded = load(hetero_dir)
    assert shapes(loaded) == SHAPES
    torch.testing.assert_close(logits(loaded), logits(heterogeneous()), rtol=0, atol=1e-6)


def test_perplexity(hetero_dir):
    from mindset.data import corpus_text
    from mindset.evaluate import perplexity

    text = corpus_text("valid")[:400]
    saved, fresh = perplexity(load(hetero_dir), text), perplexity(heterogeneous(), text)
    assert math.isfinite(saved.perplexity) and saved.perplexity == pytest.approx(fresh.perplexity, rel=1e-5)


def test_distill_trains_and_saves_the_heterogeneous_student(hetero_dir, tmp_path):
    from mindset.train import DistillConfig, distill

    student, teacher = load(hetero_dir), load("tiny-llama", seed=1)
    before = logits(student)
    config = DistillConfig(name="h", steps=3, batch_size=2, seq_len=32, checkpoint_every=3, max_train_tokens=2000, warmup_steps=1)
    result = distill(student, teacher, config, runs_dir=tmp_path, progress=False)
    assert (logits(student) - before).abs().max() > 1e-4
    saved = load(result.student_dir)
    assert shapes(saved) == SHAPES
    torch.testing.assert_close(logits(saved), logits(student))


LINEAR = """\
merge_method: linear
dtype: float32
models:
  - model: {a}
    parameters: {{weight: 0.5}}
  - model: {b}
    parameters: {{weight: 0.5}}
"""


def test_merge_of_same_shapes_works_and_of_other_shapes_is_one_line(hetero_dir, tmp_path):
    from mindset.merge import merge

    other = save(heterogeneous(seed=1), tmp_path / "other")
    config = tmp_path / "merge.yaml"
    config.write_text(LINEAR.format(a=hetero_dir, b=other))
    merge(config, tmp_path / "merged")
    merged, a, b = load(tmp_path / "merged"), load(hetero_dir), load(other)
    assert shapes(merged) == SHAPES
    for name, tensor in merged.model.state_dict().items():
        torch.testing.assert_close(tensor, (a.model.state_dict()[name] + b.model.state_dict()[name]) / 2)
    uniform = save(surgery.insert_layers(load("tiny-llama", seed=1), after=0), tmp_path / "uniform")  # 3 layers, other shapes
    config.write_text(LINEAR.format(a=hetero_dir, b=uniform))
    with pytest.raises(MindsetError, match=r"mismatched shapes for model\.layers\.\d\.") as err:
        merge(config, tmp_path / "bad")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "bad").exists()


def test_passthrough_renumbers_heterogeneous_layers(hetero_dir, tmp_path):
    from mindset.merge import merge

    plain = save(load("tiny-llama", seed=1), tmp_path / "plain")
    config = tmp_path / "stack.yaml"
    config.write_text(f"merge_method: passthrough\nslices:\n  - sources: [{{model: {plain}, layer_range: [0, 1]}}]\n"
                      f"  - sources: [{{model: {hetero_dir}, layer_range: [1, 3]}}]\n")
    merge(config, tmp_path / "stack")
    assert shapes(load(tmp_path / "stack")) == [(4, 2, 160), *SHAPES[1:]]


def test_serve_answers_a_completion(hetero_dir):
    from mindset.serve import create_app
    from mindset.serve.background import BackgroundServer

    loaded = load(hetero_dir)
    body = json.dumps({"model": "h", "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}).encode()
    with BackgroundServer(create_app(loaded, model_name="h")) as server:
        request = urllib.request.Request(server.url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())
    assert reply["usage"]["completion_tokens"] >= 1 and isinstance(reply["choices"][0]["text"], str)


def test_map_builds(hetero_dir, tmp_path):
    from mindset.map import MapSettings, build_map

    settings = MapSettings(data=["capitals"], limit=8, paths=4, cache=tmp_path / "cache")
    built = build_map(load(hetero_dir), tmp_path / "map", settings, progress=False)
    assert (tmp_path / "map" / "index.html").exists() and built


def test_circuits_ablate_each_head_and_prune_per_layer(hetero_dir, tmp_path):
    from mindset.circuits import ChanceWarning, importance, magnitude_scores, make_suite, prune

    suite = make_suite("pairs", [("ab ab a", ["b", "c"], 0), ("cd cd c", ["d", "a"], 0), ("ef ef e", ["f", "b"], 0)])
    with warnings.catch_warnings():  # a random model has no skill on the suite: the ranking is noise, the shapes are not
        warnings.simplefilter("ignore", ChanceWarning)
        result = importance(load(hetero_dir), suite, "head", "zero")
    names = {s.name for s in result.scores}
    assert {"L2.H0", "L2.H1", "L0.H3"} <= names and "L2.H2" not in names
    grid = result.grid()  # (layers, most heads): NaN where a layer has fewer heads
    assert grid.shape == (3, 4) and np.isnan(grid[2, 2:]).all() and not np.isnan(grid[:2]).any()
    loaded = load(hetero_dir)
    pruned = prune(loaded, magnitude_scores(loaded.model), head_fraction=0.5, neuron_fraction=0.25)
    assert shapes(pruned) == [(2, 2, 126), (2, 2, 126), (1, 1, 120)]
    assert torch.isfinite(logits(pruned)).all()
    reloaded = load(save(pruned, tmp_path / "pruned"))
    assert shapes(reloaded) == shapes(pruned)
    torch.testing.assert_close(logits(reloaded), logits(pruned))
