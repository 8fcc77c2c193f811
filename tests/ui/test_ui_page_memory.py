"""The Memory view in headless chromium on tiny-llama: a layer converted to associative memory through the
page, a text memorized, its entries listed with the text they were written from, a delete undone by undo."""

import pytest

from mindset.map.browser import severe_logs, wait_for
from mindset.ui.browser import click_and_wait, edit, open_page, select_ffn, version, wait_idle

pytestmark = pytest.mark.browser
BROWSER_WINDOW = (1400, 1000)
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"






def shown_ids(driver) -> list[int]:
    return driver.execute_script("return [...document.querySelectorAll('#entries tr.entry')].map(r => +r.dataset.id)")


def test_the_memory_view_lists_entries_and_a_delete_is_undone(browser, page, bench):
    open_page(browser, page)
    browser.find_element("id", "tab-memory").click()
    assert "ffn_to_memory" in wait_for(browser, "const p = document.getElementById('no-memory'); return p && p.textContent")
    select_ffn(browser, 1)
    edit(browser, "ffn_to_memory", {"kind": "associative", "capacity": "64", "k": "4"})
    browser.find_element("id", "tab-memory").click()
    wait_for(browser, "return document.getElementById('memorize-text')")
    browser.find_element("id", "memorize-text").send_keys(TEXT)
    before = version(browser)
    browser.find_element("id", "memorize").click()
    wait_idle(browser, before)
    wait_for(browser, "return document.querySelectorAll('#entries tr.entry').length > 0", 30)
    total = bench.current.model.get_submodule("model.layers.1.mlp").store.stats()["entries"]
    assert shown_ids(browser)[:3] == [0, 1, 2] and f"{total} entries" in browser.find_element("css selector", ".pager").text
    sources = browser.execute_script("return [...document.querySelectorAll('#entries td.source')].map(t => t.textContent)")
    assert sources[0] and all(s in TEXT for s in sources)
    before = version(browser)
    browser.find_element("css selector", "button.forget[data-id='0']").click()
    wait_idle(browser, before)
    wait_for(browser, "return window.mindsetUi.memory && !window.mindsetUi.memory.ids.includes(0)", 30)
    assert [s["op"] for s in bench.history()["steps"]] == ["ffn_to_memory", "memorize", "forget"]
    click_and_wait(browser, "undo")
    wait_for(browser, "return window.mindsetUi.memory.ids.includes(0)", 30)
    browser.find_element("id", "memory-query").send_keys("a single man")
    browser.find_element("id", "memory-search").click()
    assert "nearest" in wait_for(browser, "const r = document.getElementById('search-results'); return r && r.textContent", 30)
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetUi.errors") == []
