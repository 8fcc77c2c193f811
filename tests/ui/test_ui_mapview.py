"""The map view and the canary deltas over the API on tiny-llama: a map job of the current model against the
original streams its progress, finishes and its page is served behind the token from --root/maps only; cancel
stops it; canary suite deltas are 0 for an edit that keeps the function and not for one that changes it."""

import json

import pytest
from test_ui_jobs import events, wait_for_state
from ui_helpers import TOKEN, client_for

SMALL_MAP = {"data": ["capitals"], "limit": 6, "paths": 2, "method": "pca", "use_cache": False}


def test_a_map_job_of_current_against_original_finishes_and_its_page_is_served(api, bench):
    api.post("/api/edits", json={"op": "widen_ffn", "params": {"add": 32, "init": "split", "noise": 1.0}, "measure": False})
    job = api.post("/api/maps", json={"params": {**SMALL_MAP, "name": "edited"}})
    assert job.status_code == 200, job.text
    seen = events(api, job.json()["id"])
    progress = [e for e in seen if e["type"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, len(progress) + 1)) and progress[-1]["message"].startswith("layout")
    assert seen[-1] == {**seen[-1], "type": "state", "state": "done"}
    done = api.get(f"/api/jobs/{job.json()['id']}").json()
    assert done["state"] == "done", done["error"]
    result = done["result"]
    assert result["url"] == "api/maps/edited/index.html" and result["points"] == 12 and result["items"] == 6
    folder = bench.root / "maps" / "edited"
    summary = json.loads((folder / "map.json").read_text())
    assert summary["models"] == ["tiny-llama (original)", "tiny-llama (current, v1)"] and (folder / "compare.md").exists()
    page = api.get("/" + result["url"])
    assert page.status_code == 200 and "mindset map" in page.text
    data = api.get("/api/maps/edited/data.js")
    assert data.status_code == 200 and "tiny-llama (current, v1)" in data.text and data.text.startswith("window.MINDSET_MAP")
    assert [m["name"] for m in api.get("/api/maps").json()] == ["edited"]
    assert bench.history()["cursor"] == 1  # the map changed nothing
    assert client_for(bench, TOKEN, auth=False).get("/" + result["url"]).status_code == 403


def test_the_map_job_is_also_a_kind_of_post_api_jobs(api):
    job = api.post("/api/jobs", json={"kind": "map", "params": {**SMALL_MAP, "name": "via-jobs"}}).json()
    assert wait_for_state(api, job["id"], 300)["state"] == "done"
    assert api.get("/api/maps/via-jobs/index.html").status_code == 200


def test_cancel_stops_a_map_job(api, bench):
    job = api.post("/api/maps", json={"params": {"data": ["capitals", "canaries"], "limit": 20, "paths": 0, "use_cache": False, "name": "cancelled"}}).json()
    api.post(f"/api/jobs/{job['id']}/cancel", json={})
    done = wait_for_state(api, job["id"], 300)
    assert done["state"] == "cancelled" and not (bench.root / "maps" / "cancelled" / "map.json").exists()


@pytest.mark.parametrize("path", ["/api/maps/..%2F..%2Fsecret/x", "/api/maps/x/..%2F..%2F..%2Fetc%2Fpasswd", "/api/maps/..%2Fsecret/x", "/api/maps/x/..%2F..%2Fsecret%2Fx"])
def test_map_files_outside_root_maps_are_refused(api, bench, path):
    (bench.root / "secret").mkdir()
    (bench.root / "secret" / "x").write_text("not a map")
    answer = api.get(path)
    assert answer.status_code == 400 and "not inside" in answer.json()["error"]


def test_a_missing_map_file_is_404(api):
    assert api.get("/api/maps/none/index.html").status_code == 404


@pytest.mark.parametrize("params, words", [({"name": "../up"}, "name"), ({"limit": 0}, "limit"), ({"colour": "red"}, "colour")])
def test_bad_map_parameters_are_400_sentences(api, params, words):
    answer = api.post("/api/maps", json={"params": params})
    assert answer.status_code == 400 and words in answer.json()["error"]


def test_an_unknown_suite_fails_the_job_with_a_sentence(api):
    job = api.post("/api/maps", json={"params": {**SMALL_MAP, "data": ["no_such_suite"]}}).json()
    done = wait_for_state(api, job["id"], 120)
    assert done["state"] == "failed" and "no_such_suite" in done["error"] and "Traceback" not in done["error"]


# --- canary deltas -----------------------------------------------------------------------------------------

CANARIES = {"perplexity": False, "canaries": ["modus_ponens", "negation"], "canary_limit": 3}


def canaries(api):
    answer = api.post("/api/measure", json=CANARIES)
    assert answer.status_code == 200, answer.text
    return answer.json()["canaries"]


def test_canary_deltas_are_zero_for_an_edit_that_keeps_the_function(api):
    api.post("/api/edits", json={"op": "add_heads", "params": {"layers": [0], "n": 2}, "measure": False})
    body = canaries(api)
    assert [s["task"] for s in body["suites"]] == ["modus_ponens", "negation"] and body["limit"] == 3
    for suite in body["suites"]:
        assert suite["docs"] == 3 and suite["delta"]["accuracy"] == 0
        assert abs(suite["delta"]["logprob"]) < 1e-4, suite
        assert suite["original"]["logprob"] < 0


def test_canary_deltas_move_for_an_edit_that_changes_the_function(api):
    api.post("/api/edits", json={"op": "widen_ffn", "params": {"add": 64, "init": "split", "noise": 1.0}, "measure": False})
    body = canaries(api)
    assert max(abs(s["delta"]["logprob"]) for s in body["suites"]) > 1e-3
    assert body["mean_delta"]["logprob"] == pytest.approx(sum(s["delta"]["logprob"] for s in body["suites"]) / 2)


def test_the_canaries_group_names_all_six_suites(api):
    from mindset.ui.canaries import canary_names

    assert canary_names(["canaries"]) == ["modus_ponens", "syllogisms", "negation", "copying", "counting", "ordering"]
    assert canary_names(["negation", "canaries"])[0] == "negation"


@pytest.mark.parametrize("extra, status, words", [
    ({"canaries": ["nonsense"]}, 400, "nonsense"),
    ({"canaries": ["negation"], "canary_limit": 0}, 422, ""),
])  # fmt: skip
def test_bad_canary_requests(api, extra, status, words):
    answer = api.post("/api/measure", json={"perplexity": False, **extra})
    assert answer.status_code == status and words in answer.text


def test_measure_without_canaries_scores_none(api):
    body = api.post("/api/measure", json={"perplexity": False}).json()
    assert "canaries" not in body and body["kl"]["mean"] < 1e-9
