"""A bounded load test on loopback: 500 requests, 32 at a time, good and bad mixed, against `mindset serve`."""

import asyncio
import json
import random
import time
from pathlib import Path

import httpx
import pytest

from mindset.serve.background import serve_process

REQUESTS, CONCURRENCY = 500, 32
GOOD = {"model": "tiny-llama", "messages": [{"role": "user", "content": "Hello there"}]}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def server_process():
    with serve_process("tiny-llama", "--device", "cpu") as (url, proc):
        yield url, proc


def make_request(kind: str, rng: random.Random) -> dict:
    """(method, path, body bytes, expected: 'ok' | '4xx' | 'disconnect', stream)."""
    body: object = dict(GOOD, max_tokens=rng.randint(1, 12), temperature=rng.choice([0, 0.7]))
    path, stream, expect = "/v1/chat/completions", False, "ok"
    if kind == "stream":
        body["stream"], stream = True, True
    elif kind == "completion":
        path, body = "/v1/completions", {"model": "tiny-llama", "prompt": "Once upon a time", "max_tokens": rng.randint(1, 12)}
    elif kind == "malformed":
        return {"path": path, "content": b'{"model": "tiny-llama", "messages": [{"role"', "expect": "4xx", "stream": False}
    elif kind == "wrong_type":
        body["max_tokens"], expect = rng.choice(["ten", [1], {"a": 1}, -3]), "4xx"
    elif kind == "huge_max_tokens":
        body["max_tokens"], expect = 10**9, "4xx"
    elif kind == "long_prompt":
        body["messages"], expect = [{"role": "user", "content": "z" * 5000}], "4xx"
    elif kind == "logprobs":
        path = "/v1/completions"
        body = {"model": "tiny-llama", "prompt": "Once upon a time", "max_tokens": rng.randint(0, 6), "logprobs": rng.randint(0, 5), "echo": True}
    elif kind == "embedding":
        path, body = "/v1/embeddings", {"model": "tiny-llama", "input": ["Hello there", "Once upon a time"][: rng.randint(1, 2)]}
    elif kind == "disconnect":
        body.update(stream=True, max_tokens=200)
        stream, expect = True, "disconnect"
    return {"path": path, "content": json.dumps(body).encode(), "expect": expect, "stream": stream}


KINDS = ["good"] * 40 + ["stream"] * 15 + ["completion"] * 10 + ["malformed"] * 10 + ["wrong_type"] * 8 + ["huge_max_tokens"] * 7 + ["long_prompt"] * 5 + ["disconnect"] * 5 + ["logprobs"] * 5 + ["embedding"] * 5


async def fire(client: httpx.AsyncClient, url: str, request: dict) -> str | None:
    """Send one request; returns a problem description, or None when it behaved."""
    headers = {"content-type": "application/json"}
    if request["stream"]:
        async with client.stream("POST", url + request["path"], content=request["content"], headers=headers) as response:
            if request["expect"] == "disconnect":
                async for _ in response.aiter_lines():
                    break  # walk away mid-stream
                return None
            lines = [line async for line in response.aiter_lines() if line]
            if response.status_code != 200 or lines[-1] != "data: [DONE]":
                return f"stream failed: {response.status_code} {lines[-3:]}"
            return None
    response = await client.post(url + request["path"], content=request["content"], headers=headers)
    if request["expect"] == "ok":
        key = "data" if request["path"] == "/v1/embeddings" else "choices"
        if response.status_code != 200 or key not in response.json():
            return f"good request failed: {response.status_code} {response.text[:200]}"
    elif not (400 <= response.status_code < 500 and response.json()["error"]["message"]):
        return f"bad request got {response.status_code}: {response.text[:200]}"
    return None


async def hammer(url: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int):
            async with limit:
                return await fire(client, url, make_request(rng.choice(KINDS), rng))

        results = await asyncio.gather(*(one(i) for i in range(n)))
    return [r for r in results if r]


def test_load_mixed_requests(server_process):
    url, proc = server_process
    problems = asyncio.run(asyncio.wait_for(hammer(url, 60, seed=1), timeout=120))  # warm-up
    before = rss_mib(proc.pid)
    started = time.time()
    problems += asyncio.run(asyncio.wait_for(hammer(url, REQUESTS, seed=2), timeout=300))
    elapsed = time.time() - started
    assert not problems, problems[:5]
    deadline = time.time() + 20
    while (health := httpx.get(f"{url}/health").json())["pending"] and time.time() < deadline:
        time.sleep(0.1)
    assert health["status"] == "ok" and health["pending"] == 0 and proc.poll() is None
    growth = rss_mib(proc.pid) - before
    assert growth < 64, f"server memory grew by {growth:.0f} MiB over {REQUESTS} requests"
    print(f"{REQUESTS} requests in {elapsed:.1f} s, memory growth {growth:.1f} MiB")
