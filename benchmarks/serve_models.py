"""Two SmolLM2-135M copies in one `mindset serve` under a memory budget that holds one: what switching costs.

    python benchmarks/serve_models.py [--budget 700MB] [--new-tokens 16]

The server runs as `mindset serve a=smollm2-135m b=smollm2-135m --memory-budget BUDGET` in its own process.
Requests go a, b, a, b (greedy, the same prompt): each switch unloads the other copy (least recently used)
and loads the asked one from the GGUF cache. Reported per request: wall time, how long its model's load took (from /v1/models), the models loaded after it
(from /v1/models) and the server's resident memory, which falls back when an unloaded model is freed.
The first load of b measures its size, so it loads before a is unloaded (a brief peak of two); later
switches unload first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", default="700MB")
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    import httpx

    from mindset.serve.background import serve_process

    rows, texts = [], {}
    options = ("b=smollm2-135m", "--memory-budget", args.budget, "--load-wait", "300", "--device", "cpu", "--dtype", "float32")
    with serve_process("a=smollm2-135m", *options, start_timeout=600) as (url, proc):
        rows.append(["(started)", "", "", _loaded(url), round(rss_mib(proc.pid))])
        for model in ["a", "b", "a", "b"]:
            body = {"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}],
                    "max_tokens": args.new_tokens, "temperature": 0}
            started = time.perf_counter()
            reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600).json()
            seconds = time.perf_counter() - started
            texts.setdefault(model, set()).add(reply["choices"][0]["message"]["content"])
            card = httpx.get(f"{url}/v1/models/{model}").json()
            rows.append([model, round(seconds, 2), card["load_seconds"] if switched(rows, model) else "", _loaded(url), round(rss_mib(proc.pid))])
    same = all(len(t) == 1 for t in texts.values()) and texts["a"] == texts["b"]
    publish(__file__, f"two SmolLM2 copies under --memory-budget {args.budget}: each request after a switch reloads (greedy text identical: {same})",
            ["request for", "seconds", "of which loading", "loaded after", "server RSS MiB"], rows, {"budget": args.budget, "identical_greedy_text": same})


def switched(rows: list, model: str) -> bool:
    """Whether this request had to load its model: the one loaded before it was another."""
    return rows[-1][3] != model


def _loaded(url: str) -> str:
    import httpx

    return ",".join(m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"] if m["loaded"])


if __name__ == "__main__":
    main()
