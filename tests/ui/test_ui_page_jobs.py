"""Jobs and overlays through the page in headless chromium on tiny-llama: a heal job draws its loss live and
lands as one undoable step, cancel stops one and changes nothing, and the importance, gate and weight-change
overlays colour the head cells and FFN bars."""

import pytest

from mindset.map.browser import severe_logs, wait_for
from mindset.ui.browser import edit, open_page, select_ffn, select_layer, show_overlay, start_heal, wait_job

pytestmark = pytest.mark.browser
BROWSER_WINDOW = (1400, 1000)






def chart_points(driver) -> int:
    return driver.execute_script("return document.querySelectorAll('#loss-chart canvas').length")


def test_a_heal_job_draws_its_loss_and_lands_as_one_undoable_step(browser, page, bench):
    open_page(browser, page)
    select_ffn(browser, 0)
    edit(browser, "widen_ffn", {"add": "32", "init": "split", "noise": "2.0"})
    start_heal(browser, {"steps": "4", "batch_size": "2", "seq_len": "32", "valid_every": "2"})
    assert wait_job(browser) == "done"
    status = browser.find_element("id", "heal-status").text
    assert "done" in status and "step 4/4" in status and "valid ppl" in status
    assert chart_points(browser) == 1  # uPlot drew its canvas
    assert [s["op"] for s in bench.history()["steps"]] == ["widen_ffn", "distill"]
    assert bench.history()["steps"][1]["params"]["trainable"] == ["L0"]  # what the edit changed, by default
    wait_for(browser, "return [...document.querySelectorAll('#history li')].length === 2", 30)
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetUi.errors") == []


def test_cancel_stops_a_heal_and_the_model_stays(browser, page, bench):
    open_page(browser, page)
    start_heal(browser, {"steps": "500", "batch_size": "2", "seq_len": "32", "valid_every": "0"})
    wait_for(browser, "return window.mindsetUi.job.events > 2", 120)
    browser.find_element("id", "heal-cancel").click()
    assert wait_job(browser) == "cancelled"
    assert "cancelled" in browser.find_element("id", "heal-status").text
    assert bench.current is bench.original and bench.history()["steps"] == []


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_overlays_colour_the_heads_and_ffn_bars(browser, page, bench):
    open_page(browser, page)
    browser.find_element("id", "overlay-importance").click()
    browser.find_element("id", "importance-run").click()
    wait_job(browser, timeout=300)
    values = show_overlay(browser, "importance")
    assert set(values) == {f"L{i}.H{h}" for i in (0, 1) for h in range(4)} | {"L0.mlp", "L1.mlp"}
    styles = browser.execute_script("return [...document.querySelectorAll('.head')].map(h => h.style.backgroundColor)")
    assert len(styles) == 8 and all(s.startswith("rgb") for s in styles) and len(set(styles)) > 1
    assert "nats/doc" in browser.find_element("id", "legend").text
    edit(browser, "head_gates", {})
    gates = show_overlay(browser, "gates")
    assert gates == {f"L{i}.H{h}": 1.0 for i in (0, 1) for h in range(4)}
    select_ffn(browser, 1)
    edit(browser, "widen_ffn", {"add": "16", "init": "random", "seed": "3"})
    change = show_overlay(browser, "change")
    assert change["L0.mlp"] == 0 and "L1.mlp" not in change  # a widened FFN has no same-shaped original


def test_the_heal_default_trains_what_the_edits_added_after_inserts_shift_the_layers(browser, page):
    open_page(browser, page)
    select_ffn(browser, 1)
    edit(browser, "widen_ffn", {"add": "16"})  # layer 1, which the insert below moves to 3
    select_layer(browser, 0)
    edit(browser, "insert_layers", {"after": "0", "n": "2"})  # new blocks 1 and 2 (its report names the last layers, 2-3)
    browser.find_element("id", "tab-heal").click()
    assert browser.find_element("id", "heal-trainable").get_attribute("value") == "L1,L2,L3"
