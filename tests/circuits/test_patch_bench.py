"""benchmarks/circuit_speed.py --patch: its one-at-a-time side (whole grids, and the --sample path that times a
few cells and extrapolates) agrees with batched `patch`, and the JSON it writes has one row per pair, direction
and state with the grid's real cell count."""

import json
from argparse import Namespace

import pytest

from benchmarks.circuit_speed import PATCH_PAIRS, patch_table


def _run(model, tmp_path, **overrides):
    args = Namespace(model="tiny-llama", batch=7, sample=None, pairs=None, directions="denoise,noise", kinds=None,
                     out=str(tmp_path / "patch.py"))
    for key, value in overrides.items():
        setattr(args, key, value)
    patch_table(args, model)
    return json.loads((tmp_path / "patch.json").read_text())


def test_patch_table_one_at_a_time_equals_batched(tiny_llama, tmp_path):
    data = _run(tiny_llama, tmp_path)
    results = data["results"]
    assert {(r["pair"], r["direction"], r["kind"]) for r in results} == {
        (p, d, k) for p in ("spain", "count") for d in ("denoise", "noise") for k in ("resid", "attn", "mlp", "heads")}
    config = tiny_llama.model.config
    for r in results:
        n_tokens = len(tiny_llama.tokenizer(PATCH_PAIRS[r["pair"]][0])["input_ids"])
        assert r["cells"] == config.num_hidden_layers * (config.num_attention_heads if r["kind"] == "heads" else n_tokens)
        assert r["max_abs_diff_normalized"] < 1e-5 and r["one_at_a_time_sampled"] is None
        assert r["one_at_a_time_s"] > 0 and r["batched_s"] > 0
    assert [row[1] for row in data["rows"]].count("all") == 2  # a total row per pair
    assert data["threads"] >= 1 and "shared" in data["load"]


def test_patch_table_sample_extrapolates(tiny_llama, tmp_path):
    data = _run(tiny_llama, tmp_path, sample=4, pairs="spain", directions="noise", kinds="resid,heads")
    for r in data["results"]:
        assert r["one_at_a_time_sampled"] == 4
        assert r["one_at_a_time_s"] > r["one_at_a_time_measured_s"]  # 4 of the cells timed, the rest extrapolated
        assert r["max_abs_diff_normalized"] < 1e-5
    assert "extrapolated from 4" in data["rows"][0][4] and "extrapolated" in data["title"]


def test_patch_table_unknown_pair(tiny_llama, tmp_path):
    with pytest.raises(SystemExit, match="unknown prompt pair 'paris'"):
        _run(tiny_llama, tmp_path, pairs="paris")
