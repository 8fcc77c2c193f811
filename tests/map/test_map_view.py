"""The plot fills its pane and shows every point at common window sizes, at a device pixel ratio of 2, and
after the window is resized: each legend entry's points are inside the canvas (the page's own projection of
them, `window.mindsetMap.view()`), and the screenshot shows each point's colour where the page says it is
(the projection alone cannot see a drawing cut to a box: it once passed while half the map was missing)."""

import numpy as np
import pytest
from map_helpers import read_page_data

from mindset.map.browser import canvas_pixels, open_map, severe_logs, wait_for
from mindset.map.build import MapSettings, build_map

pytestmark = pytest.mark.browser

SIZES = [(800, 600), (1200, 800), (1600, 1000), (1920, 1080), (700, 1000)]  # the last: a pane taller than wide



@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """A PCA map with its 4 paths shown, and a UMAP map of 64 points (the issue's four tasks × 16) with paths hidden."""
    from mindset.models import load

    model = load("tiny-llama", device="cpu", dtype="float32")
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for name, settings in {
        "pca": MapSettings(data=["capitals", "copying", "negation"], limit=8, paths=4, cache=cache),
        "umap": MapSettings(data=["capitals", "arithmetic", "copying", "counting"], limit=16, cache=cache),
    }.items():
        out[name] = tmp_path_factory.mktemp(name) / "map"
        build_map(model, out[name], settings, progress=False)
    return out


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def screenshot_without_paths(driver, png) -> np.ndarray:
    """The canvas's pixels with the paths hidden for a moment (they are drawn over the points, and a tangle of them
    can hide one): the points are what is checked here, and hiding paths moves nothing."""
    shown = driver.execute_script("return document.getElementById('show-paths').checked")
    toggle = "const c = document.getElementById('show-paths'); c.checked = arguments[0]; c.dispatchEvent(new Event('change'));"
    frames = "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
    if shown:
        driver.execute_script(toggle, False)
    wait_for(driver, frames, 5)
    pixels = canvas_pixels(driver, png).astype(int)
    if shown:
        driver.execute_script(toggle, True)
    return pixels


def check_every_point_is_shown(driver, png) -> dict:
    """Assert that every legend entry's points lie inside the canvas and that the screenshot shows them there."""
    view = driver.execute_script("return window.mindsetMap.view()")
    width, height, ratio = view["width"], view["height"], view["ratio"]
    plot = driver.execute_script("const r = document.getElementById('plot').getBoundingClientRect(); return [r.width, r.height]")
    assert abs(width - plot[0]) <= 1 and abs(height - plot[1]) <= 1, "the canvas does not fill its pane"
    assert view["canvas"] == [int(width * ratio), int(height * ratio)] == view["renderer"], "canvas, renderer and CSS sizes disagree"
    xy = np.array(view["positions"], dtype=float)
    codes = np.array(view["codes"])
    radius = view["pointSize"] / 2
    inside = (xy[:, 0] >= radius) & (xy[:, 0] <= width - radius) & (xy[:, 1] >= radius) & (xy[:, 1] <= height - radius)
    legend = [e.text for e in driver.find_elements("css selector", "#legend .name")]
    for code, name in enumerate(view["names"]):
        if name in legend:
            assert inside[codes == code].all(), f"{name}: {int((~inside[codes == code]).sum())} of {int((codes == code).sum())} points off screen"
    pixels = screenshot_without_paths(driver, png)
    assert pixels.shape[:2] == (int(height * ratio), int(width * ratio))
    colours = np.stack([_hex(c) for c in view["colours"]])
    reach = max(1, int(radius * ratio) - 1)
    shows_own = np.zeros(len(xy), dtype=bool)
    for p, (x, y) in enumerate(xy * ratio):
        x, y = int(round(x)), int(round(y))
        patch = pixels[max(0, y - reach) : y + reach + 1, max(0, x - reach) : x + reach + 1].reshape(-1, 3)
        distance = np.abs(patch[:, None, :] - colours[None]).sum(axis=2)  # (pixels, colours)
        assert len(patch) and distance.min() <= 40, f"point {p} ({view['names'][codes[p]]}) is not drawn at {x, y}"  # its colour, or a neighbour's on top
        shows_own[p] = distance[:, codes[p]].min() <= 40
    for code, name in enumerate(view["names"]):
        if name in legend:
            assert shows_own[codes == code].any(), f"no point of {name} shows its colour"
    return view


def shown_vertices(driver, page, view) -> np.ndarray:
    """Screen positions of the points and, when the paths are shown, of every path vertex: the page draws data
    (x, y) at (a x + b, c - a y), and a, b, c are read off the points' own projected positions."""
    xy, screen = np.stack([page["x"], page["y"]], axis=1), np.array(view["positions"], dtype=float)
    ones, zeros = np.ones(len(xy)), np.zeros(len(xy))
    system = np.concatenate([np.stack([xy[:, 0], ones, zeros], 1), np.stack([-xy[:, 1], zeros, ones], 1)])
    (a, b, c), *_ = np.linalg.lstsq(system, np.concatenate([screen[:, 0], screen[:, 1]]), rcond=None)
    assert np.abs(system @ [a, b, c] - np.concatenate([screen[:, 0], screen[:, 1]])).max() < 0.5  # the map is that simple
    vertices = [xy]
    if driver.execute_script("return document.getElementById('show-paths').checked"):
        vertices += [np.array(path) for path in page["paths"].values()]
    data = np.concatenate(vertices)
    return np.stack([a * data[:, 0] + b, c - a * data[:, 1]], axis=1)


@pytest.mark.parametrize("kind", ["pca", "umap"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_legend_entry_is_on_screen_at_common_window_sizes(browser, maps, kind, size):
    browser.set_window_size(*size)
    open_map(browser, (maps[kind] / "index.html").as_uri())
    view = check_every_point_is_shown(browser, maps[kind] / f"screenshot-{size[0]}x{size[1]}.png")
    # everything drawn (points, and the paths when shown) is inside the canvas and fills it: its box spans
    # most of the canvas's width or of its height
    xy = shown_vertices(browser, read_page_data(maps[kind]), view)
    assert (xy >= 0).all() and (xy <= [view["width"], view["height"]]).all()
    span = (xy.max(0) - xy.min(0)) / [view["width"], view["height"]]
    assert span.max() > 0.75, span
    assert severe_logs(browser) == []


def test_the_plot_follows_a_window_resize(browser, maps):
    browser.set_window_size(1200, 800)
    open_map(browser, (maps["umap"] / "index.html").as_uri())
    before = browser.execute_script("return window.mindsetMap.view().width")
    browser.set_window_size(1600, 1000)
    wait_for(browser, f"const v = window.mindsetMap.view(); return v.width > {before} + 300 && v", 10)
    wait_for(browser, "return window.mindsetMap.settled().then(() => true)", 10)
    check_every_point_is_shown(browser, maps["umap"] / "screenshot-resized.png")
    browser.set_window_size(800, 600)
    wait_for(browser, f"return window.mindsetMap.view().width < {before}", 10)
    wait_for(browser, "return window.mindsetMap.settled().then(() => true)", 10)
    check_every_point_is_shown(browser, maps["umap"] / "screenshot-shrunk.png")


def test_a_high_density_screen_draws_at_its_pixel_ratio(start_browser, maps):
    driver = start_browser(window=(1200, 800), scale=2)
    try:
        open_map(driver, (maps["umap"] / "index.html").as_uri())
        view = check_every_point_is_shown(driver, maps["umap"] / "screenshot-dpr2.png")
        assert view["ratio"] == 2
    finally:
        driver.quit()
