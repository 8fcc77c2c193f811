"""Several models in one server: tiny-llama and tiny-gpt2 behind one ModelPool — both answer, /v1/models lists both,
a budget that holds one unloads the least recently used idle one (its memory freed) and reloads it on demand,
503 + Retry-After while a model loads, 404 naming the served ids, and the CLI's NAME=SPEC and --memory-budget."""

import itertools
import threading
import time
import weakref
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from serve_helpers import LiveServer, api

from mindset.chat import SamplingParams, generate
from mindset.cli.serve import model_specs
from mindset.errors import MindsetError
from mindset.models import load
from mindset.serve import create_app
from mindset.serve.background import serve_process
from mindset.serve.pool import ModelPool
from mindset.serve.sizes import model_bytes, parse_budget

SPECS = {"llama": "tiny-llama", "gpt2": "tiny-gpt2"}
PROMPT = "Once upon a time"
LLAMA, GPT2 = 411_712, 532_224  # tiny-llama and tiny-gpt2 in fp32: parameters + buffers (checked below)
ONE_OF_THEM = 600_000  # a budget that holds either model, not both


class Loader:
    """load() on the CPU, remembering each model it made (weakly, to see it freed) and able to hold a load on an event."""

    def __init__(self, hold: str | None = None):
        self.made: list[tuple[str, weakref.ref]] = []
        self.hold = hold
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, spec: str):
        if spec == self.hold:
            self.started.set()
            assert self.release.wait(60), "the test never released the held load"
        loaded = load(spec, device="cpu", dtype="float32")
        self.made.append((spec, weakref.ref(loaded.model)))
        return loaded

    def count(self, spec: str) -> int:
        return sum(s == spec for s, _ in self.made)

    def alive(self, spec: str) -> int:
        """How many models this loader made from `spec` are still in memory (after a collection)."""
        import gc

        gc.collect()
        return sum(s == spec and ref() is not None for s, ref in self.made)


def pool_server(loader: Loader, specs=SPECS, **options) -> tuple[ModelPool, LiveServer]:
    pool = ModelPool(specs, load=loader, **options)
    return pool, LiveServer(create_app(pool))


def complete(server, model: str, prompt: str = PROMPT) -> httpx.Response:
    body = {"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0}
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)


def greedy(server, model: str) -> str:
    response = complete(server, model)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model
    return response.json()["choices"][0]["text"]


def states(server) -> dict[str, str]:
    return {m["id"]: m["state"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]}


def local_greedy(spec: str) -> str:
    return generate(load(spec, device="cpu", dtype="float32"), PROMPT, SamplingParams(max_new_tokens=8, temperature=0), chat=False).text


def test_the_model_sizes_are_what_the_budgets_here_assume(tiny_llama, tiny_gpt2):
    assert (model_bytes(tiny_llama.model), model_bytes(tiny_gpt2.model)) == (LLAMA, GPT2)
    assert max(LLAMA, GPT2) <= ONE_OF_THEM < LLAMA + GPT2


def test_both_models_answer_as_they_do_alone_and_are_listed():
    loader = Loader()
    pool, live = pool_server(loader)
    with live as server:
        listed = api(server).models.list().data
        assert [m.id for m in listed] == ["llama", "gpt2"] and not any(m.loaded for m in listed)  # lazy: nothing loaded yet
        assert greedy(server, "llama") == local_greedy("tiny-llama")
        assert greedy(server, "gpt2") == local_greedy("tiny-gpt2")
        chat = api(server).chat.completions.create(model="gpt2", messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0)
        assert chat.model == "gpt2" and chat.usage.completion_tokens == 4
        cards = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
        assert {k: (m["loaded"], m["state"], m["bytes"]) for k, m in cards.items()} == {"llama": (True, "loaded", LLAMA), "gpt2": (True, "loaded", GPT2)}
        assert all(m["load_seconds"] > 0 for m in cards.values())
        assert api(server).models.retrieve("gpt2").id == "gpt2"
        health = httpx.get(f"{server.url}/health").json()
        assert health["models"] == {"llama": "loaded", "gpt2": "loaded"} and health["batching"] == {"llama": True, "gpt2": True}
    assert loader.count("tiny-llama") == loader.count("tiny-gpt2") == 1


def test_a_budget_for_one_unloads_the_idle_one_frees_it_and_reloads_it_with_the_same_answer():
    loader = Loader()
    pool, live = pool_server(loader, budget=ONE_OF_THEM)
    with live as server:
        first = greedy(server, "llama")
        assert states(server) == {"llama": "loaded", "gpt2": "not-loaded"}
        gpt2 = greedy(server, "gpt2")
        assert states(server) == {"llama": "not-loaded", "gpt2": "loaded"}
        assert loader.alive("tiny-llama") == 0, "the unloaded model is still in memory"
        assert pool.loaded_bytes() == GPT2 <= ONE_OF_THEM
        assert greedy(server, "llama") == first  # reloaded on demand, same greedy text
        assert states(server) == {"llama": "loaded", "gpt2": "not-loaded"} and loader.alive("tiny-gpt2") == 0
        assert greedy(server, "gpt2") == gpt2
        samples = httpx.get(f"{server.url}/metrics").text
        assert 'mindset_model_loads_total{model="llama"} 2.0' in samples and "mindset_models_loaded 1.0" in samples
    assert (loader.count("tiny-llama"), loader.count("tiny-gpt2")) == (2, 2)


def test_the_least_recently_used_model_is_the_one_unloaded():
    """Budget for two of three: llama was used after gpt2, so a third model pushes out gpt2, not the first-loaded llama."""
    loader = Loader()
    specs = {**SPECS, "llama1": "tiny-llama@1"}
    pool, live = pool_server(loader, specs, budget=LLAMA + GPT2 + 1000)
    with live as server:
        greedy(server, "llama"), greedy(server, "gpt2"), greedy(server, "llama")
        greedy(server, "llama1")
        assert states(server) == {"llama": "loaded", "gpt2": "not-loaded", "llama1": "loaded"}


def test_a_model_answering_a_request_is_not_unloaded():
    loader = Loader()
    pool, live = pool_server(loader, budget=ONE_OF_THEM, load_wait=30)
    with live as server:
        greedy(server, "llama")
        gate = hold_forward(pool, "llama")
        body = {"model": "llama", "prompt": PROMPT, "max_tokens": 20, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60) as streaming:  # headers came: llama is in use
            refused = complete(server, "gpt2")
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "memory_budget_busy"
            assert int(refused.headers["Retry-After"]) >= 1 and "'llama'" in refused.json()["error"]["message"]
            assert states(server)["llama"] == "loaded"
            gate.set()
            assert sum(1 for line in streaming.iter_lines() if line.startswith("data: ")) > 1
        assert greedy(server, "gpt2")  # the stream ended: llama is idle and gives way
        assert states(server) == {"llama": "not-loaded", "gpt2": "loaded"}


def hold_forward(pool, name: str) -> threading.Event:
    """Make `name`'s forward passes wait until the returned event is set: its requests stay in flight meanwhile."""
    gate = threading.Event()
    model = next(r for r in pool.runners() if r.name == name).loaded.model
    original = model.forward

    def forward(*args, **kwargs):
        assert gate.wait(60), "the test never opened the gate"
        return original(*args, **kwargs)

    model.forward = forward
    return gate


def test_requests_for_a_loading_model_get_503_with_retry_after_and_one_load():
    loader = Loader(hold="tiny-gpt2")
    pool, live = pool_server(loader, load_wait=0.2)
    with live as server:
        before = greedy(server, "llama")
        waiting = complete(server, "gpt2")
        assert loader.started.wait(10)
        assert waiting.status_code == 503 and int(waiting.headers["Retry-After"]) >= 1
        assert waiting.json()["error"]["code"] == "model_loading" and "'gpt2' is loading" in waiting.json()["error"]["message"]
        assert states(server)["gpt2"] == "loading"
        again = [complete(server, "gpt2") for _ in range(3)]
        assert [r.status_code for r in again] == [503] * 3
        assert greedy(server, "llama") == before  # the other model answers meanwhile
        loader.release.set()
        deadline = time.time() + 30
        while states(server)["gpt2"] != "loaded" and time.time() < deadline:
            time.sleep(0.05)
        assert greedy(server, "gpt2") == local_greedy("tiny-gpt2")
    assert loader.count("tiny-gpt2") == 1  # four requests, one loader


def test_a_request_waits_out_a_short_load():
    loader = Loader(hold="tiny-gpt2")
    pool, live = pool_server(loader, load_wait=30)
    with live as server:
        threading.Timer(0.5, loader.release.set).start()
        assert greedy(server, "gpt2") == local_greedy("tiny-gpt2")


def test_an_unknown_model_is_404_naming_the_served_ones():
    pool, live = pool_server(Loader())
    with live as server:
        message = "the model 'gpt-4o' does not exist; this server serves 'llama', 'gpt2'"
        bodies = {"/v1/completions": {"prompt": "hi"}, "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
                  "/v1/embeddings": {"input": "hi"}}
        for path, body in bodies.items():
            response = httpx.post(f"{server.url}{path}", json={"model": "gpt-4o", **body})
            assert response.status_code == 404
            assert response.json() == {"error": {"message": message, "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
        assert httpx.get(f"{server.url}/v1/models/gpt-4o").status_code == 404
        assert states(server) == {"llama": "not-loaded", "gpt2": "not-loaded"}


def test_a_model_bigger_than_the_budget_is_a_clear_error_once():
    loader = Loader()
    pool, live = pool_server(loader, budget=500_000)  # holds llama, not gpt2
    with live as server:
        for _ in range(2):
            response = complete(server, "gpt2")
            assert response.status_code == 503 and response.json()["error"]["code"] == "model_too_large"
            assert "takes 532.2 kB, more than the whole --memory-budget of 500.0 kB" in response.json()["error"]["message"]
        assert greedy(server, "llama")
    assert loader.count("tiny-gpt2") == 1 and loader.alive("tiny-gpt2") == 0
    with pytest.raises(MindsetError, match="more than the whole --memory-budget"):
        ModelPool({"gpt2": None}, preloaded={"gpt2": load("tiny-gpt2")}, budget=500_000)


def test_an_idle_model_is_unloaded_after_its_ttl_and_comes_back():
    loader = Loader()
    pool, live = pool_server(loader, idle_ttl=0.3)
    with live as server:
        first = greedy(server, "llama")
        deadline = time.time() + 20
        while states(server)["llama"] != "not-loaded" and time.time() < deadline:  # loaded, then unloading, then not-loaded
            time.sleep(0.05)
        assert states(server)["llama"] == "not-loaded" and loader.alive("tiny-llama") == 0
        assert greedy(server, "llama") == first


def test_a_model_handed_over_loaded_stays_loaded():
    """An edited model in memory has no spec to reload it from: the budget never unloads it."""
    edited = load("tiny-llama", device="cpu", dtype="float32")
    pool = ModelPool({"edited": None, "gpt2": "tiny-gpt2"}, preloaded={"edited": edited}, load=Loader(), budget=ONE_OF_THEM)
    with LiveServer(create_app(pool)) as server:
        assert greedy(server, "edited")
        response = complete(server, "gpt2")
        assert response.status_code == 503 and response.json()["error"]["code"] == "memory_budget_busy"
        assert states(server) == {"edited": "loaded", "gpt2": "not-loaded"}


def test_unload_frees_an_idle_model_and_keeps_one_handed_over(tiny_llama):
    loader = Loader()
    pool = ModelPool({"edited": None, "gpt2": "tiny-gpt2"}, preloaded={"edited": tiny_llama}, load=loader)
    with LiveServer(create_app(pool)) as server:
        greedy(server, "gpt2")
        assert pool.unload("gpt2") and not pool.unload("gpt2") and not pool.unload("edited")
        assert states(server) == {"edited": "loaded", "gpt2": "not-loaded"} and loader.alive("tiny-gpt2") == 0
        assert httpx.get(f"{server.url}/v1/models/edited").json()["load_seconds"] is None  # handed over loaded


@pytest.mark.parametrize("text,size", [("2GB", 2 * 10**9), ("1.5GiB", 3 * 2**29), ("800 MB", 8 * 10**8), ("512", 512), ("600kB", 600_000), ("3b", 3)])
def test_budget_sizes(text, size):
    assert parse_budget(text) == size


@pytest.mark.parametrize("text", ["lots", "2XB", "-1GB", "0", "1.5 G B", "GB"])
def test_bad_budgets_are_one_line_errors(cli, text):
    code, out, err = cli("serve", "tiny-llama", "--memory-budget", text)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --memory-budget {text!r}: ") and "Traceback" not in out + err


def test_model_specs_read_name_equals_spec():
    assert model_specs(["base=tiny-llama", "tiny-gpt2"]) == {"base": "tiny-llama", "tiny-gpt2": "tiny-gpt2"}
    assert model_specs(["runs/a=b/model"]) == {"runs/a=b/model": "runs/a=b/model"}  # an '=' inside a path is the path's
    assert model_specs(["tiny-llama"], name="m") == {"m": "tiny-llama"}
    for args, name, message in [(["tiny-llama", "tiny-llama"], None, "two models are named 'tiny-llama'"), (["=tiny-llama"], None, "NAME=SPEC"),
                                (["a=tiny-llama", "b=tiny-gpt2"], "m", "--name m names one model"), (["a="], None, "with both parts")]:
        with pytest.raises(MindsetError, match=message):
            model_specs(args, name)


@pytest.mark.parametrize("args,message", [
    (["a=tiny-llama", "b=nosuch-model"], "unknown model 'nosuch-model'"),
    (["tiny-llama", "--idle-ttl", "0"], "--idle-ttl 0: give seconds above 0"),
    (["tiny-llama", "tiny-gpt2", "--name", "x"], "--name x names one model"),
    (["tiny-gpt2", "--memory-budget", "100kB"], "the model 'tiny-gpt2' takes 532.2 kB, more than the whole --memory-budget of 100.0 kB"),
])
def test_cli_errors_are_one_line(cli, args, message):
    code, out, err = cli("serve", *args, "--port", "0")
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in out + err


def test_the_command_keeps_no_reference_to_the_model_it_loaded_first(cli, monkeypatch):
    """`mindset serve` loads its first model itself: once the budget unloads it, its memory must be freed all the same."""
    seen = {}

    def run(app, sock):  # instead of uvicorn on the socket: serve it in a thread, switch models, look
        sock.close()
        first = weakref.ref(app.state.pool.runners()[0].loaded.model)
        with LiveServer(app) as server:
            seen["answer"] = complete(server, "tiny-gpt2").status_code
            seen["states"] = states(server)
        import gc

        gc.collect()
        seen["first freed"] = first() is None

    monkeypatch.setattr("mindset.serve.net.run", run)
    code, _, err = cli("serve", "tiny-llama", "tiny-gpt2", "--memory-budget", "600kB", "--device", "cpu", "--port", "0")
    assert code == 0, err
    assert seen == {"answer": 200, "states": {"tiny-llama": "not-loaded", "tiny-gpt2": "loaded"}, "first freed": True}


def test_the_command_serves_two_models_one_from_a_folder(tmp_path):
    from mindset.models.saving import save

    folder = save(load("tiny-gpt2", device="cpu", dtype="float32"), tmp_path / "gpt2")
    with serve_process("base=tiny-llama", f"edited={folder}", "--memory-budget", "600kB") as (url, _):
        assert [(m["id"], m["loaded"]) for m in httpx.get(f"{url}/v1/models").json()["data"]] == [("base", True), ("edited", False)]
        for model in ("edited", "base"):
            body = {"model": model, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
            reply = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()
            assert reply["choices"][0]["text"] == local_greedy("tiny-llama" if model == "base" else "tiny-gpt2")
        assert [m["loaded"] for m in httpx.get(f"{url}/v1/models").json()["data"]] == [True, False]  # edited gave way to base


# ---------------------------------------------------------------- property-based: random requests across two models under a budget for one

schema_loader = Loader()
schema_pool = ModelPool(SPECS, load=schema_loader, budget=ONE_OF_THEM, load_wait=60)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(schema_pool, max_pending=8))
statuses: Counter = Counter()
calls = itertools.count()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_while_models_come_and_go(case):
    n = next(calls)
    served = None if n % 3 == 0 else ("llama", "gpt2")[n // 6 % 2]  # two thirds name a served model, switching every few cases
    if served and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = served
        for key in ("max_tokens", "max_completion_tokens"):  # long generations (none given: to the context) are test_schemathesis.py's
            if key in case.body and (case.body[key] is None or isinstance(case.body[key], int) and case.body[key] > 8):
                case.body[key] = 8
        if case.path != "/v1/embeddings" and "max_tokens" not in case.body:
            case.body["max_tokens"] = 8
    if served and case.path_parameters and "model" in case.path_parameters:
        case.path_parameters["model"] = served
    response = case.call()
    statuses[(case.path, response.status_code)] += 1
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"


def test_the_property_test_moved_models_in_and_out():
    """The property test above (first, in file order) reached generation on both models, so the budget unloaded and reloaded them."""
    assert statuses[("/v1/completions", 200)] + statuses[("/v1/chat/completions", 200)] > 0, statuses
    assert statuses[("/v1/models/{model}", 200)] > 0 and statuses[("/v1/models/{model}", 404)] > 0, statuses
    assert schema_loader.count("tiny-llama") >= 2 or schema_loader.count("tiny-gpt2") >= 2, schema_loader.made
