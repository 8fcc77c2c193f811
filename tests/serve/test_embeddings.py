"""/v1/embeddings: the vectors the map computes, through the official openai client and plain HTTP."""

import base64

import httpx
import numpy as np
import openai
import pytest
import torch
from serve_helpers import LiveServer, api, slow_down

from mindset.map.encode import encode_items, resolve_layer, tokenize_item
from mindset.serve import create_app

TEXTS = ["The capital of France is Paris.", "hi", "A much longer sentence, so the batch needs padding to hold it."]


def map_vectors(loaded, texts, layer=None):
    """What `mindset map` places for these texts as prompts."""
    tokenized = [tokenize_item(loaded.tokenizer, t) for t in texts]
    vectors, _, _ = encode_items(loaded, tokenized, resolve_layer(loaded.model, layer))
    return vectors


@pytest.mark.parametrize("layer", [None, 1, 0])
def test_embeddings_are_the_maps_encodings(tiny_served, layer):
    server, loaded = tiny_served
    extra = {} if layer is None else {"layer": layer}
    reply = api(server).embeddings.create(model=loaded.name, input=TEXTS, extra_body=extra)  # the client asks for base64
    got = np.array([d.embedding for d in reply.data], dtype=np.float32)
    np.testing.assert_array_equal(got, map_vectors(loaded, TEXTS, layer))
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert reply.usage.prompt_tokens == sum(len(tokenize_item(loaded.tokenizer, t).ids) for t in TEXTS)


def test_float_and_base64_and_token_ids_agree(served):
    server, loaded = served
    url = f"{server.url}/v1/embeddings"
    floats = httpx.post(url, json={"model": "tiny-llama", "input": TEXTS[0]}).json()
    encoded = httpx.post(url, json={"model": "tiny-llama", "input": TEXTS[0], "encoding_format": "base64"}).json()
    ids = tokenize_item(loaded.tokenizer, TEXTS[0]).ids
    by_ids = httpx.post(url, json={"model": "tiny-llama", "input": [ids]}).json()
    vector = np.array(floats["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4"), vector)
    np.testing.assert_array_equal(np.array(by_ids["data"][0]["embedding"], dtype=np.float32), vector)
    assert floats["object"] == "list" and floats["data"][0]["object"] == "embedding" and floats["model"] == "tiny-llama"
    assert floats["usage"] == {"prompt_tokens": len(ids), "total_tokens": len(ids)}


def test_mean_pooling_averages_every_tokens_state(served):
    server, loaded = served
    reply = httpx.post(f"{server.url}/v1/embeddings", json={"model": "tiny-llama", "input": TEXTS, "pooling": "mean", "layer": 2}).json()
    for text, item in zip(TEXTS, reply["data"]):
        ids = torch.tensor([tokenize_item(loaded.tokenizer, text).ids])
        with torch.no_grad():  # one text alone, no padding: an independent path to the same states
            states = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states[2][0]
        np.testing.assert_allclose(item["embedding"], states.mean(0).numpy(), atol=1e-5)


def test_normalize_gives_unit_vectors(served):
    server, _ = served
    reply = httpx.post(f"{server.url}/v1/embeddings", json={"model": "tiny-llama", "input": TEXTS, "normalize": True}).json()
    norms = [np.linalg.norm(d["embedding"]) for d in reply["data"]]
    assert norms == pytest.approx([1.0] * len(TEXTS), abs=1e-5)


@pytest.mark.parametrize(
    "fields,status,needle",
    [
        ({"input": ""}, 400, "empty string"),
        ({"input": []}, 400, "empty"),
        ({"input": [[]]}, 400, "empty list"),
        ({"input": "hi", "layer": 99}, 400, "layer 99"),
        ({"input": "hi", "dimensions": 3}, 400, "dimensions 3"),
        ({"input": [1, 10**6]}, 400, "token id 1000000"),
        ({"input": "z" * 400}, 400, "at most"),
        ({"input": "hi", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": "hi", "pooling": "max"}, 400, "pooling"),
        ({"input": "hi", "model": "text-embedding-3-small"}, 404, "does not exist"),
    ],
)
def test_bad_embedding_requests_get_openai_errors(served, fields, status, needle):
    server, _ = served
    response = httpx.post(f"{server.url}/v1/embeddings", json={"model": "tiny-llama", **fields})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"


def test_embeddings_need_the_api_key(tiny_llama):
    with LiveServer(create_app(tiny_llama, api_key="s3cret")) as server:
        with pytest.raises(openai.AuthenticationError):
            api(server).embeddings.create(model="tiny-llama", input="hi")


def test_embeddings_count_against_max_pending(tiny_llama):
    slow_down(tiny_llama, 0.02)
    with LiveServer(create_app(tiny_llama, max_pending=1)) as server:
        body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 200, "temperature": 0}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
            lines = response.iter_lines()  # held: a dropped iterator closes the stream, which cancels the generation
            next(lines)
            busy = httpx.post(f"{server.url}/v1/embeddings", json={"model": "tiny-llama", "input": "hi"})
            assert "content" in next(line for line in lines if line)  # the generation went on
    assert busy.status_code == 429 and busy.json()["error"]["type"] == "rate_limit_error"


def test_an_embedding_between_decode_steps_leaves_the_generation_alone(tiny_llama):
    """The worker leaves the fast decode path for the embedding and returns to it: the streamed text is unchanged."""
    import threading

    slow_down(tiny_llama, 0.01)
    messages = [{"role": "user", "content": "Tell me about Mr. Darcy."}]
    with LiveServer(create_app(tiny_llama)) as server:
        alone = api(server).chat.completions.create(model="tiny-llama", messages=messages, max_tokens=40, temperature=0).choices[0].message.content
        vectors = []
        stream = api(server).chat.completions.create(model="tiny-llama", messages=messages, max_tokens=40, temperature=0, stream=True)
        worker = threading.Thread(target=lambda: vectors.append(api(server).embeddings.create(model="tiny-llama", input=TEXTS)))
        parts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                if len(parts) == 3:
                    worker.start()
        worker.join(timeout=30)
    assert "".join(parts) == alone
    np.testing.assert_array_equal(np.array([d.embedding for d in vectors[0].data], dtype=np.float32), map_vectors(tiny_llama, TEXTS))
