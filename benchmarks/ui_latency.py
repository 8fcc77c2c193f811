"""Claim: on 2 cores with SmolLM2, `mindset ui` draws the architecture within 1 s of the page loading and answers
an edit plus its quick measurement within 10 s (issue 16).

    python benchmarks/ui_latency.py [--models tiny-llama,smollm2-135m] [--reps 3]

Each API call goes over real HTTP to a `mindset ui` server in this process (uvicorn on loopback), --reps times,
the median kept. The baseline beside each is the same work without the UI: the architecture JSON built
directly, the surgery function called on a copy (no measurement, no history), the measurer called directly,
so the ratio says what the API, the lock, the history and the quick measurement add. The page time is the
page's own clock (performance.now() when the architecture rows are drawn) in headless chromium.

    python benchmarks/ui_latency.py --models smollm2-135m --parts kinds,jobs --heal-steps 3

`kinds`: an edit plus its quick measurement for every edit kind the Edit view offers (and undo), beside the
same recipe step run directly on a copy. `jobs`: the background jobs from POST /api/jobs until GET
/api/jobs/{id} says done (the importance map the page's button starts; a heal of --heal-steps steps after a
noisy widening) and the memory edits (ffn_to_memory both kinds, memorize), each beside the same work called
directly (circuits.importance over every component in one call; the distill / ffn_to_memory / memorize
recipe step on a copy). Jobs run once each (--job-reps): they take tens of seconds to minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

TOKEN = "bench"


def edits_for(loaded) -> list[tuple[str, dict]]:
    from mindset.models.anatomy import blocks

    att = blocks(loaded.model)[0].attention
    mid = len(blocks(loaded.model)) // 3
    return [
        ("insert_layers", {"after": mid, "n": 2, "init": "identity"}),
        ("add_heads", {"layers": [mid], "n": att.n_heads // att.n_kv_heads}),
        ("widen_ffn", {"layers": [mid], "add": 256, "init": "random", "seed": 0}),
    ]


def median_s(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired(a, b, reps: int) -> tuple[float, float]:
    """Medians of `a` and `b` run alternately, so a burst of load on the shared machine hits both alike."""
    ta, tb = [], []
    for _ in range(reps):
        ta.append(median_s(a, 1))
        tb.append(median_s(b, 1))
    return statistics.median(ta), statistics.median(tb)


def check(response):
    response.raise_for_status()
    return response.json()


PARTS = {"api", "kinds", "jobs", "page"}


def bench_model(spec: str, reps: int, parts: set[str] = PARTS, heal_steps: int = 3, job_reps: int = 1) -> tuple[list[list], dict]:
    import httpx

    from mindset.models import load
    from mindset.ui import Workbench
    from mindset.ui.browser import serving
    from mindset.ui.measure import Measurer

    loaded = load(spec, device="cpu", dtype="float32")
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as work, serving(bench := Workbench(loaded, Path(work) / "root"), TOKEN) as url:
        base = url.split("/?")[0]
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600)
        measurer = Measurer(loaded)
        measurer.quick(loaded)  # the original's log-probabilities cached, as after the server's first edit

        def row(action: str, ui_s: float, base_s: float, goal: str = "") -> None:
            rows.append([spec, action, f"{ui_s:.3f}", f"{base_s:.3f}", f"{ui_s / base_s:.1f}x" if base_s else "", goal])
            data[f"{spec}: {action}"] = {"ui_s": ui_s, "baseline_s": base_s}

        if "api" in parts:
            api_rows(client, loaded, measurer, row, reps)
        if "kinds" in parts:
            from ui_latency_jobs import kind_rows

            kind_rows(client, loaded, row, reps)
        if "jobs" in parts:
            from ui_latency_jobs import job_rows

            job_rows(client, bench, row, heal_steps, job_reps)
        if "page" in parts:
            page_ms = page_load_ms(url, reps)
            row("page: architecture drawn (ms → s)", page_ms / 1000, 0.0, "≤ 1 s")
            data[f"{spec}: page_ready_ms"] = page_ms
    return rows, data


def api_rows(client, loaded, measurer, row, reps: int) -> None:
    """The architecture, the three edits of the Done-when (edit + KL + top-5, then undo), undo, perplexity, recipe."""
    from mindset.surgery.edit_steps import EDITS
    from mindset.ui.architecture import architecture_json
    from mindset.ui.ops import parse_params

    row("GET /api/model", *paired(lambda: check(client.get("/api/model")), lambda: architecture_json(loaded), reps))
    for op, params in edits_for(loaded):
        function, parsed = EDITS[op].resolve(), parse_params(op, params)

        def ui_edit(op=op, params=params):
            check(client.post("/api/edits", json={"op": op, "params": params}))
            check(client.post("/api/undo", json={"measure": False}))

        ui_s, direct = paired(ui_edit, lambda f=function, p=parsed: f(loaded.model, **p.arguments()), reps)  # the function copies (inplace=False)
        row(f"POST /api/edits {op} + KL + top-5 (and undo)", ui_s, direct, "≤ 10 s")
    check(client.post("/api/edits", json={"op": "add_heads", "params": edits_for(loaded)[1][1]}))
    row("POST /api/undo", median_s(lambda: (check(client.post("/api/undo", json={"measure": False})), check(client.post("/api/redo", json={"measure": False}))), reps) / 2, 0.0)
    body = {"max_tokens": 512, "context": 128}
    row("POST /api/measure (ppl 512 tokens + KL)", *paired(lambda: check(client.post("/api/measure", json=body)), lambda: measurer.perplexity(loaded, 512, 128), reps))
    row("GET /api/recipe", median_s(lambda: client.get("/api/recipe").raise_for_status(), reps), 0.0)
    check(client.post("/api/undo", json={"measure": False}))  # back to the loaded model for the next part


def page_load_ms(url: str, reps: int) -> float:
    from mindset.map.browser import start_chromium
    from mindset.ui.browser import open_page

    with tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(profile)
        try:
            open_page(driver, url)  # the first load warms chromium's caches; the median of the next ones is reported
            return statistics.median(open_page(driver, url) for _ in range(reps))
        finally:
            driver.quit()


def merged(path: Path, rows: list[list], data: dict) -> tuple[list[list], dict]:
    """The rows and results of the JSON at `path`, each replaced by the new one of the same model and action, then the new ones."""
    if not path.exists():
        return rows, data
    old = json.loads(path.read_text(encoding="utf-8"))
    fresh = {(r[0], r[1]): r for r in rows}
    out = [fresh.pop((r[0], r[1]), r) for r in old.get("rows", [])]
    return out + list(fresh.values()), {**old.get("results", {}), **data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-llama,smollm2-135m")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--parts", default="api,kinds,jobs,page", help="which timings: api (model, three edits, undo, measure, recipe), "
                        "kinds (an edit + measurement per edit kind), jobs (importance, heal, memory edits), page (chromium)")
    parser.add_argument("--heal-steps", type=int, default=3)
    parser.add_argument("--job-reps", type=int, default=1)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - PARTS:
        parser.error(f"--parts {args.parts}: choose from {', '.join(sorted(PARTS))}")
    rows, data = [], {}
    for spec in args.models.split(","):
        r, d = bench_model(spec.strip(), args.reps, parts, args.heal_steps, args.job_reps)
        rows += r
        data.update(d)
    headers = ["model", "action", "ui s (median)", "baseline s", "ratio", "goal"]
    if parts != PARTS:  # a partial run updates its own rows and keeps the others of the last run
        rows, data = merged(Path(__file__).with_suffix(".json"), rows, data)
    extra = {"reps": args.reps, "parts": sorted(parts), "heal_steps": args.heal_steps, "job_reps": args.job_reps, "results": data}
    publish(__file__, "mindset ui latency (HTTP on loopback; baseline: the same work called directly)", headers, rows, extra)


if __name__ == "__main__":
    main()
