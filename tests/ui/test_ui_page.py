"""The workbench page in headless Debian chromium on tiny-llama, as a person uses it: the architecture shows
every layer, adding heads through the page shows KL 0 and the new heads, undo restores them, widening with
random init changes the perplexity shown, and the folder saved from the page loads with the same logits."""

import pytest
import torch
from ui_helpers import logits

from mindset.map.browser import severe_logs, wait_for
from mindset.ui.browser import click_and_wait, edit, heads_in, layers_shown, open_page, select_ffn, select_layer, wait_idle

pytestmark = pytest.mark.browser






def test_the_architecture_shows_every_layer_offline_without_errors(browser, page, bench, tmp_path):
    bench.apply("insert_layers", {"after": 0, "n": 2})  # 4 layers now: the page draws what the API says
    ready_ms = open_page(browser, page)
    assert ready_ms < 5000  # 1 s is the goal on an idle machine (benchmarks/ui_latency.py); this is a tripwire under load
    assert layers_shown(browser) == [0, 1, 2, 3]
    assert [heads_in(browser, i) for i in range(4)] == [4, 4, 4, 4]
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetUi.errors") == []
    origin = page.split("/?")[0]
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(origin) for r in resources)  # nothing from the network
    assert "token=" not in browser.current_url  # the cookie holds it now
    select_layer(browser, 2)
    assert "L2" in browser.find_element("id", "details").text and "self_attn" in browser.find_element("id", "details").text
    select_ffn(browser, 2)
    stats = wait_for(browser, "const t = document.getElementById('stats'); return t && t.textContent", 30)
    assert "down_proj.weight" in stats and "64×160" in stats
    browser.save_screenshot(str(tmp_path / "architecture.png"))


def test_without_the_token_the_page_says_so(browser, page):
    browser.delete_all_cookies()
    browser.get(page.split("?")[0])
    text = wait_for(browser, "const p = document.querySelector('.loading'); return p && p.textContent.includes('token') && p.textContent")
    assert "token" in text


def test_add_heads_through_the_page_shows_kl_zero_and_undo_restores(browser, page, bench):
    open_page(browser, page)
    select_layer(browser, 1)
    edit(browser, "add_heads", {"layers": "1", "n": "2"})
    assert heads_in(browser, 1) == 6 and heads_in(browser, 0) == 4
    assert float(browser.find_element("id", "kl-value").text) < 1e-6
    assert "function unchanged" in browser.find_element("id", "measurement").text
    assert bench.history()["cursor"] == 1
    click_and_wait(browser, "undo")
    assert heads_in(browser, 1) == 4 and bench.current is bench.original
    click_and_wait(browser, "redo")
    assert heads_in(browser, 1) == 6


def test_widen_with_noisy_split_init_changes_the_perplexity_shown(browser, page):
    open_page(browser, page)
    select_ffn(browser, 0)
    edit(browser, "widen_ffn", {"add": "64", "init": "split", "noise": "1.0"})
    assert "function changed" in browser.find_element("id", "measurement").text
    browser.find_element("id", "measure").click()
    wait_for(browser, "return document.getElementById('ppl-current')", 120)
    wait_idle(browser)
    text = browser.find_element("id", "ppl").text
    original, current = (float(b.text) for b in browser.find_element("id", "ppl").find_elements("tag name", "b"))
    assert original != current, text


def test_a_failed_edit_shows_the_sentence_and_changes_nothing(browser, page, bench):
    open_page(browser, page)
    select_layer(browser, 0)
    edit(browser, "drop_layers", {"layers": "7"}, fails=True)
    assert "7" in browser.find_element("id", "error").text
    assert layers_shown(browser) == [0, 1] and bench.history()["steps"] == []


def test_the_folder_saved_from_the_page_loads_with_the_current_logits(browser, page, bench):
    from mindset.models import load

    open_page(browser, page)
    select_ffn(browser, 1)
    edit(browser, "widen_ffn", {"add": "16", "init": "random", "seed": "4"})
    browser.find_element("id", "save-out").clear()
    browser.find_element("id", "save-out").send_keys("from-page")
    browser.find_element("id", "save").click()
    wait_for(browser, "return document.getElementById('saved')", 60)
    again = load(bench.root / "from-page", device="cpu", dtype="float32")
    torch.testing.assert_close(logits(again), logits(bench.current), atol=1e-5, rtol=0)
    browser.find_element("id", "show-recipe").click()
    recipe = wait_for(browser, "const r = document.getElementById('recipe'); return r && r.textContent")
    assert "widen_ffn" in recipe and "seed: 4" in recipe


def test_preview_shows_the_parameter_change_and_applies_nothing(browser, page, bench):
    open_page(browser, page)
    select_layer(browser, 0)
    browser.find_element("id", "tab-edit").click()
    browser.find_element("css selector", "button[data-op='insert_layers']").click()
    browser.find_element("id", "preview").click()
    text = wait_for(browser, "const p = document.getElementById('preview-result'); return p && p.textContent", 60)
    assert "keep the function" in text and "+43,136" in text
    assert layers_shown(browser) == [0, 1] and bench.history()["steps"] == []


def test_heal_through_the_page_lowers_the_kl_as_one_more_undoable_step(browser, page, bench):
    open_page(browser, page)
    select_ffn(browser, 0)
    edit(browser, "widen_ffn", {"add": "32", "init": "split", "noise": "2.0"})
    broken = float(browser.find_element("id", "kl-value").text)
    browser.find_element("id", "whole-model").click()
    edit(browser, "distill", {"steps": "6", "batch_size": "2", "seq_len": "32", "lr": "0.001", "warmup_steps": "1", "trainable": "L0.mlp"}, timeout=300)
    assert float(browser.find_element("id", "kl-value").text) < broken
    assert [s["op"] for s in bench.history()["steps"]] == ["widen_ffn", "distill"]
    assert bench.history()["steps"][1]["params"]["trainable"] == ["L0.mlp"]
