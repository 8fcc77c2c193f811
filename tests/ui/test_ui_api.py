"""The workbench HTTP API on tiny-llama, as a script or the page uses it."""

import pytest
import torch
import yaml
from ui_helpers import TOKEN, client_for, logits


def test_model_lists_every_layer_with_heads_ffn_and_modules(api, tiny_llama):
    body = api.get("/api/model").json()
    assert [layer["index"] for layer in body["layers"]] == [0, 1]
    first = body["layers"][0]
    assert (first["heads"], first["kv_heads"], first["d_ff"]) == (4, 2, 160)
    assert {m["kind"] for m in first["modules"]} >= {"attention", "ffn", "norm"}
    assert body["params"] == sum(p.numel() for p in tiny_llama.model.parameters())
    assert body["dtype"] == "float32" and body["overlays"] == ["importance", "weight_change"]


def test_add_a_head_keeps_the_function_and_undo_restores(api):
    answer = api.post("/api/edits", json={"op": "add_heads", "params": {"layers": [1], "n": 2}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["layers"][1]["heads"] == 6 and body["model"]["layers"][0]["heads"] == 4
    assert body["measurement"]["kl"]["mean"] < 1e-6
    top = body["measurement"]["next_token"]
    assert [t["id"] for t in top["original"]] == [t["id"] for t in top["current"]] and len(top["current"]) == 5
    assert api.get("/api/model").json()["layers"][1]["heads"] == 6
    undone = api.post("/api/undo", json={}).json()
    assert undone["model"]["layers"][1]["heads"] == 4 and undone["history"]["can_redo"]
    redone = api.post("/api/redo", json={}).json()
    assert redone["model"]["layers"][1]["heads"] == 6
    assert [s["op"] for s in api.get("/api/history").json()["steps"]] == ["add_heads"]


def test_widen_with_noisy_split_init_changes_the_logits_and_perplexity(api, bench, tiny_llama):
    before = api.post("/api/measure", json={"max_tokens": 128, "context": 64}).json()
    assert before["kl"]["mean"] < 1e-9 and before["perplexity"]["delta"] == 0
    body = api.post("/api/edits", json={"op": "widen_ffn", "params": {"add": 32, "init": "split", "noise": 1.0}}).json()
    assert body["model"]["layers"][0]["d_ff"] == 192
    assert body["measurement"]["kl"]["mean"] > 1e-4
    assert not torch.allclose(logits(bench.current), logits(tiny_llama), atol=1e-4)
    after = api.post("/api/measure", json={"max_tokens": 128, "context": 64}).json()
    assert after["perplexity"]["current"]["perplexity"] != after["perplexity"]["original"]["perplexity"]


def test_a_failed_edit_is_a_400_sentence_and_leaves_the_model(api):
    api.post("/api/edits", json={"op": "head_gates", "params": {}})
    version = api.get("/api/model").json()["version"]
    answer = api.post("/api/edits", json={"op": "drop_layers", "params": {"layers": [9]}})
    assert answer.status_code == 400 and "9" in answer.json()["error"]
    assert api.get("/api/model").json()["version"] == version
    assert len(api.get("/api/history").json()["steps"]) == 1


def test_unknown_op_is_a_400_listing_the_ops(api):
    answer = api.post("/api/edits", json={"op": "widen_fnn", "params": {}})
    assert answer.status_code == 400
    assert "did you mean 'widen_ffn'" in answer.json()["error"] and "ffn_to_memory" in answer.json()["error"]
    assert "add_heads" in {o["op"] for o in api.get("/api/ops").json()}


def test_no_token_is_403_everywhere_under_api(bench):
    bare = client_for(bench, auth=False)
    for path in ("/api/model", "/api/history", "/api/recipe", "/api/ops"):
        assert bare.get(path).status_code == 403
    assert bare.post("/api/edits", json={"op": "head_gates"}).status_code == 403
    assert client_for(bench, token=TOKEN).get("/api/model", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert bench.history()["steps"] == []


def test_token_in_the_url_once_then_a_cookie(bench):
    bare = client_for(bench, auth=False)
    assert bare.get(f"/?token={TOKEN}").status_code == 200
    assert bare.cookies.get("mindset_ui_token_80") == TOKEN  # per port: two workbenches on one host keep their own
    assert bare.get("/api/model").status_code == 200  # the cookie carries it now


def test_changes_need_post_with_json(api):
    assert api.post("/api/undo", content="op=x", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert api.get("/api/edits").status_code == 405
    assert api.delete("/api/history").status_code == 405


def test_save_refuses_traversal_and_writes_a_folder_that_loads_with_the_same_logits(api, bench):
    from mindset.models import load

    api.post("/api/edits", json={"op": "widen_ffn", "params": {"add": 8, "init": "random", "seed": 1}})
    for bad in ("../outside", "/etc/x", "ok/../../x"):
        answer = api.post("/api/save", json={"out": bad})
        assert answer.status_code == 400 and "--root" in answer.json()["error"], bad
    saved = api.post("/api/save", json={"out": "edited"}).json()
    assert saved["relative"] == "edited"
    again = load(saved["path"], device="cpu", dtype="float32")
    torch.testing.assert_close(logits(again), logits(bench.current), atol=1e-5, rtol=0)


def test_save_gguf_under_root(api, bench):
    saved = api.post("/api/save", json={"out": "model", "format": "gguf"}).json()
    assert saved["relative"] == "model.gguf" and (bench.root / "model.gguf").stat().st_size > 1000


def test_recipe_rebuilds_the_current_model(api, bench, tmp_path):
    from rich.console import Console

    from mindset.models import load
    from mindset.recipes.runner import run_recipe

    api.post("/api/edits", json={"op": "insert_layers", "params": {"after": 1, "n": 2}})
    api.post("/api/edits", json={"op": "add_heads", "params": {"layers": [0], "n": 2, "init": "random"}})
    text = api.get("/api/recipe").text
    assert [next(iter(s)) for s in yaml.safe_load(text)["steps"]] == ["insert_layers", "add_heads"]
    path = tmp_path / "r.yaml"
    path.write_text(text)
    run = run_recipe(path, runs_dir=tmp_path / "runs", console=Console(quiet=True), progress=False)
    rebuilt = load(run.run_dir / "model", device="cpu", dtype="float32")
    torch.testing.assert_close(logits(rebuilt), logits(bench.current), atol=1e-5, rtol=0)


def test_openapi_documents_the_api(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/model", "/api/edits", "/api/undo", "/api/redo", "/api/history", "/api/recipe", "/api/save", "/api/measure"} <= set(paths)
    assert api.get("/docs").status_code == 200
    jobs = {"/api/jobs", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/cancel", "/api/overlays", "/api/memory", "/api/memory/{path}/entries", "/api/memory/search"}
    assert jobs <= set(paths)


@pytest.mark.parametrize("body", [{"op": "head_gates", "params": {}, "extra": 1}, {"params": {}}, {"op": "widen_ffn", "params": {"add": -1}}])
def test_malformed_edit_requests_are_4xx(api, body):
    assert 400 <= api.post("/api/edits", json=body).status_code < 500


def test_custom_modules_are_marked_in_the_architecture(api):
    body = api.post("/api/edits", json={"op": "ffn_to_memory", "params": {"layers": [1], "k": 8}}).json()
    layer = body["model"]["layers"][1]
    assert layer["custom"] == ["FeaturalMemory"] and body["model"]["layers"][0]["custom"] == []
    memory = [m for m in layer["modules"] if m["custom"]]
    assert [m["kind"] for m in memory] == ["featural_memory"] and memory[0]["params"] > 0
    gated = api.post("/api/edits", json={"op": "head_gates", "params": {"layers": [0]}}).json()["model"]
    assert [m["kind"] for m in gated["layers"][0]["modules"] if m["custom"]] == ["head_gates"]
    fed = api.post("/api/edits", json={"op": "layerwise_feedback", "params": {"pairs": "0:1"}}).json()["model"]
    found = [m["kind"] for m in fed["custom_modules"]] + [m["kind"] for layer in fed["layers"] for m in layer["modules"] if m["custom"]]
    assert "layerwise_feedback" in found


def test_preview_reports_the_change_without_applying_it(api):
    identity = api.post("/api/preview", json={"op": "insert_layers", "params": {"after": 0}}).json()
    before, after = identity["parameters"]
    assert after - before == 43136 and identity["bytes_delta"] == 4 * 43136  # one tiny-llama block, float32
    assert identity["preserved"] is True
    copied = api.post("/api/preview", json={"op": "insert_layers", "params": {"after": 0, "init": "copy"}}).json()
    assert copied["preserved"] is False and copied["measurement"]["kl"]["mean"] > 0
    assert api.get("/api/history").json()["steps"] == [] and len(api.get("/api/model").json()["layers"]) == 2


def test_module_details_give_shapes_and_weight_statistics(api, tiny_llama):
    body = api.get("/api/module", params={"path": "model.layers.0.mlp"}).json()
    down = next(t for t in body["tensors"] if t["name"] == "down_proj.weight")
    weight = tiny_llama.model.model.layers[0].mlp.down_proj.weight.detach().double()
    assert down["shape"] == [64, 160] and abs(down["std"] - float(weight.std())) < 1e-9 and abs(down["norm"] - float(weight.norm())) < 1e-9
    answer = api.get("/api/module", params={"path": "model.layers.9"})
    assert answer.status_code == 400 and "GET /api/model" in answer.json()["error"]


def test_bad_parameters_are_one_sentence_naming_the_value(api):
    negative = api.post("/api/edits", json={"op": "widen_ffn", "params": {"add": -1}}).json()["error"]
    assert negative.startswith("widen_ffn: add:") and "-1" in negative
    unknown = api.post("/api/edits", json={"op": "add_heads", "params": {"heads": 2}}).json()["error"]
    assert "add_heads takes layers, n, init, seed" in unknown
