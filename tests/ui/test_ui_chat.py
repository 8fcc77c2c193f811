"""/v1 inside the workbench: serve's OpenAI API with the ids `original` and `current`, where `current` is the model
as it is after each edit and undo; the token guards it; the official openai client talks to it; and which memory
entries each token of a reply was predicted with (POST /api/chat/retrieved)."""

import asyncio

import pytest
import torch
from ui_helpers import TOKEN, client_for

from mindset.chat.generation import encode_prompt

MESSAGES = [{"role": "user", "content": "The capital of France is"}]
NOISY = {"op": "widen_ffn", "params": {"add": 32, "init": "split", "noise": 1.0}, "measure": False}


def first_token(api, model: str) -> dict:
    """The first greedy token of `model`'s reply, with its top-5 log-probabilities."""
    body = {"model": model, "messages": MESSAGES, "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 5}
    answer = api.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["logprobs"]["content"][0]


def direct_top5(loaded) -> list[float]:
    """The same numbers from the model itself: log_softmax of its logits after the chat-templated prompt."""
    ids = torch.tensor([encode_prompt(loaded.tokenizer, MESSAGES)])
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits[0, -1]
    return torch.log_softmax(logits.float(), -1).topk(5).values.tolist()


def top5(entry: dict) -> list[float]:
    return [t["logprob"] for t in entry["top_logprobs"]]


def test_v1_lists_exactly_original_and_current(api):
    cards = api.get("/v1/models").json()["data"]
    assert [c["id"] for c in cards] == ["original", "current"] and all(c["loaded"] for c in cards)
    assert api.get("/v1/models/current").json()["id"] == "current"
    missing = api.post("/v1/chat/completions", json={"model": "edited", "messages": MESSAGES, "max_tokens": 1})
    assert missing.status_code == 404 and "'original', 'current'" in missing.json()["error"]["message"]


def test_the_openapi_document_has_v1_beside_api(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/chat/completions", "/api/chat/retrieved", "/api/edits"} <= set(paths)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_v1_without_the_token_is_403(bench, headers):
    client = client_for(bench, auth=False)
    assert client.get("/v1/models", headers=headers).status_code == 403
    answer = client.post("/v1/chat/completions", headers=headers, json={"model": "current", "messages": MESSAGES, "max_tokens": 1})
    assert answer.status_code == 403 and "token" in answer.json()["error"]


def test_current_follows_an_edit_and_an_undo(api, bench):
    before = first_token(api, "current")
    assert top5(before) == top5(first_token(api, "original"))
    torch.testing.assert_close(top5(before), direct_top5(bench.original), atol=1e-4, rtol=0)
    pool = api.app.state.v1.state.pool
    before_engine = next(r for r in pool.runners() if r.name == "current").engine
    assert api.post("/api/edits", json=NOISY).status_code == 200
    edited = first_token(api, "current")
    assert next(r for r in pool.runners() if r.name == "current").engine is not before_engine
    before_engine._thread.join(30)
    assert not before_engine._thread.is_alive()  # the replaced engine stopped once its last answer was done
    torch.testing.assert_close(top5(edited), direct_top5(bench.current), atol=1e-4, rtol=0)  # the edited model, through the engine
    assert max(abs(a - b) for a, b in zip(top5(edited), top5(before))) > 1e-3  # the noisy widening changed it
    assert top5(first_token(api, "original")) == top5(before)  # original stays the loaded model
    assert api.post("/api/undo", json={"measure": False}).status_code == 200
    torch.testing.assert_close(top5(first_token(api, "current")), top5(before), atol=1e-5, rtol=0)
    assert api.post("/api/redo", json={"measure": False}).status_code == 200
    torch.testing.assert_close(top5(first_token(api, "current")), top5(edited), atol=1e-5, rtol=0)


def test_an_answer_streaming_across_an_edit_finishes_on_its_model_and_its_engine_then_stops(bench):
    """ModelPool.replace: a request that began before the swap keeps its engine until its lease ends; then that
    engine stops, and the next request gets the new model's engine."""
    from mindset.ui.chat import EditedModels

    pool = EditedModels(bench)
    pool.attach(lambda name, loaded: Runner(loaded))

    async def scenario():
        held = await pool.acquire("current")
        first = held.runner
        bench.apply(NOISY["op"], NOISY["params"])
        second = (await pool.acquire("current")).runner
        assert second is not first and second.loaded is bench.current and first.loaded is bench.original
        assert first.running and second.running  # the old engine still serves the lease that holds it
        held.release()
        for _ in range(100):
            if not first.running:
                break
            await asyncio.sleep(0.02)
        assert not first.running and second.running
        assert (await pool.acquire("current")).runner is second  # no change, no swap

    asyncio.run(scenario())
    pool.stop()


class Runner:
    def __init__(self, loaded):
        self.loaded, self.running, self.pending = loaded, False, 0

    def start(self):
        self.running = True

    def stop(self):
        self.running = False


def test_the_openai_client_streams_from_both_models(bench):
    from openai import OpenAI

    from mindset.ui.browser import serving

    with serving(bench, TOKEN) as url:
        base = url.split("/?")[0] + "/v1"
        client = OpenAI(base_url=base, api_key=TOKEN, max_retries=0)
        assert [m.id for m in client.models.list()] == ["original", "current"]
        texts = {}
        for model in ("original", "current"):
            chunks = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=6, temperature=0, stream=True, logprobs=True, top_logprobs=5)
            entries = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
            assert len(entries) >= 1 and all(len(e.top_logprobs) == 5 for e in entries)
            texts[model] = [e.token for e in entries]
        assert texts["original"] == texts["current"]  # no edit yet: one model
        with pytest.raises(Exception, match="403"):
            OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()


TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."


def test_retrieved_names_the_entries_each_token_was_predicted_with(api, bench):
    api.post("/api/edits", json={"op": "ffn_to_memory", "params": {"layers": [1], "kind": "associative", "capacity": 64, "k": 4}, "measure": False})
    api.post("/api/edits", json={"op": "memorize", "params": {"text": TEXT}, "measure": False})
    body = {"model": "current", "messages": MESSAGES, "max_tokens": 6, "temperature": 0, "logprobs": True}
    content = api.post("/v1/chat/completions", json=body).json()["choices"][0]["logprobs"]["content"]
    store = bench.current.model.get_submodule("model.layers.1.mlp").store
    hits_before = store.access_count.clone()
    answer = api.post("/api/chat/retrieved", json={"messages": MESSAGES, "tokens": [e["bytes"] for e in content], "top": 4})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["stores"] == [{"path": "model.layers.1.mlp", "kind": "associative"}] and len(got["tokens"]) == len(content)
    assert torch.equal(store.access_count, hits_before)  # re-reading the reply is no use of the memory
    # the layer's own query at each predicting position, caught independently, gives the same entries
    ids = encode_prompt(bench.current.tokenizer, MESSAGES) + token_ids(bench.current, content)[:-1]
    inputs = {}
    module = bench.current.model.get_submodule("model.layers.1.mlp")
    hook = module.register_forward_pre_hook(lambda m, args: inputs.__setitem__("x", args[0][0]))
    with torch.no_grad():
        bench.current.model(input_ids=torch.tensor([ids]))
    hook.remove()
    first = len(ids) - len(content)
    for row in got["tokens"]:
        expected = store.query(inputs["x"][first + row["index"]][None], 4, touch=False).ids[0].tolist()
        assert expected and [e["id"] for e in row["entries"]["model.layers.1.mlp"]] == expected
        assert all(e["source"] and e["source"] in TEXT for e in row["entries"]["model.layers.1.mlp"])


def token_ids(loaded, content) -> list[int]:
    from mindset.ui.retrieved import token_ids as ids_of

    return ids_of(loaded.tokenizer, [bytes(e["bytes"]) for e in content])


def test_retrieved_errors_and_a_model_without_memory(api):
    assert api.post("/api/chat/retrieved", json={"messages": MESSAGES, "tokens": [[72]]}).json()["tokens"] == []  # no memory: nothing read
    bad = api.post("/api/chat/retrieved", json={"messages": MESSAGES, "tokens": [[300]]})
    assert bad.status_code == 422  # a byte is 0 to 255
    api.post("/api/edits", json={"op": "ffn_to_memory", "params": {"layers": [1], "kind": "associative", "capacity": 64, "k": 4}, "measure": False})
    api.post("/api/edits", json={"op": "memorize", "params": {"text": TEXT}, "measure": False})
    assert api.post("/api/chat/retrieved", json={"messages": MESSAGES, "tokens": [[72]]}).json()["stores"][0]["kind"] == "associative"
    assert api.post("/api/chat/retrieved", json={"model": "original", "messages": MESSAGES, "tokens": [[72]]}).json()["stores"] == []
    unknown = api.post("/api/chat/retrieved", json={"messages": MESSAGES, "tokens": [[0xFF, 0xFE, 0xFD, 0xFC]]})
    assert unknown.status_code == 400 and "is no token of this model" in unknown.json()["error"]


@pytest.mark.slow
def test_smollm2_current_after_identity_blocks_answers_as_the_original_and_as_mindset_chat(smollm2, tmp_path):
    """A function-preserving edit: `current` gives the loaded model's greedy text through /v1, and both equal
    `mindset chat`'s own decode loop; a noisy widening then moves `current`'s log-probabilities alone."""
    from mindset.chat.generation import stop_token_ids, stream_steps
    from mindset.chat.sampling import SamplingParams
    from mindset.ui import Workbench

    bench = Workbench(smollm2, tmp_path / "root", autosave=False)
    api = client_for(bench)
    body = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0, "logprobs": True}

    def reply(model: str) -> tuple[str, list[float]]:
        choice = api.post("/v1/chat/completions", json={**body, "model": model}).json()["choices"][0]
        return choice["message"]["content"], [e["logprob"] for e in choice["logprobs"]["content"]]

    ids = encode_prompt(smollm2.tokenizer, MESSAGES)
    steps = stream_steps(smollm2.model, ids, SamplingParams(max_new_tokens=16, temperature=0), stop_token_ids(smollm2.model, smollm2.tokenizer), 16)
    direct = smollm2.tokenizer.decode([t for t, _ in steps], skip_special_tokens=True)
    bench.apply("insert_layers", {"after": 10, "n": 2, "init": "identity"})
    original, current = reply("original"), reply("current")
    assert current[0] == original[0] == direct
    torch.testing.assert_close(current[1], original[1], atol=1e-4, rtol=0)
    bench.apply("widen_ffn", {"layers": [20], "add": 256, "init": "split", "noise": 1.0})  # not an identity block (11, 12): its zero FFN stays zero
    assert reply("original") == original
    assert max(abs(a - b) for a, b in zip(reply("current")[1], original[1])) > 1e-3
