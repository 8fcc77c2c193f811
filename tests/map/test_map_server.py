"""Live sampling: /api/sample generates with mindset.chat and places the answer and its path on the map."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mindset.map.build import MapSettings, build_map
from mindset.map.encode import hidden_states
from mindset.map.layout import Layout
from mindset.map.site import to_frame


@pytest.fixture
def built(tiny_llama, tmp_path, map_home, labelled_jsonl):
    out = tmp_path / "map"
    build_map(tiny_llama, out, MapSettings(data=[str(labelled_jsonl)], method="pca"), progress=False)
    return out


def test_sample_returns_the_completion_its_point_and_its_path(tiny_llama, built):
    from mindset.chat import SamplingParams, generate
    from mindset.map.server import create_map_app

    with TestClient(create_map_app(tiny_llama, built)) as client:
        health = client.get("/api/health").json()
        assert health["live"] and health["model"] == "tiny-llama" and health["layer"] == 2
        assert "regl-scatterplot" in client.get("/vendor/regl-scatterplot.js").text[:200]
        assert client.get("/").text.startswith("<!doctype html>")
        reply = client.post("/api/sample", json={"prompt": "apples are", "max_new_tokens": 8}).json()
    expected = generate(tiny_llama, "apples are", SamplingParams(max_new_tokens=8), chat=False)
    assert reply["completion"] == expected.text and reply["tokens"] == len([t for t in expected.tokens if t not in expected.stop_ids])
    assert len(reply["path"]) == reply["tokens"] + 1  # the prompt's last token, then one state per new token
    assert reply["path"][-1] == [round(reply["x"], 5), round(reply["y"], 5)]
    # the point is the map's own projection of the prompt + completion's last-token state
    ids = list(tiny_llama.tokenizer("apples are")["input_ids"]) + [t for t in expected.tokens if t not in expected.stop_ids]
    state, _ = hidden_states(tiny_llama.model, [ids], 2)
    layout = Layout.load(built)
    np.testing.assert_allclose([reply["x"], reply["y"]], to_frame(layout.project(state), layout.settings["frame"])[0], atol=1e-4)


@pytest.mark.parametrize(
    "body",
    [{"prompt": ""}, {"prompt": "x", "max_new_tokens": 0}, {"prompt": "x", "temperature": -1}, {"prompt": "x", "colour": "red"}, {}],
)
def test_bad_requests_are_refused(tiny_llama, built, body):
    from mindset.map.server import create_map_app

    with TestClient(create_map_app(tiny_llama, built)) as client:
        assert client.post("/api/sample", json=body).status_code == 422


def test_a_prompt_longer_than_the_context_is_a_400(tiny_llama, built):
    from mindset.map.server import create_map_app

    with TestClient(create_map_app(tiny_llama, built)) as client:
        reply = client.post("/api/sample", json={"prompt": "x" * 4000})
    assert reply.status_code == 400 and "reads at most 256 tokens" in reply.json()["error"]
