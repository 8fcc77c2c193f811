"""The Memory view's agent database in headless chromium (mindset ui --agent-memory): the chat's memories
listed and sorted by importance, recall scores for a query, a text edited and a memory deleted through the
page, each checked in the SQLite file itself."""

import sqlite3

import pytest
from agent_helpers import FACTS, write_agent_folder

from mindset.map.browser import severe_logs, wait_for
from mindset.ui.browser import open_page

pytestmark = pytest.mark.browser
BROWSER_WINDOW = (1400, 1000)


@pytest.fixture
def folder(bench, tmp_path):
    from mindset.ui.agentdb import AgentMemoryView

    folder = write_agent_folder(bench.original, tmp_path / "chat")
    bench.agent_memory = AgentMemoryView(folder, bench.original)
    yield folder
    bench.agent_memory.close()


def shown(driver) -> dict:
    return driver.execute_script("return window.mindsetUi.agentMemory || null")


def file_texts(folder) -> dict[int, str]:
    with sqlite3.connect(folder / "memory.sqlite") as conn:
        return dict(conn.execute("SELECT id, text FROM memories"))


def test_the_agent_database_is_listed_recalled_edited_and_deleted(browser, folder, page):
    from selenium.webdriver.support.ui import Select

    open_page(browser, page)
    browser.find_element("id", "tab-memory").click()
    wait_for(browser, "const m = window.mindsetUi.agentMemory; return m && m.total === 5", 60)
    assert "5 memories" in browser.find_element("css selector", "#agent-memory h3").text
    Select(browser.find_element("id", "agent-sort")).select_by_value("importance")
    wait_for(browser, "const m = window.mindsetUi.agentMemory; return m && m.sort === 'importance'", 60)
    assert shown(browser)["texts"] == FACTS[::-1]  # importance 10, 8, ... in reverse order of writing
    browser.find_element("id", "agent-query").send_keys("My cat is a grey tabby named Tom.")
    browser.find_element("id", "agent-recall").click()
    wait_for(browser, "return document.querySelector('#agent-recalled tr.agent-memory')", 60)
    first = browser.find_element("css selector", "#agent-recalled tr.agent-memory")
    assert "recall score" in browser.find_element("css selector", "#agent-recalled thead").text
    assert first.find_element("css selector", "textarea").get_attribute("value") == FACTS[2]

    row = browser.find_element("css selector", "#agent-page tr.agent-memory")  # the most important: FACTS[4]
    memory_id = int(row.get_attribute("data-id"))
    box = row.find_element("css selector", "textarea.agent-text")
    box.clear()
    box.send_keys("I am allergic to shellfish.")
    row.find_element("css selector", "button.agent-save").click()
    wait_for(browser, "return window.mindsetUi.agentMemory.texts.includes('I am allergic to shellfish.')", 60)
    assert file_texts(folder)[memory_id] == "I am allergic to shellfish."

    browser.find_element("css selector", f"#agent-page button.agent-delete[data-id='{memory_id}']").click()
    wait_for(browser, f"return !window.mindsetUi.agentMemory.ids.includes({memory_id}) && window.mindsetUi.agentMemory.total === 4", 60)
    assert memory_id not in file_texts(folder) and len(file_texts(folder)) == 4
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetUi.errors") == []
