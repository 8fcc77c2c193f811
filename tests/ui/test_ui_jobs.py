"""Background jobs over the API on tiny-llama: a heal streams its loss and becomes one undoable step; cancel and
failure leave the model; an importance map and the cheap overlays (gates, weight change) paint the layers."""

import json
import time

import pytest
import torch
from ui_helpers import logits

from mindset.errors import MindsetError

HEAL = {"steps": 3, "batch_size": 2, "seq_len": 32, "lr": 0.001, "warmup_steps": 1, "trainable": ["L1.attn"]}


def events(api, job_id: str) -> list[dict]:
    """Every event of the job, read from its server-sent event stream (which ends when the job does)."""
    with api.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def wait_for_state(api, job_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get(f"/api/jobs/{job_id}").json()
        if job["state"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_a_heal_job_streams_its_loss_and_becomes_one_undoable_step(api, bench):
    api.post("/api/edits", json={"op": "widen_ffn", "params": {"add": 32, "init": "split", "noise": 2.0}, "measure": False})
    widened = bench.current
    job = api.post("/api/jobs", json={"kind": "heal", "params": HEAL}).json()
    seen = events(api, job["id"])
    progress = [e for e in seen if e["type"] == "progress"]
    assert [e["step"] for e in progress][-1] == 3 and all(e["total"] == 3 and e["loss"] > 0 for e in progress)
    assert seen[-1] == {**seen[-1], "type": "state", "state": "done"}
    assert [s["op"] for s in api.get("/api/history").json()["steps"]] == ["widen_ffn", "distill"]
    assert not torch.allclose(logits(bench.current), logits(widened))
    change = api.get("/api/overlays").json()["weight_change"]
    assert change["modules"]["L1.attn"] > 0 and change["modules"]["L0.attn"] == 0 and "L0.mlp" in change["reshaped"]
    api.post("/api/undo", json={"measure": False})
    assert bench.current is widened
    assert api.get("/api/jobs").json()[0]["state"] == "done"


def test_cancel_stops_a_heal_and_leaves_the_model(api, bench):
    before = bench.current
    job = api.post("/api/jobs", json={"kind": "heal", "params": {**HEAL, "steps": 500}}).json()
    deadline = time.time() + 120
    while not (api.get(f"/api/jobs/{job['id']}").json()["progress"] or {}).get("step") and time.time() < deadline:
        time.sleep(0.1)
    assert api.post(f"/api/jobs/{job['id']}/cancel", json={}).status_code == 200
    done = wait_for_state(api, job["id"])
    assert done["state"] == "cancelled" and done["progress"]["step"] < 500
    assert bench.current is before and api.get("/api/history").json()["steps"] == []


def test_a_failed_heal_says_why_and_leaves_the_model(api, bench):
    job = api.post("/api/jobs", json={"kind": "heal", "params": {**HEAL, "trainable": ["no_such_module*"]}}).json()
    done = wait_for_state(api, job["id"])
    assert done["state"] == "failed" and "no_such_module" in done["error"]
    assert bench.current is bench.original and bench.history()["steps"] == []


def test_job_requests_with_bad_values_are_400_sentences(api):
    assert "steps" in api.post("/api/jobs", json={"kind": "heal", "params": {"steps": 0}}).json()["error"]
    assert "granularity" in api.post("/api/jobs", json={"kind": "importance", "params": {"granularity": ["neuron"]}}).json()["error"]
    assert api.post("/api/jobs", json={"kind": "sleep"}).status_code == 422
    answer = api.get("/api/jobs/nope")
    assert answer.status_code == 400 and "GET /api/jobs" in answer.json()["error"]


def test_a_result_computed_on_a_model_that_changed_meanwhile_is_refused(bench):
    from mindset.ui import ops

    base = bench.current
    parsed = ops.parse_params("add_heads", {"layers": [0], "n": 2})
    applied = ops.apply_op(base, "add_heads", parsed)
    bench.apply("insert_layers", {"after": 0, "n": 1})
    with pytest.raises(MindsetError, match="changed while"):
        bench.commit(base, "add_heads", parsed, applied)
    assert [s.op for s in bench.applied()] == ["insert_layers"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # a random tiny model is at chance on any suite
def test_an_importance_job_maps_every_head_and_ffn_without_touching_the_model(api, bench):
    before = logits(bench.current)
    job = api.post("/api/jobs", json={"kind": "importance", "params": {"limit": 4, "layers_per_pass": 1}}).json()
    seen = events(api, job["id"])
    assert [e["layers"] for e in seen if e["type"] == "progress"] == [[0], [1]]
    result = wait_for_state(api, job["id"])["result"]
    assert set(result["scores"]) == {f"L{i}.H{h}" for i in (0, 1) for h in range(4)} | {"L0.mlp", "L1.mlp"}
    assert any(v != 0 for v in result["scores"].values())
    overlay = api.get("/api/overlays").json()
    assert overlay["importance"]["scores"] == result["scores"]
    torch.testing.assert_close(logits(bench.current), before)  # no hook left behind
    api.post("/api/edits", json={"op": "head_gates", "params": {}, "measure": False})
    overlay = api.get("/api/overlays").json()
    assert overlay["importance"] is None and overlay["importance_stale"]["scores"] == result["scores"]
    assert overlay["gates"] == {f"L{i}.H{h}": 1.0 for i in (0, 1) for h in range(4)}
    assert api.get("/api/model").json()["overlays"] == ["importance", "weight_change", "gates"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # a random tiny model is at chance on any suite
@pytest.mark.parametrize("estimate", ["attribution", "exact"])
def test_the_importance_job_scores_the_baseline_once_and_maps_as_pass_by_pass_calls_did(api, bench, monkeypatch, estimate):
    """The job's result against circuits.importance called per pass on its own (each scoring its own baseline,
    as the job did before): the same numbers, with one baseline scoring instead of one per pass."""
    import sys

    from mindset.circuits.importance import importance
    from mindset.models.names import list_components

    expected = {}
    for layer in (0, 1):
        names = [c.name for g in ("head", "mlp") for c in list_components(bench.current.model, g) if c.layer == layer]
        result = importance(bench.current, "capitals", components=names, limit=4, estimate=estimate)
        expected.update({s.name: s.drop_logprob for s in result.scores})
    calls = []
    for module in (sys.modules["mindset.circuits.importance"], sys.modules["mindset.circuits.suite"]):  # the package's `importance` is the function
        monkeypatch.setattr(module, "score_suite", lambda *a, real=module.score_suite, **k: calls.append(1) or real(*a, **k))
    job = api.post("/api/jobs", json={"kind": "importance", "params": {"limit": 4, "layers_per_pass": 1, "estimate": estimate}}).json()
    done = wait_for_state(api, job["id"])
    assert done["state"] == "done", done["error"]
    got = done["result"]
    assert len(calls) == 1 and got["scores"] == expected
    assert got["baseline"] == {"logprob": result.baseline_logprob, "accuracy": result.baseline_accuracy, "at_chance": result.at_chance}
