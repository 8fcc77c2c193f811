"""ModelPool.replace: a model handed over loaded is swapped for another under the same name (the UI's `current`
after an edit). Later requests get the new model's engine; the old engine stops once no request holds it."""

import asyncio

import pytest
from fastapi.testclient import TestClient

from mindset.chat import SamplingParams, generate
from mindset.models import load
from mindset.serve import create_app
from mindset.serve.pool import ModelPool, UnknownModel
from mindset.serve.sizes import model_bytes

PROMPT = "Once upon a time"


def greedy(client, model: str = "m") -> str:
    body = {"model": model, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
    return client.post("/v1/completions", json=body).json()["choices"][0]["text"]


def test_replace_serves_the_new_model_and_stops_the_old_engine(tiny_llama, tiny_gpt2):
    pool = ModelPool({"m": None}, preloaded={"m": tiny_llama})
    with TestClient(create_app(pool)) as client:
        assert greedy(client) == generate(tiny_llama, PROMPT, SamplingParams(max_new_tokens=8, temperature=0), chat=False).text
        old = pool.runners()[0].engine
        pool.replace("m", tiny_gpt2)
        assert greedy(client) == generate(tiny_gpt2, PROMPT, SamplingParams(max_new_tokens=8, temperature=0), chat=False).text
        old._thread.join(30)
        assert not old._thread.is_alive() and pool.runners()[0].engine is not old
        assert [m["bytes"] for m in pool.describe()] == [model_bytes(tiny_gpt2.model)] != [model_bytes(tiny_llama.model)]  # the new size


class Runner:
    def __init__(self, loaded):
        self.loaded, self.running, self.pending = loaded, False, 0

    def start(self):
        self.running = True

    def stop(self):
        self.running = False


def test_a_lease_keeps_the_replaced_runner_until_it_is_released(tiny_llama, tiny_gpt2):
    pool = ModelPool({"m": None}, preloaded={"m": tiny_llama})
    made = []
    pool.attach(lambda name, loaded: made.append(Runner(loaded)) or made[-1])
    pool.start()

    async def scenario():
        held = await pool.acquire("m")
        pool.replace("m", tiny_gpt2)
        assert held.runner is made[0] and made[0].running  # still serving the request that holds it
        fresh = await pool.acquire("m")
        assert fresh.runner is made[1] and fresh.runner.loaded is tiny_gpt2
        held.release()
        for _ in range(100):
            if not made[0].running:
                break
            await asyncio.sleep(0.02)
        assert not made[0].running and made[1].running
        fresh.release()
        assert made[1].running  # released, but not replaced: it goes on serving

    asyncio.run(scenario())
    with pytest.raises(UnknownModel, match="'m'"):
        pool.replace("other", tiny_gpt2)
    assert len(made) == 2  # nothing was made for an unknown name
    pool.stop()


def test_a_replaced_runner_with_no_lease_stops_at_once(tiny_llama, tiny_gpt2):
    pool = ModelPool({"m": None}, preloaded={"m": load("tiny-llama")})
    made = []
    pool.attach(lambda name, loaded: made.append(Runner(loaded)) or made[-1])
    pool.start()
    pool.replace("m", tiny_gpt2)
    for _ in range(100):
        if not made[0].running:
            break
        asyncio.run(asyncio.sleep(0.02))
    assert not made[0].running and made[1].running and pool._leases == {} and pool._retired == {}
    pool.stop()
