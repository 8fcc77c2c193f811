"""The Diff view, the activation overlay and the Map view for scripts/ui_screenshots.py (diff.png,
activations.png, map.png): edits that insert, widen, add heads and drop, then the views that show them."""

from __future__ import annotations

import time
from pathlib import Path

PROMPT = "The capital of France is Paris, and the capital of Italy is"


def diff_views(driver, out: Path, group: int, n_layers: int) -> None:
    from mindset.map.browser import wait_for
    from mindset.ui.browser import edit, select_ffn, select_layer, show_overlay

    select_layer(driver, 1)
    edit(driver, "insert_layers", {"after": "1", "n": "2", "init": "identity"})
    select_layer(driver, 5)
    edit(driver, "add_heads", {"layers": "5", "n": str(group)})
    select_ffn(driver, 8)
    edit(driver, "widen_ffn", {"layers": "8", "add": "256", "init": "split", "noise": "1.0"})
    select_layer(driver, n_layers - 2)
    edit(driver, "drop_layers", {"layers": str(n_layers - 2)})
    driver.find_element("id", "tab-diff").click()
    wait_for(driver, "return document.getElementById('diff-table')", 120)
    driver.save_screenshot(str(out / "diff.png"))
    show_overlay(driver, "activations")
    box = driver.find_element("id", "activation-prompt")
    box.clear()
    box.send_keys(PROMPT)
    driver.find_element("id", "activation-run").click()
    wait_for(driver, f"const a = window.mindsetUi.activations; return a && a.prompt === {PROMPT!r}", 120)
    time.sleep(0.5)
    driver.save_screenshot(str(out / "activations.png"))
    driver.find_element("id", "tab-map").click()
    for name, value in (("map-data", "capitals,canaries"), ("map-limit", "8"), ("map-paths", "12")):
        element = driver.find_element("id", name)
        element.clear()
        element.send_keys(value)
    started = time.perf_counter()
    driver.find_element("id", "map-build").click()
    state = wait_for(driver, "const j = window.mindsetUi.job; return j && j.kind === 'map' && ['done', 'failed', 'cancelled'].includes(j.state) && j.state", 1800)
    print(f"map job ({state}) in {time.perf_counter() - started:.0f} s")
    frame = driver.find_element("id", "map-frame")
    driver.switch_to.frame(frame)
    try:
        wait_for(driver, "return window.mindsetMap && window.mindsetMap.ready", 120)
    finally:
        driver.switch_to.default_content()
    driver.execute_script("document.getElementById('mapview').scrollIntoView()")
    time.sleep(1)
    driver.save_screenshot(str(out / "map.png"))
