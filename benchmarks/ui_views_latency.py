"""How long the UI's diff view, activation overlay and canary deltas take to answer, over the API.

    python benchmarks/ui_views_latency.py [--model smollm2-135m] [--reps 3] [--canary-limit 8]

On one `mindset ui` app (FastAPI's TestClient, in process: no socket, the same handlers) after the edits the
screenshots make (two identity blocks inserted, heads added, an FFN widened by noisy copies, a layer dropped):
GET /api/diff (computed once per model version, so the first call is timed, then a cached one), POST
/api/activations on a 13-token prompt, and POST /api/measure with the six canary suites at --canary-limit
documents each (the first call also scores the original; later ones reuse it). Median of --reps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

PROMPT = "The capital of France is Paris, and the capital of Italy is"


def timed(call) -> float:
    start = time.perf_counter()
    answer = call()
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--canary-limit", type=int, default=8)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from mindset.models import load
    from mindset.models.anatomy import blocks
    from mindset.ui import Workbench
    from mindset.ui.app import create_app

    loaded = load(args.model, device="cpu", dtype="float32")
    att, n = blocks(loaded.model)[0].attention, len(blocks(loaded.model))
    with tempfile.TemporaryDirectory() as root:
        bench = Workbench(loaded, Path(root), autosave=False)
        for op, params in [("insert_layers", {"after": 1, "n": 2}), ("add_heads", {"layers": [5], "n": att.n_heads // att.n_kv_heads}),
                           ("widen_ffn", {"layers": [8], "add": 256, "init": "split", "noise": 1.0}), ("drop_layers", {"layers": [n - 2]})]:  # fmt: skip
            bench.apply(op, params)
        api = TestClient(create_app(bench, token="bench"), headers={"Authorization": "Bearer bench"})
        rows, data = [], {}
        first_diff = timed(lambda: api.get("/api/diff"))
        cached = statistics.median(timed(lambda: api.get("/api/diff")) for _ in range(args.reps))
        norms = statistics.median(timed(lambda: api.post("/api/activations", json={"prompt": PROMPT})) for _ in range(args.reps))
        body = {"perplexity": False, "canaries": ["canaries"], "canary_limit": args.canary_limit}
        first_canaries = timed(lambda: api.post("/api/measure", json=body))
        canaries = statistics.median(timed(lambda: api.post("/api/measure", json=body)) for _ in range(args.reps))
        for name, value in [("GET /api/diff, first after an edit", first_diff), ("GET /api/diff, cached", cached),
                            ("POST /api/activations (13 tokens)", norms),
                            (f"canary deltas, 6 suites × {args.canary_limit} docs, original scored too", first_canaries),
                            (f"canary deltas, 6 suites × {args.canary_limit} docs, original cached", canaries)]:  # fmt: skip
            rows.append([name, f"{value:.2f}"])
            data[name] = value
    publish(__file__, f"UI views on {args.model} (seconds, median of {args.reps})", ["call", "seconds"], rows, {"model": args.model, "seconds": data})


if __name__ == "__main__":
    main()
