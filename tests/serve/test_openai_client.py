"""The official openai client against a live mindset server on localhost."""

import httpx
import openai
import pytest
from serve_helpers import LiveServer, slow_down

from mindset.chat import SamplingParams, generate
from mindset.serve import create_app

MESSAGES = [{"role": "user", "content": "Tell me about Mr. Darcy."}]


def client(server, key="unused"):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def test_chat_completion_matches_local_greedy_generation(served):
    server, loaded = served
    reply = client(server).chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=20, temperature=0)
    local = generate(loaded, MESSAGES[0]["content"], SamplingParams(max_new_tokens=20, temperature=0))
    assert reply.choices[0].message.content == local.text
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 20 and reply.usage.prompt_tokens == local.prompt_tokens


def test_streamed_chat_equals_the_whole_answer(served):
    server, _ = served
    api = client(server)
    whole = api.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=30, temperature=0).choices[0].message.content
    stream = api.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=30, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 30


def test_completions_endpoint_and_stop(served):
    server, loaded = served
    api = client(server)
    sampled = {"max_tokens": 40, "temperature": 1.0, "seed": 2}
    free = api.completions.create(model="tiny-llama", prompt="Once upon a time", **sampled)
    local = generate(loaded, "Once upon a time", SamplingParams(max_new_tokens=40, temperature=1.0, seed=2), chat=False)
    assert free.choices[0].text == local.text
    needle = next(c for c in local.text[2:] if c.isascii() and c.isprintable())
    cut = api.completions.create(model="tiny-llama", prompt="Once upon a time", stop=[needle], **sampled)
    assert cut.choices[0].text == local.text[: local.text.find(needle)] and cut.choices[0].finish_reason == "stop"


def test_sampling_with_a_seed_is_reproducible(served):
    server, _ = served
    api = client(server)
    answers = {
        api.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=15, temperature=1.0, top_p=0.9, seed=7).choices[0].message.content
        for _ in range(2)
    }
    assert len(answers) == 1


def test_models_and_health(served):
    server, _ = served
    assert [m.id for m in client(server).models.list()] == ["tiny-llama"]
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        ({"model": "gpt-4"}, 404, "model_not_found"),
        ({"max_tokens": 100_000}, 400, "context_length_exceeded"),
        ({"messages": [{"role": "user", "content": "x" * 400}]}, 400, "context_length_exceeded"),
        ({"n": 0}, 400, None),  # n > 1 is served (test_choices.py); 0 is out of range
        ({"temperature": 3}, 400, None),
    ],
)
def test_bad_requests_get_openai_errors(served, kwargs, status, code):
    server, _ = served
    request = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 5, **kwargs}
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(**request)
    assert caught.value.status_code == status
    assert caught.value.body["message"] and caught.value.body.get("code") == code


@pytest.mark.parametrize(
    "body,param",
    [
        (b'{"model": "tiny-llama", "messages": [', None),
        (b'{"model": "tiny-llama", "messages": "hello"}', "messages"),
        (b'{"model": "tiny-llama", "messages": [{"role": "wizard", "content": "x"}]}', "messages.0.role"),
        (b'{"model": "tiny-llama", "messages": [], "max_tokens": 5}', "messages"),
        (b'{"model": "tiny-llama", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}', "max_tokens"),
        (b"[1, 2, 3]", None),
    ],
)
def test_malformed_bodies_get_400_in_openai_shape(served, body, param):
    server, _ = served
    response = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"] == param


def test_unknown_route_is_404_in_openai_shape(served):
    server, _ = served
    response = httpx.get(f"{server.url}/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["message"]


def test_api_key_is_required_when_set(tiny_llama):
    with LiveServer(create_app(tiny_llama, api_key="s3cret")) as server:
        for key in ("wrong", ""):
            with pytest.raises(openai.AuthenticationError):
                client(server, key or "x" * 6).models.list()
        assert [m.id for m in client(server, "s3cret").models.list()] == ["tiny-llama"]
        assert httpx.get(f"{server.url}/health").status_code == 200  # liveness stays open


def test_a_client_that_disconnects_stops_its_generation(tiny_llama):
    slow_down(tiny_llama, 0.02)  # ~230 tokens would take ~5 s
    with LiveServer(create_app(tiny_llama)) as server:
        body = {"model": "tiny-llama", "messages": MESSAGES, "stream": True, "temperature": 0}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
            next(response.iter_lines())
        health = _wait_idle(server)
        assert health["served"] == 0  # cancelled, not finished


def test_concurrent_requests_take_turns(tiny_llama):
    """Two streams at once: both get their first text before either finishes."""
    import threading

    slow_down(tiny_llama, 0.01)
    events = []
    with LiveServer(create_app(tiny_llama)) as server:

        def run(name):
            stream = client(server).chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=40, temperature=0, stream=True)
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    events.append((name, "text"))
            events.append((name, "done"))

        threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    first_done = next(i for i, e in enumerate(events) if e[1] == "done")
    assert {"a", "b"} <= {name for name, kind in events[:first_done] if kind == "text"}


def _wait_idle(server, timeout=10.0):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        health = httpx.get(f"{server.url}/health").json()
        if health["pending"] == 0:
            return health
        time.sleep(0.05)
    raise AssertionError("the cancelled generation is still pending")
