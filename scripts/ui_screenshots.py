"""Screenshots of each view of `mindset ui` into docs/ui/, for the README: the page driven in headless
chromium the way the browser tests drive it.

    python scripts/ui_screenshots.py [MODEL] [--out docs/ui]     (default smollm2-135m; about a minute on 2 cores)

architecture.png  the Architecture view, a layer selected (its modules, parameters and weight statistics)
edit-identity.png two identity blocks inserted and heads added: KL 0, the function unchanged
edit-widen.png    an FFN widened by noisy split copies: KL > 0 and the perplexity moved
export.png        the history, the exported recipe and a saved folder
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    args = parser.parse_args()

    from mindset.map.browser import start_chromium, wait_for
    from mindset.models import load
    from mindset.models.anatomy import blocks
    from mindset.ui import Workbench
    from mindset.ui.browser import click_and_wait, edit, open_page, select_ffn, select_layer, serving, wait_idle

    loaded = load(args.model, device="cpu", dtype="float32")
    first = blocks(loaded.model)[0].attention
    group = first.n_heads // first.n_kv_heads
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        bench = Workbench(loaded, Path(work) / "root")
        with serving(bench, "screenshots") as url:
            driver = start_chromium(Path(work) / "profile", window=(1400, 1000))
            try:
                print(f"architecture drawn in {open_page(driver, url):.0f} ms")
                select_layer(driver, 3)
                wait_for(driver, "return document.getElementById('stats')", 60)
                driver.save_screenshot(str(args.out / "architecture.png"))
                select_layer(driver, 1)
                edit(driver, "insert_layers", {"after": "1", "n": "2", "init": "identity"})
                select_layer(driver, 5)
                edit(driver, "add_heads", {"layers": "5", "n": str(group)})
                driver.save_screenshot(str(args.out / "edit-identity.png"))
                select_ffn(driver, 8)
                edit(driver, "widen_ffn", {"layers": "8", "add": "256", "init": "split", "noise": "1.0"})
                driver.find_element("id", "measure").click()
                wait_for(driver, "return document.getElementById('ppl-current')", 300)
                wait_idle(driver)
                driver.save_screenshot(str(args.out / "edit-widen.png"))
                click_and_wait(driver, "undo")
                driver.find_element("id", "show-recipe").click()
                wait_for(driver, "return document.getElementById('recipe')")
                driver.find_element("id", "save").click()
                wait_for(driver, "return document.getElementById('saved')", 300)
                driver.execute_script("document.getElementById('export').scrollIntoView()")
                driver.save_screenshot(str(args.out / "export.png"))
            finally:
                driver.quit()
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} to {args.out}")


if __name__ == "__main__":
    main()
