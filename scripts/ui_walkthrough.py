"""The issue's "Done when" walked through the page in headless chromium, one screenshot per step into docs/ui/
(walk-architecture.png, walk-importance.png, ... walk-recipe.png), with each step's time; the same walk the slow browser test
tests/ui/test_walkthrough_smollm2.py asserts on (mindset.ui.walkthrough).

    python scripts/ui_walkthrough.py [MODEL] [--out docs/ui] [--heal-steps 3]   (default smollm2-135m; minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    parser.add_argument("--heal-steps", type=int, default=3)
    parser.add_argument("--window", default="1400x1000", help="the browser window, WIDTHxHEIGHT")
    args = parser.parse_args()

    from mindset.map.browser import start_chromium
    from mindset.models import load
    from mindset.models.anatomy import blocks
    from mindset.ui import Workbench
    from mindset.ui.browser import serving
    from mindset.ui.walkthrough import Plan, Walk

    loaded = load(args.model, device="cpu", dtype="float32")
    found = blocks(loaded.model)
    plan = Plan.for_model(len(found), found[0].attention.n_heads // found[0].attention.n_kv_heads, heal_steps=args.heal_steps)
    args.out.mkdir(parents=True, exist_ok=True)
    width, height = (int(x) for x in args.window.split("x"))
    with tempfile.TemporaryDirectory() as work:
        bench = Workbench(loaded, Path(work) / "root")
        with serving(bench, "walkthrough") as url:
            driver = start_chromium(Path(work) / "profile", window=(width, height))
            def shot(name: str) -> None:
                path = args.out / f"walk-{name}.png"
                driver.save_screenshot(str(path))
                print(f"  {path}", flush=True)

            walk = Walk(driver, url, plan, shot)
            try:
                walk.run()
            finally:
                driver.quit()
    print(json.dumps({"model": args.model, "plan": plan.__dict__, "seconds": {k: round(v, 1) for k, v in walk.seconds.items()}}, indent=1))


if __name__ == "__main__":
    main()
