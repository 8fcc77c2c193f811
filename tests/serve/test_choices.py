"""n > 1: several choices for one prompt, prefilled once, decoded as rows of the batch, in OpenAI's shapes."""

import asyncio

import httpx
import openai
import pytest
from serve_helpers import LiveServer, api
from test_batched_engine import answer, assert_batch1, job

from mindset.chat import SamplingParams, generate
from mindset.serve import create_app
from mindset.serve.engine import Engine, Job
from mindset.serve.protocol import MAX_CHOICES

MESSAGES = [{"role": "user", "content": "Tell me about Mr. Darcy."}]


def count_prefills(loaded) -> list[tuple[int, int]]:
    """Record the (batch, tokens) shape of every forward that reads more than one token per row: the prefills."""
    shapes, model = [], loaded.model
    original = model.forward

    def forward(*args, **kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:
            shapes.append(tuple(ids.shape))
        return original(*args, **kwargs)

    model.forward = forward
    return shapes


def test_greedy_choices_all_equal_batch1_greedy_and_usage_counts_the_prompt_once(served):
    server, loaded = served
    reply = api(server).chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=20, temperature=0, n=3)
    local = generate(loaded, MESSAGES[0]["content"], SamplingParams(max_new_tokens=20, temperature=0))
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert [c.message.content for c in reply.choices] == [local.text] * 3
    assert reply.usage.prompt_tokens == local.prompt_tokens and reply.usage.completion_tokens == 3 * 20
    assert reply.usage.total_tokens == local.prompt_tokens + 60


def test_sampled_choices_are_reproducible_and_choice_i_samples_with_seed_plus_i(served):
    server, loaded = served
    client, sampled = api(server), {"max_tokens": 15, "temperature": 1.0, "top_p": 0.9}
    texts = [[c.text for c in client.completions.create(model="tiny-llama", prompt="Once upon a time", n=3, seed=11, **sampled).choices]
             for _ in range(2)]
    assert texts[0] == texts[1] and len(set(texts[0])) == 3  # the same request, the same choices; the choices differ
    for i, text in enumerate(texts[0]):
        alone = generate(loaded, "Once upon a time", SamplingParams(max_new_tokens=15, temperature=1.0, top_p=0.9, seed=11 + i), chat=False)
        assert text == alone.text


def test_streamed_choices_carry_their_index_and_equal_the_whole_answer(served):
    server, _ = served
    client, kwargs = api(server), {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 12, "temperature": 0.8, "seed": 3, "n": 2}
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    texts, finishes, roles = ["", ""], [None, None], []
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        texts[choice.index] += choice.delta.content or ""
        finishes[choice.index] = choice.finish_reason or finishes[choice.index]
        roles += [choice.index] if choice.delta.role else []
    assert sorted(roles) == [0, 1] and finishes == ["length", "length"]
    assert texts == [c.message.content for c in whole.choices]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 24


def test_echoed_prompt_logprobs_come_with_every_choice(served):
    server, _ = served
    body = {"model": "tiny-llama", "prompt": "Once upon a time", "max_tokens": 4, "logprobs": 2, "echo": True, "temperature": 0}
    one = httpx.post(f"{server.url}/v1/completions", json=body, timeout=60).json()["choices"][0]
    both = httpx.post(f"{server.url}/v1/completions", json={**body, "n": 2}, timeout=60).json()["choices"]
    assert [c["text"] for c in both] == [one["text"]] * 2
    for choice in both:
        assert choice["logprobs"]["tokens"] == one["logprobs"]["tokens"]
        assert choice["logprobs"]["token_logprobs"][1:] == pytest.approx(one["logprobs"]["token_logprobs"][1:], abs=1e-5)
        assert choice["logprobs"]["text_offset"] == one["logprobs"]["text_offset"]


@pytest.mark.parametrize("n", [0, -1, MAX_CHOICES + 1])
def test_n_out_of_range_is_an_openai_400(served, n):
    server, _ = served
    with pytest.raises(openai.BadRequestError) as caught:
        api(server).chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=2, n=n)
    assert caught.value.body["param"] == "n" and str(1 if n < 1 else MAX_CHOICES) in caught.value.body["message"]


def test_n_beyond_the_servers_queue_is_a_400_not_an_endless_429(tiny_llama):
    with LiveServer(create_app(tiny_llama, max_pending=4)) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "tiny-llama", "messages": MESSAGES, "n": 5}, timeout=30)
        assert response.status_code == 400 and response.json()["error"]["param"] == "n"
        assert "--max-pending" in response.json()["error"]["message"]


def test_n_choices_prefill_their_prompt_once_even_when_they_join_over_several_steps(tiny_llama):
    """Four choices, room for two rows: two decode, two wait for a free row; all four read one prefill."""
    engine = Engine(tiny_llama, max_batch=2)
    specs = [job(tiny_llama, 37, SamplingParams(max_new_tokens=m, temperature=0.9, seed=s)) for m, s in ((4, 1), (9, 2), (6, 3), (5, 4))]
    prefills = count_prefills(tiny_llama)

    async def main():
        loop = asyncio.get_running_loop()
        jobs = [Job(loop=loop, logprobs=3, **spec) for spec in specs]
        engine.submit_all(jobs)
        return [await answer(j) for j in jobs]

    engine.start()
    try:
        answers = asyncio.run(asyncio.wait_for(main(), timeout=120))
    finally:
        engine.stop()
    assert prefills == [(1, 37)]
    for got, spec in zip(answers, specs):
        assert_batch1(tiny_llama, got, spec)
    assert engine.state()["prefilled"] == 0 and engine.state()["rows"] == 0 and engine.pending == 0


def test_an_http_request_for_n_choices_prefills_once(tiny_llama):
    prefills = count_prefills(tiny_llama)
    with LiveServer(create_app(tiny_llama)) as server:
        reply = api(server).chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=5, temperature=1.0, n=6)
        assert len(reply.choices) == 6 and len(prefills) == 1 and prefills[0][0] == 1


def test_round_robin_engine_serves_n_choices_too(tiny_llama):
    with LiveServer(create_app(tiny_llama, batching=False)) as server:
        reply = api(server).chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=10, temperature=0, n=2)
    local = generate(tiny_llama, MESSAGES[0]["content"], SamplingParams(max_new_tokens=10, temperature=0))
    assert [c.message.content for c in reply.choices] == [local.text] * 2


def test_one_failing_choice_fails_the_request_and_cancels_the_others(tiny_llama):
    """Choice 1's sampler cannot start (a seed torch rejects, set past the API's check): the request is a 500 and
    the engine ends up empty, its other choices cancelled."""
    engine = Engine(tiny_llama)
    from mindset.serve.responses import Choices, collect_choices

    class Request:
        async def is_disconnected(self):
            return False

    async def main():
        loop = asyncio.get_running_loop()
        specs = [job(tiny_llama, 12, SamplingParams(max_new_tokens=200, temperature=1.0, seed=s)) for s in (1, 2**65, 3)]
        choices = Choices([Job(loop=loop, **spec) for spec in specs])
        engine.submit_all(choices.jobs)
        with pytest.raises(Exception) as caught:
            await collect_choices(Request(), choices)
        for _ in range(500):
            if engine.pending == 0:
                break
            await asyncio.sleep(0.01)
        return caught.value

    engine.start()
    try:
        error = asyncio.run(asyncio.wait_for(main(), timeout=60))
    finally:
        engine.stop()
    assert error.status == 500 and "Overflow" in error.body["error"]["message"]
    assert engine.pending == 0 and engine.state()["rows"] == 0
