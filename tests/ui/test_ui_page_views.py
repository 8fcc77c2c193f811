"""The Diff view, the activation-norm overlay and the Map view in headless chromium on tiny-llama, as a person
uses them: the diff marks inserted and dropped layers and follows an edit made in the page; the activation overlay
paints every head and FFN for a typed prompt, and heads just added (zero output columns) stay white; a map job
built from the Map tab opens the map's own page in the frame."""

import pytest

from mindset.map.browser import severe_logs, wait_for
from mindset.ui.browser import edit, open_page, select_layer, show_overlay

pytestmark = pytest.mark.browser
BROWSER_WINDOW = (1400, 1000)


def diff_rows(driver, after_version: int) -> list[list[str]]:
    wait_for(driver, f"const d = window.mindsetUi.diff; return d && d.version >= {after_version}", 60)
    return driver.execute_script("return [...document.querySelectorAll('#diff-table tr.diff-row')].map(r => [r.dataset.status, r.dataset.source])")


def test_the_diff_view_shows_inserted_and_dropped_layers_and_follows_an_edit(browser, page, bench, tmp_path):
    bench.apply("insert_layers", {"after": 0, "n": 1})
    open_page(browser, page)
    browser.find_element("id", "tab-diff").click()
    assert diff_rows(browser, bench.version) == [["kept", "0"], ["inserted", "0"], ["kept", "1"]]
    summary = browser.find_element("id", "diff-summary").text
    assert "2 → 3 layers" in summary and "1 inserted" in summary and "0 dropped" in summary
    inserted = browser.find_element("css selector", "tr.diff-row.status-inserted").text
    assert "copy of L0" in inserted and "identity" in inserted
    select_layer(browser, 2)
    edit(browser, "drop_layers", {"layers": "2"})
    browser.find_element("id", "tab-diff").click()
    assert diff_rows(browser, bench.version) == [["kept", "0"], ["inserted", "0"], ["dropped", "1"]]
    assert "line-through" in browser.find_element("css selector", "tr.status-dropped td").value_of_css_property("text-decoration")
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetUi.errors") == []
    browser.save_screenshot(str(tmp_path / "diff.png"))


def painted(driver, layer: int) -> list[str]:
    return driver.execute_script(f"return [...document.querySelectorAll(\".row.layer[data-layer='{layer}'] .head\")].map(h => h.style.background)")


def test_the_activation_overlay_paints_a_typed_prompt_and_new_heads_stay_white(browser, page, bench):
    open_page(browser, page)
    values = show_overlay(browser, "activations")
    values = wait_for(browser, "const o = window.mindsetUi.overlay; return o && o.kind === 'activations' && o.values['L0.H0'] !== undefined && o.values", 60)
    assert set(values) == {f"L{i}.H{h}" for i in range(2) for h in range(4)} | {"L0.mlp", "L1.mlp"} and all(v > 0 for v in values.values())
    assert all(c.startswith("rgba(220, 38, 38") for c in painted(browser, 0))
    assert "averaged over the prompt" in browser.find_element("id", "legend").text
    box = browser.find_element("id", "activation-prompt")
    box.clear()
    box.send_keys("Once upon a time there was a dragon")
    browser.find_element("id", "activation-run").click()
    wait_for(browser, f"const o = window.mindsetUi.overlay; return o && o.values['L0.H0'] !== {values['L0.H0']}", 60)
    select_layer(browser, 1)
    edit(browser, "add_heads", {"layers": "1", "n": "2"})
    values = show_overlay(browser, "activations")
    values = wait_for(browser, "const o = window.mindsetUi.overlay; return o && o.values['L1.H5'] !== undefined && o.values", 60)
    assert values["L1.H4"] == 0 and values["L1.H5"] == 0 and values["L1.H0"] > 0
    cells = painted(browser, 1)
    assert len(cells) == 6 and cells[4] == cells[5] == "rgba(220, 38, 38, 0)"
    assert browser.execute_script("return window.mindsetUi.errors") == []


def test_a_map_built_from_the_map_tab_opens_in_the_frame(browser, page, bench):
    open_page(browser, page)
    browser.find_element("id", "tab-map").click()
    for name, value in (("map-data", "capitals"), ("map-limit", "6"), ("map-paths", "2")):
        element = browser.find_element("id", name)
        element.clear()
        element.send_keys(value)
    browser.find_element("id", "map-build").click()
    state = wait_for(browser, "const j = window.mindsetUi.job; return j && j.kind === 'map' && ['done', 'failed', 'cancelled'].includes(j.state) && j.state", 300)
    assert state == "done"
    assert "done" in browser.find_element("id", "map-progress").text
    frame = browser.find_element("id", "map-frame")
    assert frame.get_attribute("src").endswith("api/maps/current-vs-original-v0/index.html")
    browser.switch_to.frame(frame)
    try:
        wait_for(browser, "return window.mindsetMap && window.mindsetMap.ready", 120)
        assert browser.execute_script("return window.MINDSET_MAP.models") == ["tiny-llama (original)", "tiny-llama (current, v0)"]
    finally:
        browser.switch_to.default_content()
    assert browser.find_elements("css selector", "#map-list a.map-open")
