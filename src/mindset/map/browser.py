"""Headless Debian chromium driving a map page: for the tests, the benchmark and `mindset map --screenshot`.

Needs selenium (the `test` extra) and Debian's packages `chromium` and `chromium-driver`; selenium is told
where both are, so it never downloads a browser. WebGL runs on SwiftShader (software), which chromium only
allows without a GPU when asked (--enable-unsafe-swiftshader; the silent fallback is deprecated).
"""

from __future__ import annotations

import time
from pathlib import Path

from mindset.errors import MindsetError

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-default-apps", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
    "--hide-scrollbars",
]
WINDOW = (1400, 900)


def check_browser() -> None:
    """Raise the error a screenshot would end in, now: `mindset map --screenshot` calls it before any work."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise MindsetError("screenshots need selenium: pip install 'mindset-lab[test]' (or pip install selenium)") from None
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise MindsetError(f"screenshots need Debian's chromium and chromium-driver ({', '.join(missing)} not found): "
                           "apt-get install chromium chromium-driver")


def start_chromium(profile: str | Path, window: tuple[int, int] = WINDOW, scale: float | None = None):
    """A selenium driver for Debian's chromium, with a fresh user-data dir `profile`, a window of `window` pixels
    and, with `scale`, that device pixel ratio (as on a high-density screen)."""
    check_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    flags = [*CHROMIUM_FLAGS, f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}"]
    if scale:
        flags.append(f"--force-device-scale-factor={scale}")
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for(driver, script: str, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for: {script}")


def open_map(driver, url: str, timeout: float = 180.0) -> float:
    """Load the page and wait until the plot has drawn; returns the page's own load time in ms."""
    driver.get(url)
    return wait_for(driver, "return window.mindsetMap && window.mindsetMap.ready && window.mindsetMap.readyMs", timeout)


def severe_logs(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def canvas_pixels(driver, png: str | Path):
    """Save a screenshot to `png`; returns its canvas region as an RGB array."""
    import numpy as np
    from PIL import Image

    driver.save_screenshot(str(png))
    left, top, right, bottom, ratio = driver.execute_script(
        "const r = document.getElementById('canvas').getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];"
    )
    image = Image.open(png).convert("RGB")
    return np.asarray(image.crop(tuple(int(v * ratio) for v in (left, top, right, bottom))))


def screenshot(folder: str | Path, png: str | Path | None = None, colour_by: str | None = None) -> Path:
    """Open folder/index.html from disk in headless chromium and save a screenshot (default folder/screenshot.png)."""
    import tempfile

    folder = Path(folder)
    png = Path(png) if png else folder / "screenshot.png"
    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(profile)
        try:
            open_map(driver, (folder / "index.html").resolve().as_uri())
            if colour_by:
                driver.execute_script("const s = document.getElementById('colour-by'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));", colour_by)
                time.sleep(0.5)
            driver.save_screenshot(str(png))
        finally:
            driver.quit()
    return png
