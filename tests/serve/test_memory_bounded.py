"""Memory stays bounded over 2,000 requests to an in-process server, and the engine ends up holding nothing:
no rows, no waiting jobs, no kept prefills, no cache, no leases."""

import asyncio
import gc
import json
import random
from pathlib import Path

import httpx
import pytest
from serve_helpers import LiveServer

from mindset.models import load
from mindset.serve import create_app

REQUESTS, WARMUP, CONCURRENCY = 2000, 200, 32
MESSAGES = [{"role": "user", "content": "Hello there"}]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def request(rng: random.Random) -> tuple[str, dict, str]:
    """(path, body, how: 'ok' | 'stream' | 'leave' (a client that walks away mid-stream) | 'bad')."""
    tokens = rng.randint(1, 6)
    chat = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": tokens, "temperature": rng.choice([0, 0.8])}
    kind = rng.choice(["chat"] * 4 + ["stream", "choices", "echo", "embed", "leave", "bad"])
    if kind == "chat":
        return "/v1/chat/completions", chat, "ok"
    if kind == "stream":
        return "/v1/chat/completions", {**chat, "stream": True, "n": rng.randint(1, 3)}, "stream"
    if kind == "choices":
        return "/v1/completions", {"model": "tiny-llama", "prompt": "Once upon a time", "max_tokens": tokens, "n": rng.randint(2, 4)}, "ok"
    if kind == "echo":
        return "/v1/completions", {"model": "tiny-llama", "prompt": "Once upon", "max_tokens": tokens - 1, "logprobs": 2, "echo": True}, "ok"
    if kind == "embed":
        return "/v1/embeddings", {"model": "tiny-llama", "input": ["Hello there", "Once upon a time"]}, "ok"
    if kind == "leave":
        return "/v1/chat/completions", {**chat, "stream": True, "max_tokens": 100, "n": rng.randint(1, 2)}, "leave"
    return "/v1/chat/completions", {**chat, "seed": 2**70}, "bad"


async def fire(client: httpx.AsyncClient, path: str, body: dict, how: str) -> str | None:
    """Send one request; a problem description, or None when it behaved."""
    if how in ("stream", "leave"):
        async with client.stream("POST", path, content=json.dumps(body)) as response:
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                if how == "leave":
                    return None
            ended = response.status_code == 200 and "data: [DONE]" in lines[-2:]
            return None if ended else f"stream: {response.status_code} {lines[-3:]}"
    response = await client.post(path, content=json.dumps(body))
    if how == "bad":
        return None if response.status_code == 400 else f"bad request got {response.status_code}"
    key = "data" if path == "/v1/embeddings" else "choices"
    if response.status_code != 200 or len(response.json()[key]) != body.get("n", 2 if key == "data" else 1):
        return f"{path} got {response.status_code}: {response.text[:200]}"
    return None


async def hammer(url: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, headers={"content-type": "application/json"}) as client:

        async def one():
            async with limit:
                return await fire(client, *request(rng))

        return [p for p in await asyncio.gather(*(one() for _ in range(n))) if p]


def settle(app, timeout: float = 20.0) -> dict:
    """The engine's state once it has nothing pending (cancelled streams finish within a step or two)."""
    import time

    engine = app.state.engine
    deadline = time.time() + timeout
    while (engine.pending or engine.state()["rows"]) and time.time() < deadline:
        time.sleep(0.05)
    return engine.state()


@pytest.mark.slow
def test_memory_and_engine_state_stay_bounded_over_2000_requests():
    app = create_app(load("tiny-llama"), max_pending=256)
    with LiveServer(app) as server:
        problems = asyncio.run(hammer(server.url, WARMUP, seed=0))
        settle(app)
        gc.collect()
        rss = [rss_mib()]
        for half in (1, 2):
            problems += asyncio.run(hammer(server.url, REQUESTS // 2, seed=half))
            state = settle(app)
            gc.collect()
            rss.append(rss_mib())
        users = app.state.pool._entries["tiny-llama"].users
        served = app.state.engine.served
    assert not problems, problems[:5]
    assert set(state.values()) == {0}, state  # no rows, waiting jobs, kept prefills, cache columns, inbox, pending
    assert users == 0  # every lease was released, streams left mid-way too
    assert served > REQUESTS // 2
    growth, second_half = rss[2] - rss[0], rss[2] - rss[1]
    print(f"RSS after warm-up, 1,000 and 2,000 requests: {[round(r, 1) for r in rss]} MiB")
    assert growth < 48 and second_half < 24, f"memory grew {growth:.1f} MiB over {REQUESTS} requests ({second_half:.1f} in the second half): {rss}"
