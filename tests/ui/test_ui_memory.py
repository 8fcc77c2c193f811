"""The memory view's API on tiny-llama with an associative layer: stores with fill and counters, paged and
sorted entries with the text they were written from, search by text, and memorize / forget as undoable edits
that the recipe replays."""

import pytest
import torch
import yaml

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want of a wife."


@pytest.fixture
def converted(api):
    answer = api.post("/api/edits", json={"op": "ffn_to_memory", "params": {"layers": [1], "kind": "associative", "capacity": 64, "k": 4}, "measure": False})
    assert answer.status_code == 200, answer.text
    return api


def test_memorize_fills_the_store_and_entries_page_with_their_sources(converted, bench):
    api = converted
    (store,) = api.get("/api/memory").json()["stores"]
    assert (store["kind"], store["layer"], store["entries"], store["capacity"]) == ("associative", 1, 0, 64)
    answer = api.post("/api/edits", json={"op": "memorize", "params": {"text": TEXT, "label": "austen"}, "measure": False})
    assert answer.status_code == 200, answer.text
    (store,) = api.get("/api/memory").json()["stores"]
    assert store["entries"] > 0 and store["fill"] == store["entries"] / 64
    page = api.get("/api/memory/1/entries", params={"limit": 3, "sort": "id", "descending": False}).json()
    assert page["total"] == store["entries"] and [e["id"] for e in page["entries"]] == [0, 1, 2]
    first = page["entries"][0]
    assert first["source"] and first["source"] in TEXT and len(first["top_tokens"]) == 5 and first["age"] >= 0
    second = api.get(f"/api/memory/{store['path']}/entries", params={"offset": 3, "limit": 3, "descending": False}).json()
    assert [e["id"] for e in second["entries"]] == [3, 4, 5]
    found = api.get("/api/memory/search", params={"text": "a single man in possession", "k": 2}).json()["stores"][0]
    assert len(found["hits"]) == 2 and all(-1.0001 <= h["similarity"] <= 1.0001 for h in found["hits"])


def test_forget_is_an_undoable_edit_and_the_recipe_replays_it(converted, bench, tmp_path):
    api = converted
    api.post("/api/edits", json={"op": "memorize", "params": {"text": TEXT}, "measure": False})
    path = api.get("/api/memory").json()["stores"][0]["path"]
    total = api.get("/api/memory").json()["stores"][0]["entries"]
    answer = api.post("/api/edits", json={"op": "forget", "params": {"store": path, "ids": [0, 2]}, "measure": False})
    assert answer.status_code == 200, answer.text
    ids = [e["id"] for e in api.get("/api/memory/1/entries", params={"limit": 500}).json()["entries"]]
    assert len(ids) == total - 2 and 0 not in ids and 2 not in ids
    api.post("/api/undo", json={"measure": False})
    assert api.get("/api/memory").json()["stores"][0]["entries"] == total
    api.post("/api/redo", json={"measure": False})
    recipe = yaml.safe_load(api.get("/api/recipe").text)
    assert [next(iter(s)) for s in recipe["steps"]] == ["ffn_to_memory", "memorize", "forget"]
    from mindset.ui import Workbench

    again = Workbench(bench.original, tmp_path / "again", autosave=False)
    again.replay(bench.history_path)
    from mindset.ui.memory import stores

    assert stores(again.current)[0]["entries"] == total - 2


def test_memory_errors_are_400_sentences(converted, api):
    assert "no memory at" in api.get("/api/memory/0/entries").json()["error"]
    assert "sort" in api.get("/api/memory/1/entries", params={"sort": "colour"}).json()["error"]
    answer = api.post("/api/edits", json={"op": "forget", "params": {"store": "model.layers.1.mlp", "ids": [99]}})
    assert answer.status_code == 400 and "99" in answer.json()["error"]
    assert api.post("/api/edits", json={"op": "forget", "params": {"store": "nowhere", "ids": [1]}}).json()["error"].startswith("no memory store")
    assert "empty" in api.get("/api/memory/search", params={"text": "  "}).json()["error"]


def test_memorize_without_a_store_is_a_400_and_the_page_has_nothing_to_list(api):
    assert api.get("/api/memory").json()["stores"] == []
    answer = api.post("/api/edits", json={"op": "memorize", "params": {"text": TEXT}})
    assert answer.status_code == 400 and "no memory store" in answer.json()["error"]
    assert api.get("/api/history").json()["steps"] == []


def test_featural_slots_list_by_value_norm_with_top_tokens(api):
    api.post("/api/edits", json={"op": "ffn_to_memory", "params": {"layers": [0], "kind": "featural", "k": 8}, "measure": False})
    (store,) = api.get("/api/memory").json()["stores"]
    assert (store["kind"], store["entries"]) == ("featural", 160)
    page = api.get("/api/memory/0/entries", params={"limit": 4}).json()
    norms = [e["value_norm"] for e in page["entries"]]
    assert norms == sorted(norms, reverse=True) and len(page["entries"][0]["top_tokens"]) == 5


def test_a_recipe_ending_in_memorize_or_forget_saves_the_model_it_rebuilt(converted, bench, tmp_path):
    """The exported recipe's last step saves the model (memorize and forget take `save`), with the stores' entries."""
    from rich.console import Console
    from ui_helpers import logits

    from mindset.models import load
    from mindset.recipes.runner import run_recipe
    from mindset.ui.memory import stores

    api = converted
    api.post("/api/edits", json={"op": "memorize", "params": {"text": TEXT}, "measure": False})
    for last in ("memorize", "forget"):
        if last == "forget":
            api.post("/api/edits", json={"op": "forget", "params": {"store": "model.layers.1.mlp", "ids": [1, 3]}, "measure": False})
        text = api.get("/api/recipe").text
        assert "saves it to runs/ui-edits/model." in text.splitlines()[0]
        assert yaml.safe_load(text)["steps"][-1][last]["save"] == "model"
        path = tmp_path / f"{last}.yaml"
        path.write_text(text)
        run = run_recipe(path, runs_dir=tmp_path / last, console=Console(quiet=True), progress=False)
        rebuilt = load(run.run_dir / "model", device="cpu", dtype="float32")
        assert stores(rebuilt)[0]["entries"] == stores(bench.current)[0]["entries"] > 0
        assert run.metrics[last]["saved"] == str(run.run_dir / "model")
        torch.testing.assert_close(logits(rebuilt), logits(bench.current), atol=1e-5, rtol=0)
