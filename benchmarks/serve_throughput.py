"""Serving overhead: `mindset serve` vs calling `model.generate` in-process (the ceiling), SmolLM2-135M.

    python benchmarks/serve_throughput.py [--clients 1,8] [--new-tokens 48] [--requests 8]

For 1 and 8 concurrent streaming clients (official openai client, greedy, the same prompt and token
budget), measures aggregate tokens/s and median time to first token, against the same number of
requests answered one after another by `model.generate` in this process with no HTTP at all.
The server decodes one token per request per turn (round-robin, batch 1): concurrency buys fairness,
not throughput. Its decode steps use mindset's CPU matrix-vector path, which plain generate does not.

The server runs as `mindset serve` in its own process, as it is deployed. (Inside this process its decode
thread would share OpenMP with the baseline's main thread: with torch's default OpenMP threads, a thread
that starts decoding after the main thread has used OpenMP runs ~35% slower on 2 cores, which measures
the host, not the server.)
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper."


def in_process(loaded, n_requests: int, new_tokens: int) -> dict:
    from mindset.chat import encode_prompt

    ids = torch.tensor([encode_prompt(loaded.tokenizer, PROMPT)])
    ttft, tokens = [], 0
    start = time.perf_counter()
    for _ in range(n_requests):
        t0 = time.perf_counter()
        with torch.inference_mode():
            loaded.model.generate(ids, max_new_tokens=1, do_sample=False)
        ttft.append(time.perf_counter() - t0)
        with torch.inference_mode():
            out = loaded.model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
        tokens += out.shape[1] - ids.shape[1]
    elapsed = time.perf_counter() - start - sum(ttft)  # the first-token probes are not part of the throughput run
    return {"tokens_per_s": tokens / elapsed, "ttft_s": median(ttft)}


def served(url: str, clients: int, n_requests: int, new_tokens: int) -> dict:
    import openai

    api = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
    ttft, counts, lock = [], [], threading.Lock()
    todo = list(range(n_requests))

    def client() -> None:
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            t0 = time.perf_counter()
            first, n = None, 0
            stream = api.chat.completions.create(
                model="smollm2-135m",
                messages=[{"role": "user", "content": PROMPT}],
                max_tokens=new_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - t0
                if chunk.usage:
                    n = chunk.usage.completion_tokens
            with lock:
                ttft.append(first or 0.0)
                counts.append(n)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"tokens_per_s": sum(counts) / (time.perf_counter() - start), "ttft_s": median(ttft), "tokens": sum(counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--requests", type=int, default=8, help="requests per measurement")
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from mindset.models import load
    from mindset.serve.background import serve_process

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    rows, data = [], {"in_process": {}, "served": {}}
    with serve_process("smollm2-135m", "--device", "cpu", "--dtype", "float32", start_timeout=300) as (url, _):
        for clients in (int(c) for c in args.clients.split(",")):
            # the baseline runs right before each measurement, so drift in machine speed hits both alike
            baseline = data["in_process"][clients] = in_process(loaded, args.requests, args.new_tokens)
            result = data["served"][clients] = served(url, clients, args.requests, args.new_tokens)
            rows.append(
                [
                    f"{clients} client(s), {args.requests} requests",
                    f"{baseline['tokens_per_s']:.1f}",
                    f"{result['tokens_per_s']:.1f}",
                    f"{result['tokens_per_s'] / baseline['tokens_per_s']:.2f}x",
                    f"{baseline['ttft_s'] * 1000:.0f}",
                    f"{result['ttft_s'] * 1000:.0f}",
                ]
            )
    publish(
        __file__,
        f"SmolLM2-135M, greedy, {args.new_tokens} tokens per request: mindset serve vs in-process model.generate",
        ["load", "generate tok/s", "serve tok/s", "serve / generate", "generate TTFT ms", "serve TTFT ms (median)"],
        rows,
        data | {"args": vars(args)},
    )


if __name__ == "__main__":
    main()
