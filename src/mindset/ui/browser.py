"""Driving the workbench page in headless chromium (Debian chromium, as the map does): a real server in a
background thread, and the clicks a person makes. Shared by the browser tests, scripts/ui_screenshots.py and
benchmarks/ui_latency.py, so all three use the page the same way."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from mindset.map.browser import wait_for


@contextmanager
def serving(bench, token: str):
    """Yields the page's URL (with ?token=) of an app over `bench`, served by uvicorn on a free loopback port."""
    import uvicorn

    from mindset.serve.net import bind
    from mindset.ui.app import create_app

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(bench, token=token), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}"
    finally:
        server.should_exit = True
        thread.join(10)


def open_page(driver, url: str, timeout: float = 60.0) -> float:
    """Load the page; returns ms from navigation until the architecture was drawn (the page's own clock)."""
    driver.get(url)
    return wait_for(driver, "return window.mindsetUi && window.mindsetUi.ready && window.mindsetUi.readyMs", timeout)


def heads_in(driver, layer: int) -> int:
    return driver.execute_script(f"return document.querySelectorAll(\".row.layer[data-layer='{layer}'] .head\").length")


def layers_shown(driver) -> list[int]:
    return driver.execute_script("return [...document.querySelectorAll('.row.layer')].map(r => +r.dataset.layer)")


def wait_idle(driver, version: int | None = None, timeout: float = 120.0) -> None:
    """Until no request is in flight (and, with `version`, the page shows a later model version)."""
    check = "!window.mindsetUi.busy" + (f" && window.mindsetUi.version > {version}" if version is not None else "")
    wait_for(driver, f"return {check}", timeout)


def version(driver) -> int:
    return driver.execute_script("return window.mindsetUi.version")


def select_layer(driver, layer: int) -> None:
    driver.find_element("css selector", f".row.layer[data-layer='{layer}'] .label").click()


def select_ffn(driver, layer: int) -> None:
    driver.find_element("css selector", f".row.layer[data-layer='{layer}'] .ffn").click()


def edit(driver, op: str, fields: dict[str, str], timeout: float = 120.0, fails: bool = False) -> None:
    """In the Edit view: choose `op`, fill `fields` (parameter name -> text or option), apply, wait for the new
    model (or, `fails`, for the error line)."""
    from selenium.webdriver.support.ui import Select

    driver.find_element("id", "tab-edit").click()
    driver.find_element("css selector", f"button[data-op='{op}']").click()
    for name, value in fields.items():
        element = driver.find_element("id", f"param-{name}")
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    before = version(driver)
    driver.find_element("id", "apply").click()
    if fails:
        wait_for(driver, "return document.getElementById('error') && !window.mindsetUi.busy", timeout)
    else:
        wait_idle(driver, before, timeout)


def click_and_wait(driver, element_id: str, timeout: float = 120.0) -> None:
    before = version(driver)
    driver.find_element("id", element_id).click()
    wait_idle(driver, before, timeout)


def start_heal(driver, fields: dict[str, str]) -> None:
    """In the Heal view: fill `fields` (steps, batch_size, seq_len, lr, warmup_steps, valid_every, trainable), start."""
    driver.find_element("id", "tab-heal").click()
    for name, value in fields.items():
        element = driver.find_element("id", f"heal-{name}")
        element.clear()
        element.send_keys(value)
    driver.find_element("id", "heal-start").click()
    wait_for(driver, "return window.mindsetUi.job && window.mindsetUi.job.kind === 'heal'", 30)


def wait_job(driver, states=("done", "failed", "cancelled"), timeout: float = 300.0) -> str:
    """Until the page's latest job has finished (and the page has taken in its result); returns its state."""
    names = ", ".join(f"'{s}'" for s in states)
    return wait_for(driver, f"const j = window.mindsetUi.job; return j && [{names}].includes(j.state) && j.state", timeout)


def show_overlay(driver, kind: str, timeout: float = 60.0) -> dict:
    """Choose overlay `kind` on the Architecture view; returns {name: value} once the page has painted it."""
    driver.find_element("id", "tab-architecture").click()
    driver.find_element("id", f"overlay-{kind}").click()
    return wait_for(driver, f"const o = window.mindsetUi.overlay; return o && o.kind === '{kind}' && o.values", timeout)


def chat(driver, text: str, max_tokens: int = 12, timeout: float = 300.0) -> dict:
    """In the Chat view: send `text` to both models and wait until both replies (and the current model's retrieved
    entries) are in; returns the page's window.mindsetUi.chat ({state, tokens: {original, current}, retrieved})."""
    from mindset.map.browser import wait_for

    driver.find_element("id", "tab-chat").click()
    box = driver.find_element("id", "chat-max-tokens")
    box.clear()
    box.send_keys(str(max_tokens))
    driver.find_element("id", "chat-text").send_keys(text)
    driver.find_element("id", "chat-send").click()
    return wait_for(driver, "const c = window.mindsetUi.chat; return c && c.state !== 'streaming' && c", timeout)


def hover_token(driver, pane: str, index: int) -> str:
    """Point at token `index` of `pane`'s last reply; returns the token panel's text once it shows that token."""
    from selenium.webdriver import ActionChains

    from mindset.map.browser import wait_for

    token = driver.find_elements("css selector", f"#chat-{pane} .turn:last-child .tok")[index]
    ActionChains(driver).move_to_element(token).perform()
    return wait_for(driver, f"const i = document.getElementById('token-info'); return i && i.dataset.pane === '{pane}' && i.textContent", 30)
