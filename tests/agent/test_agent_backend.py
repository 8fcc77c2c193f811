"""--backend: replies from an OpenAI-compatible server (a real `mindset serve` of tiny-llama, in-process) while the
memory stays local; an unreachable or failing server is a one-line error that leaves the memory as it was."""

import copy

import pytest

from mindset.agent import Agent
from mindset.agent.backend import Backend
from mindset.agent.db import MemoryDB
from mindset.chat import SamplingParams
from mindset.errors import MindsetError
from mindset.serve import create_app
from mindset.serve.background import BackgroundServer

GREEDY = SamplingParams(max_new_tokens=8)
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture
def served(tiny_llama):
    """(url, a separate copy of the same model): the server's model and the agent's do not share state."""
    with BackgroundServer(create_app(copy.deepcopy(tiny_llama), model_name="tiny-served", api_key="secret")) as server:
        yield server.url, tiny_llama


def test_replies_come_from_the_server_and_equal_the_local_models(served, tmp_path, words):
    url, loaded = served
    backend = Backend(url + "/v1", key="secret")
    assert backend.model == "tiny-served" and backend.base == url + "/v1"  # the first model the server lists
    remote = Agent(loaded, tmp_path / "remote", params=GREEDY, embed=words, backend=backend)
    local = Agent(loaded, tmp_path / "local", params=GREEDY, embed=words)
    for agent in (remote, local):
        agent.remember("my cat is called Tom")
    streamed = []
    answers = [remote.reply("what is my cat called?", on_text=streamed.append), local.reply("what is my cat called?")]
    assert remote.session.system == local.session.system and "my cat is called Tom" in remote.session.system
    assert answers[0] == answers[1] and "".join(streamed) == answers[0]  # the same greedy tokens, streamed
    rows = remote.db.messages(remote.conversation)
    assert [(r[2], r[3]) for r in rows] == [("user", "what is my cat called?"), ("assistant", answers[0])]


def test_summaries_and_reflections_ask_the_backend(served, tmp_path, words, monkeypatch):
    url, loaded = served
    backend = Backend(url, key="secret")
    asked = []
    original = backend.complete
    monkeypatch.setattr(backend, "complete", lambda prompt, n: asked.append(prompt) or original(prompt, n))
    agent = Agent(loaded, tmp_path, params=GREEDY, embed=words, backend=backend)
    agent.reply("I live in Lisbon")
    agent.reply("/summary")
    assert len(asked) == 1 and "I live in Lisbon" in asked[0]


def test_an_unreachable_backend_is_one_line_and_the_memory_is_intact(tiny_llama, tmp_path, words, served):
    with pytest.raises(MindsetError, match=r"^the backend http://127.0.0.1:9/v1 cannot be reached .*\(the memory is unchanged\)$") as err:
        Backend(NOWHERE)
    assert "\n" not in str(err.value)
    url, loaded = served
    with BackgroundServer(create_app(loaded, model_name="short-lived")) as server:  # a server that goes away mid-chat
        agent = Agent(loaded, tmp_path, params=GREEDY, embed=words, backend=Backend(server.url))
        agent.reply("I live in Lisbon")
    before = (agent.db.count("messages"), agent.db.count("memories"), list(agent.session.messages))
    with pytest.raises(MindsetError, match="cannot be reached"):
        agent.reply("I work as a nurse")
    assert (agent.db.count("messages"), agent.db.count("memories"), agent.session.messages) == before


def test_server_errors_are_one_line(served):
    url, _ = served
    with pytest.raises(MindsetError, match=r"answered 401 to /models"):
        Backend(url, key="wrong")
    backend = Backend(url, model="no-such-model", key="secret")
    with pytest.raises(MindsetError, match=r"answered 404 to /chat/completions: .*no-such-model") as err:
        backend.chat([{"role": "user", "content": "hi"}], GREEDY)
    assert "\n" not in str(err.value)
    with pytest.raises(MindsetError, match="is not an http:// or https:// URL"):
        Backend("localhost:8000")


def test_cli_backend(cli, served, tmp_path):
    url, _ = served
    folder = tmp_path / "mem"
    code, out, err = cli("chat", "tiny-llama", "--memory", str(folder), "--backend", url, "--backend-key", "secret",
                         "--max-new-tokens", "4", "-p", "I live in Lisbon")
    assert code == 0, err
    db = MemoryDB(folder)
    assert db.count("messages") == 2 and db.memories(latest=1)[0].text == "I live in Lisbon"
    code, out, err = cli("chat", "tiny-llama", "--memory", str(folder), "--backend", NOWHERE, "-p", "I work as a nurse")
    assert code == 2 and "cannot be reached" in err and len(err.strip().splitlines()) == 1
    assert db.count("messages") == 2 and db.count("memories") == 1  # untouched
    code, _, err = cli("chat", "tiny-llama", "--backend", url, "-p", "hi")
    assert code == 2 and "give a memory folder" in err
