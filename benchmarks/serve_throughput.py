"""Serving throughput under concurrency: `mindset serve` round-robin vs batched vs llama.cpp's llama-server, SmolLM2-135M f32.

    python benchmarks/serve_throughput.py [--clients 1,8,32] [--new-tokens 64] [--min-requests 4] [--servers rr,batched,llama] [--threads 2]

For each number of concurrent streaming clients (official openai client, greedy, `max_tokens` new tokens,
each request a different prompt), measures aggregate tokens/s and time to first token (median, p95) for
(a) `mindset serve --no-batching` (round-robin, batch 1), (b) `mindset serve` (continuous batching) and
(c) llama.cpp's `llama-server` on mindset's own f32 GGUF export of the same model (built and cached by
benchmarks/llamacpp.py), every server limited to THREADS threads. Each measurement sends
max(clients, MIN_REQUESTS) requests. All three get the very same prompt tokens: the chat template is applied
once, here, and the ids go to /v1/completions (so neither server's template or tokenizer can differ).
The script also checks the answers: per prompt, whether each server's greedy text equals batched mindset's.

Servers run one at a time, each in its own process, as deployed; a warm-up request precedes each.
Not run by pytest. On a shared machine the numbers swing: report them as measured under that load.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

MODEL = "smollm2-135m"
TOPICS = [
    "a lighthouse keeper", "the history of Rome", "why the sky is blue", "baking bread at home", "how a bicycle works",
    "the planet Mars", "a cat who learned to read", "the causes of the French revolution", "learning to play the violin",
    "a city built under the sea", "how vaccines train the immune system", "an old map found in an attic",
]
SERVER_NAMES = {"rr": "round-robin", "batched": "batched", "llama": "llama-server"}  # the first two are mindset serve


def prompts(tokenizer, n: int) -> list[list[int]]:
    """Chat-templated prompt ids, one per topic, cycled to n."""
    from mindset.chat import encode_prompt

    ids = [encode_prompt(tokenizer, f"Write a short text about {topic}.") for topic in TOPICS]
    return [ids[i % len(ids)] for i in range(n)]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def one_request(api, model: str, prompt: list[int], new_tokens: int) -> tuple[float, int, str]:
    """(seconds to the first text, tokens made, text) of one streamed greedy completion."""
    t0 = time.perf_counter()
    first, chunks, usage, parts = None, 0, None, []
    stream = api.completions.create(
        model=model, prompt=prompt, max_tokens=new_tokens, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            first = first if first is not None else time.perf_counter() - t0
            chunks += 1
            parts.append(chunk.choices[0].text)
        if getattr(chunk, "usage", None):
            usage = chunk.usage.completion_tokens
    return first if first is not None else time.perf_counter() - t0, usage if usage is not None else chunks, "".join(parts)


def load(url: str, model: str, clients: int, requests: list[list[int]], new_tokens: int) -> dict:
    """`clients` threads take requests from a shared list until it is empty; aggregate tokens/s over the wall time."""
    import openai

    api = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=1200)
    todo, lock, results = list(enumerate(requests)), threading.Lock(), {}

    def client() -> None:
        while True:
            with lock:
                if not todo:
                    return
                index, prompt = todo.pop(0)
            results[index] = one_request(api, model, prompt, new_tokens)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    ttft = [results[i][0] for i in sorted(results)]
    tokens = sum(results[i][1] for i in results)
    return {
        "tokens_per_s": tokens / elapsed, "ttft_median_s": statistics.median(ttft), "ttft_p95_s": p95(ttft),
        "tokens": tokens, "seconds": elapsed, "texts": [results[i][2] for i in sorted(results)],
    }


@contextmanager
def running_llama_server(binary: Path, gguf: Path, threads: int, options: list[str]):
    """llama-server `binary` on `gguf`, on a free loopback port, with `options` after the common flags; yields its
    base URL once healthy, and on exit terminates it (kills it after 30 s). agent_llama.py starts it here too."""
    from mindset.serve.background import free_port, stop_process, wait_healthy

    port = free_port()
    command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads), "-tb", str(threads), *options]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log, 300, "llama-server")
            yield url
        finally:
            stop_process(process)


@contextmanager
def llama_server(gguf: Path, threads: int, slots: int, ctx_per_slot: int):
    """llama-server on a free loopback port with `slots` parallel sequences (continuous batching is its default)."""
    from llamacpp import tools

    binary = tools("llama-server")["llama-server"]
    with running_llama_server(binary, gguf, threads, ["-np", str(slots), "-c", str(slots * ctx_per_slot), "--no-warmup"]) as url:
        yield url, binary


@contextmanager
def server(kind: str, gguf: Path | None, args, slots: int, ctx_per_slot: int):
    """(url, model name) of the server `kind` ("rr", "batched", "llama"), running for the block."""
    from mindset.serve.background import serve_process

    if kind == "llama":
        with llama_server(gguf, args.threads, slots, ctx_per_slot) as (url, _):
            yield url, MODEL
        return
    options = ["--device", "cpu", "--dtype", "float32", "--max-pending", str(max(64, 2 * slots))]
    with serve_process(MODEL, *options, *(["--no-batching"] if kind == "rr" else []), start_timeout=300) as (url, _):
        yield url, MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--min-requests", type=int, default=4, help="requests per measurement: max(clients, this)")
    parser.add_argument("--servers", default="rr,batched,llama", help="comma-separated, of rr, batched, llama")
    parser.add_argument("--threads", type=int, default=2, help="threads of every server (OMP_NUM_THREADS for mindset, -t for llama-server)")
    parser.add_argument("--out", default=None, help="JSON path (default: next to this script)")
    args = parser.parse_args()
    os.environ.setdefault("COLUMNS", "200")  # the table is wide; rich reads this
    os.environ.update({"TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)})
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from mindset.models import load as load_model

    counts = [int(c) for c in args.clients.split(",")]
    kinds = [k for k in args.servers.split(",") if k]
    unknown = set(kinds) - set(SERVER_NAMES)
    if unknown:
        raise SystemExit(f"unknown server(s) {sorted(unknown)}; choose from rr, batched, llama")
    loaded = load_model(MODEL, device="cpu", dtype="float32")
    workload = {c: prompts(loaded.tokenizer, max(c, args.min_requests)) for c in counts}
    ctx_per_slot = max(len(p) for p in workload[max(counts)]) + args.new_tokens + 16
    data: dict = {"servers": {}, "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        gguf = None
        if "llama" in kinds:
            from mindset.export import export_gguf

            gguf = Path(export_gguf(loaded, Path(tmp) / "smollm2-f32.gguf", "f32", modelfile=False)["gguf"])
        for kind in kinds:
            with server(kind, gguf, args, max(counts), ctx_per_slot) as (url, model):
                load(url, model, 1, workload[counts[0]][:1], 4)  # warm-up
                data["servers"][kind] = {c: load(url, model, c, workload[c], args.new_tokens) for c in counts}
                for c, r in data["servers"][kind].items():
                    print(f"{kind} {c} clients: {r['tokens_per_s']:.1f} tok/s, TTFT {r['ttft_median_s']:.2f} / {r['ttft_p95_s']:.2f} s", flush=True)
    rows = table_rows(data, counts, kinds)
    data["same_text_as_batched"] = agreement(data, counts, kinds)
    title = f"{MODEL} f32, greedy, {args.new_tokens} new tokens, {args.threads} threads: aggregate tok/s and TTFT (median / p95 ms)"
    headers = ["clients", *(f"{SERVER_NAMES[k]} tok/s" for k in kinds), *ratio_headers(kinds), *(f"{SERVER_NAMES[k]} TTFT ms" for k in kinds)]
    out = publish(__file__, title, headers, rows, data)
    if args.out:
        Path(out).replace(args.out)
    for kind, agree in data["same_text_as_batched"].items():
        print(f"{SERVER_NAMES[kind]}: greedy text equal to mindset batched's on {agree['same']}/{agree['prompts']} prompts")


def ratio_headers(kinds: list[str]) -> list[str]:
    pairs = [("batched", "rr"), ("batched", "llama")]
    return [f"{SERVER_NAMES[a]} / {SERVER_NAMES[b]}" for a, b in pairs if a in kinds and b in kinds]


def table_rows(data: dict, counts: list[int], kinds: list[str]) -> list[list[str]]:
    rows = []
    for c in counts:
        got = {k: data["servers"][k][c] for k in kinds}
        ratios = [f"{got[a]['tokens_per_s'] / got[b]['tokens_per_s']:.2f}x" for a, b in (("batched", "rr"), ("batched", "llama")) if a in got and b in got]
        ttft = [f"{got[k]['ttft_median_s'] * 1000:.0f} / {got[k]['ttft_p95_s'] * 1000:.0f}" for k in kinds]
        rows.append([f"{c} ({got[kinds[0]]['tokens']} tok)", *(f"{got[k]['tokens_per_s']:.1f}" for k in kinds), *ratios, *ttft])
    return rows


def agreement(data: dict, counts: list[int], kinds: list[str]) -> dict:
    """Per server, on how many (load, request) pairs its greedy text equals batched mindset's (or, without it, round-robin's)."""
    reference = "batched" if "batched" in kinds else kinds[0]
    result = {}
    for kind in kinds:
        if kind == reference:
            continue
        pairs = [(a, b) for c in counts for a, b in zip(data["servers"][kind][c]["texts"], data["servers"][reference][c]["texts"])]
        differ = [{"server": a, reference: b} for a, b in pairs if a != b]
        result[kind] = {"prompts": len(pairs), "same": len(pairs) - len(differ), "reference": reference, "first_differences": differ[:3]}
    return result


if __name__ == "__main__":
    main()
