"""The map on the real SmolLM2-135M: suite items with its own answers, live samples landing on known items,
and two checkpoints (the model and a copy with its last MLP switched off) compared in one layout."""

import copy

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from map_helpers import read_page_data, write_jsonl

from mindset.map.build import MapSettings, build_map

pytestmark = pytest.mark.slow


def test_suite_map_with_answers_correctness_and_paths(smollm2, tmp_path, map_home):
    out = tmp_path / "map"
    summary = build_map(smollm2, out, MapSettings(data=["capitals", "copying"], limit=6, paths=3), progress=False)
    assert summary["points"] == 12 and summary["layer"] == 30 and summary["paths"] == 3
    page = read_page_data(out)
    task, correct = page["labels"]["task"], page["labels"]["correct"]
    right_capitals = sum(task["values"][t] == "capitals" and correct["values"][c] == "yes" for t, c in zip(task["codes"], correct["codes"]))
    assert right_capitals >= 5  # SmolLM2 knows capitals (0.975 in the README's evaluation)
    capital = page["completion"][page["prompt"].index(next(p for p in page["prompt"] if "capital of" in p))]
    assert capital.startswith(" ") and capital.strip()[0].isupper()
    for point, path in page["paths"].items():
        np.testing.assert_allclose(path[-1], [page["x"][int(point)], page["y"][int(point)]], atol=1e-4)


def test_a_live_sample_of_a_mapped_prompt_lands_on_its_point(smollm2, tmp_path, map_home):
    from mindset.chat import SamplingParams, generate
    from mindset.map.server import create_map_app

    prompts = ["The capital of France is", "Two plus two equals", "The colour of the sky is", "Water boils at"]
    rows = [{"prompt": p, "completion": generate(smollm2, p, SamplingParams(max_new_tokens=8), chat=False).text} for p in prompts]
    out = tmp_path / "m"
    build_map(smollm2, out, MapSettings(data=[str(write_jsonl(tmp_path / "g.jsonl", rows))], method="pca"), progress=False)
    page = read_page_data(out)
    with TestClient(create_map_app(smollm2, out)) as client:
        reply = client.post("/api/sample", json={"prompt": prompts[1], "max_new_tokens": 8}).json()
    assert reply["completion"] == rows[1]["completion"]
    np.testing.assert_allclose([reply["x"], reply["y"]], [page["x"][1], page["y"][1]], atol=1e-3)


def test_compare_with_a_copy_whose_last_mlp_is_off(smollm2, tmp_path, map_home):
    from mindset.models import LoadedModel

    model = copy.deepcopy(smollm2.model)
    with torch.no_grad():
        model.model.layers[-1].mlp.down_proj.weight.zero_()
    other = LoadedModel(model, smollm2.tokenizer, copy.copy(smollm2.source))
    other.source.spec = "smollm2-135m-no-last-mlp"
    out = tmp_path / "cmp"
    summary = build_map(smollm2, out, MapSettings(data=["capitals"], limit=8), compare=other, progress=False)
    assert summary["points"] == 16 and summary["fingerprints"][0] != summary["fingerprints"][1]
    page = read_page_data(out)
    assert len(page["pairs"]) == 8 and all(m["cosine"] > 1e-4 for m in page["moved"])
    assert "Items that moved most" in (out / "compare.md").read_text()
