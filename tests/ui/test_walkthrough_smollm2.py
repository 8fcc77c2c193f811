"""The issue's "Done when" on the real SmolLM2-135M, in headless chromium, through the page alone (clicks and
typing: mindset.ui.walkthrough). Python looks behind the page only to check it: the saved folder loads with
the logits of the workbench's current model, and `mindset run` on the exported recipe rebuilds its tensors.
Small sizes (3 heal steps of 2x32 tokens, 256 perplexity tokens) keep it to a few minutes on 2 idle cores."""

import os

import pytest
import torch
from ui_helpers import expected_color, logits

from mindset.map.browser import severe_logs

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TOKEN = "walkthrough-token"


@pytest.fixture(scope="module")
def walked(smollm2, start_browser, tmp_path_factory):
    """The whole walk, once: (workbench, plan, what each step saw, the browser's severe log lines and page errors)."""
    from mindset.models.anatomy import blocks
    from mindset.ui import Workbench
    from mindset.ui.browser import serving
    from mindset.ui.walkthrough import Plan, Walk

    bench = Workbench(smollm2, tmp_path_factory.mktemp("walk") / "root")
    first = blocks(smollm2.model)[0].attention
    plan = Plan.for_model(len(blocks(smollm2.model)), first.n_heads // first.n_kv_heads)
    driver = start_browser(window=(1400, 1000))
    try:
        with serving(bench, TOKEN) as url:
            shots = os.environ.get("MINDSET_UI_WALK_SHOTS")  # a folder: this run also takes scripts/ui_walkthrough.py's screenshots
            walk = Walk(driver, url, plan, (lambda name: driver.save_screenshot(f"{shots}/walk-{name}.png")) if shots else None)
            walk.run()
            problems = severe_logs(driver) + driver.execute_script("return window.mindsetUi.errors")
    finally:
        driver.quit()
    print({k: round(v, 1) for k, v in walk.seconds.items()})
    return bench, plan, walk.seen, problems


def test_the_architecture_shows_every_layer_with_an_importance_overlay(walked):
    _, _, seen, problems = walked
    arch, imp = seen["architecture"], seen["importance"]
    assert arch["layers"] == list(range(30)) and arch["heads"] == [9] * 30 and arch["ffn"] == ["1536"] * 30
    assert "30 layers" in arch["totals"] and "down_proj.weight" in arch["stats"]
    assert arch["ready_ms"] < 10_000  # the goal is 1 s idle (benchmarks/ui_latency.py); a tripwire under load
    assert imp["state"] == "done" and any("mapping" in p for p in imp["progress"])
    assert set(imp["values"]) == {f"L{i}.H{h}" for i in range(30) for h in range(9)} | {f"L{i}.mlp" for i in range(30)}
    assert len(imp["head_colours"]) > 10 and len(imp["ffn_colours"]) > 3 and "nats/doc" in imp["legend"]
    assert problems == []


def test_identity_blocks_and_added_heads_keep_the_function(walked):
    _, plan, seen, _ = walked
    ident = seen["identity"]
    assert ident["inserted"]["kl"] < 1e-6 and "function unchanged" in ident["inserted"]["said"]
    assert ident["inserted"]["layers"] == list(range(32))
    assert ident["kl"] < 1e-6 and "function unchanged" in ident["said"]
    assert (ident["heads_before"], ident["heads_after"]) == (9, 9 + plan.heads)
    assert ident["top5"].count('" Paris"') == 2  # the top next token of both sides


def test_a_noisy_widening_moves_the_perplexity(walked):
    _, plan, seen, _ = walked
    widen = seen["widen"]
    assert widen["width_after"] == widen["width_before"] + plan.widen_add
    assert widen["kl"] > 1e-4 and "function changed" in widen["said"]
    assert abs(widen["ppl_current"] - widen["ppl_original"]) > 1e-3


def test_heal_shows_progress_and_lands_as_an_undoable_step(walked):
    bench, plan, seen, _ = walked
    heal = seen["heal"]
    assert heal["state"] == "done" and f"step {plan.heal_steps}/{plan.heal_steps}" in heal["status"]
    assert any("running" in p for p in heal["progress"]) and heal["chart"]
    inserted = {f"L{plan.insert_after + 1}", f"L{plan.insert_after + 2}"}
    assert inserted | {f"L{plan.head_layer}", f"L{plan.widen_layer}"} == set(heal["trainable"].split(","))  # what the edits added
    # the heal changed the model and the page measured it; 3 steps are too few to lower SmolLM2's probe KL (through the
    # API: 0.0290 -> 0.0304 at beta 0, lr 1e-4; 0.029 -> 0.29 at beta 0.5, lr 1e-3), so only the change is asserted
    assert heal["kl_after"] != heal["kl_before"]
    assert heal["history"][-1] == ("distill", "applied") and heal["after_undo"][-1] == ("distill", "undone")
    assert heal["kl_undone"] == heal["kl_before"] and heal["after_redo"][-1] == ("distill", "applied") and heal["kl_redone"] == heal["kl_after"]
    assert [s["op"] for s in bench.history()["steps"]][:4] == ["insert_layers", "add_heads", "widen_ffn", "distill"]


def test_chat_streams_coloured_tokens_from_original_and_edited_side_by_side(walked):
    _, _, seen, _ = walked
    chat = seen["chat"]
    assert chat["state"] == "done" and chat["tokens"]["original"] >= 1 and chat["tokens"]["current"] >= 1
    for name, shown in chat["panes"].items():
        assert len(shown) == chat["tokens"][name]
        for t in shown:
            rgb = tuple(int(v) for v in t["color"].removeprefix("rgb(").rstrip(")").split(","))
            assert max(abs(a - b) for a, b in zip(rgb, expected_color(t["lp"]))) <= 2, t
    assert "current" in chat["hover"] and chat["alternatives"] == 5


def test_a_layer_turned_into_memory_lists_its_entries(walked):
    bench, plan, seen, _ = walked
    mem = seen["memory"]
    store = bench.current.model.get_submodule(f"model.layers.{plan.memory_layer}.mlp").store
    total = store.stats()["entries"]
    assert "associative" in mem["stores"] and f"{total} entries" in mem["pager"] and total > 30
    assert mem["first_page"] == list(range(15)) and mem["second_page"] == list(range(15, 30))
    from mindset.ui.walkthrough import MEMORY_TEXT

    assert mem["sources"][0] and all(s in MEMORY_TEXT for s in mem["sources"])
    assert mem["hits_sorted"] == sorted(mem["hits_sorted"], reverse=True) and "nearest" in mem["found"]
    assert [op for op, _ in mem["history"]][-2:] == ["ffn_to_memory", "memorize"]


def test_the_saved_folder_loads_with_the_current_logits(walked):
    from mindset.models import load

    bench, plan, seen, _ = walked
    assert plan.save_out in seen["save"]["said"]
    again = load(bench.root / plan.save_out, device="cpu", dtype="float32")
    torch.testing.assert_close(logits(again), logits(bench.current), atol=1e-5, rtol=0)


def test_mindset_run_on_the_exported_recipe_rebuilds_the_tensors(walked, cli, tmp_path):
    from mindset.models import load

    bench, _, seen, _ = walked
    text = seen["recipe"]["recipe"]
    assert seen["recipe"]["download"] == "ui-edits.yaml" and seen["recipe"]["href"].startswith("blob:")
    assert text == bench.recipe()  # what the page shows is what the workbench exports
    path = tmp_path / "ui-edits.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = cli("run", str(path), "-o", str(tmp_path / "rebuilt"))
    assert code == 0, err
    rebuilt = load(tmp_path / "rebuilt" / "model", device="cpu", dtype="float32")
    ours, theirs = bench.current.model.state_dict(), rebuilt.model.state_dict()
    assert sorted(ours) == sorted(theirs)
    for name, tensor in ours.items():
        torch.testing.assert_close(theirs[name], tensor, atol=1e-5, rtol=0, msg=name)
    torch.testing.assert_close(logits(rebuilt), logits(bench.current), atol=1e-5, rtol=0)
