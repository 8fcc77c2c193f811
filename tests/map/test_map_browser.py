"""The page in headless Debian chromium, as a person uses it: it loads offline with no console errors, the
canvas shows points, hovering a point shows its text, colour / search / lasso work, a compare map draws its
arrows, and live sampling adds a point. Screenshots are kept beside each map (screenshot*.png)."""

import numpy as np
import pytest
from map_helpers import read_page_data

from mindset.map.browser import canvas_pixels, open_map, severe_logs, wait_for
from mindset.map.build import MapSettings, build_map

pytestmark = pytest.mark.browser




@pytest.fixture(scope="module")
def model():
    from mindset.models import load

    return load("tiny-llama", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def suite_map(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "map"
    settings = MapSettings(data=["capitals", "copying", "negation"], limit=8, paths=4, cache=tmp_path_factory.mktemp("cache"))
    build_map(model, out, settings, progress=False)
    return out


def test_page_loads_from_disk_without_errors_and_draws_points(browser, suite_map):
    load_ms = open_map(browser, (suite_map / "index.html").as_uri())
    assert load_ms > 0
    assert severe_logs(browser) == []
    assert browser.execute_script("return window.mindsetMap.errors") == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [r for r in resources if not r.startswith("file:")]  # nothing fetched from the network
    page_files = [suite_map / "index.html", suite_map / "map.js", suite_map / "map.css"]
    assert not [f for f in page_files if "http://" in f.read_text() or "https://" in f.read_text()]
    pixels = canvas_pixels(browser, suite_map / "screenshot.png")
    coloured = (np.abs(pixels.astype(int) - 255).sum(axis=2) > 60).sum()
    assert coloured > 500, "the canvas is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5  # several point colours, not one flat fill
    assert browser.find_element("id", "title").text == "tiny-llama"
    legend = browser.find_element("id", "legend").text
    assert "capitals · right" in legend or "capitals · wrong" in legend


def _isolated_point(page) -> int:
    xy = np.stack([page["x"], page["y"]], axis=1)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 9
    return int(d.min(axis=1).argmax())


def test_hovering_a_point_shows_its_prompt_and_completion(browser, suite_map):
    from selenium.webdriver.common.action_chains import ActionChains

    page = read_page_data(suite_map)
    open_map(browser, (suite_map / "index.html").as_uri())
    p = _isolated_point(page)
    x, y = browser.execute_script(f"return window.mindsetMap.screenPosition({p})")
    canvas = browser.find_element("id", "canvas")
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)).perform()
    wait_for(browser, "return !document.getElementById('tooltip').hidden", 10)
    text = browser.find_element("id", "tooltip").text
    assert page["prompt"][p].strip().splitlines()[-1] in text
    assert "task: " in text and "correct: " in text
    canvas_pixels(browser, suite_map / "screenshot-hover.png")


def test_colour_search_and_lasso(browser, suite_map):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    page = read_page_data(suite_map)
    open_map(browser, (suite_map / "index.html").as_uri())
    Select(browser.find_element("id", "colour-by")).select_by_value("correct")
    # the legend is rebuilt once the plot has redrawn (asynchronously): read its names in one step when it is
    names = wait_for(browser, "const n = [...document.querySelectorAll('#legend .name')].map(e => e.textContent);"
                              "return n.length && n.every(x => x === 'yes' || x === 'no') && n", 10)
    assert set(names) <= {"yes", "no"} and names
    browser.find_element("id", "search").send_keys("capital of")
    expected = sum("capital of" in (a + b).lower() for a, b in zip(page["prompt"], page["completion"]))
    title = wait_for(browser, "const t = document.getElementById('selection-title').textContent; return t.includes('(') && t", 10)
    assert f"({expected})" in title and expected == 8
    browser.find_element("id", "search").clear()
    # a lasso drawn with the mouse around the whole plot, in lasso mode
    browser.find_element("id", "lasso").click()
    canvas = browser.find_element("id", "canvas")
    w, h = canvas.size["width"], canvas.size["height"]
    chain = ActionChains(browser, duration=20).move_to_element_with_offset(canvas, -w // 2 + 3, -h // 2 + 3).click_and_hold()
    corners = [(w - 6, 0), (w - 6, h - 6), (0, h - 6), (0, 0)]
    for (x0, y0), (x1, y1) in zip([(0, 0)] + corners, corners):
        for k in range(1, 11):
            chain.move_to_element_with_offset(canvas, int(-w // 2 + 3 + x0 + (x1 - x0) * k / 10), int(-h // 2 + 3 + y0 + (y1 - y0) * k / 10)).pause(0.03)
    chain.release().perform()
    title = wait_for(browser, "const t = document.getElementById('selection-title').textContent; return t.startsWith('Selection') && t", 10)
    assert f"({len(page['x'])})" in title


def test_live_sampling_adds_a_point_with_its_path(browser, suite_map, model):
    from mindset.map.server import create_map_app
    from mindset.serve import BackgroundServer

    n = len(read_page_data(suite_map)["x"])
    with BackgroundServer(create_map_app(model, suite_map)) as server:
        open_map(browser, server.url + "/")
        wait_for(browser, "return !document.getElementById('sample-box').hidden", 20)
        browser.find_element("id", "sample-prompt").send_keys("Question: What is the capital of France?\nAnswer:")
        browser.find_element("id", "sample-tokens").clear()
        browser.find_element("id", "sample-tokens").send_keys("6")
        browser.find_element("id", "sample-go").click()
        wait_for(browser, "return window.mindsetMap.liveCount === 1", 60)
        assert browser.execute_script("return window.mindsetMap.count()") == n + 1
        assert "black point" in browser.find_element("id", "sample-status").text
        assert "capital of France" in browser.find_element("id", "detail").text
        assert severe_logs(browser) == []
        canvas_pixels(browser, suite_map / "screenshot-live.png")


def test_compare_page_draws_arrows_and_lists_the_items_that_moved_most(browser, model, tmp_path):
    from mindset.models import load

    out = tmp_path / "cmp"
    build_map(model, out, MapSettings(data=["capitals"], limit=10, cache=tmp_path / "cache"), compare=load("tiny-llama@1", device="cpu", dtype="float32"), progress=False)
    open_map(browser, (out / "index.html").as_uri())
    assert severe_logs(browser) == []
    assert browser.find_element("id", "arrows-box").is_displayed()
    moved = browser.find_elements("css selector", "#moved li")
    assert len(moved) == 10
    options = [o.text for o in browser.find_elements("css selector", "#colour-by option")]
    assert "change" in options and "model" in options
    canvas_pixels(browser, out / "screenshot.png")


def test_many_paths_start_hidden_a_few_start_shown(browser, suite_map, model, tmp_path):
    open_map(browser, (suite_map / "index.html").as_uri())
    assert browser.find_element("id", "show-paths").is_selected()  # 4 paths: all drawn
    out = tmp_path / "map"
    build_map(model, out, MapSettings(data=["copying"], limit=30, paths=30, cache=tmp_path / "cache"), progress=False)
    page = read_page_data(out)
    assert len(page["paths"]) > 24
    open_map(browser, (out / "index.html").as_uri())
    assert not browser.find_element("id", "show-paths").is_selected()  # 30 faint paths would bury the clusters
    assert severe_logs(browser) == [] and browser.execute_script("return window.mindsetMap.errors") == []
