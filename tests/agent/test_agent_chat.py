"""The Agent: turns stored and recalled, commands, persistence across instances and processes, the CLI."""

import time

import pytest

from mindset.agent import Agent
from mindset.agent.commands import COMMANDS
from mindset.agent.db import MemoryDB
from mindset.agent.importance import heuristic_importance, parse_rating
from mindset.chat import SamplingParams
from mindset.errors import MindsetError

SHORT = SamplingParams(max_new_tokens=4)


def make(tiny_llama, folder, words, **kw):
    return Agent(tiny_llama, folder, params=SHORT, embed=words, **kw)


def test_a_reply_stores_the_turn_and_an_observation_citing_it(tiny_llama, tmp_path, words):
    agent = make(tiny_llama, tmp_path, words)
    answer = agent.reply("My sister is called Ana")
    messages = agent.db.messages(agent.conversation)
    assert [(m[2], m[3]) for m in messages] == [("user", "My sister is called Ana"), ("assistant", answer)]
    (memory,) = agent.db.memories(latest=5)
    assert memory.text == "My sister is called Ana" and memory.kind == "observation" and memory.sources == [messages[0][0]]
    assert memory.importance == heuristic_importance("My sister is called Ana")  # tiny models rate by the heuristic


def test_recalled_memories_go_into_the_system_prompt_with_their_dates(tiny_llama, tmp_path, words):
    agent = make(tiny_llama, tmp_path, words)
    agent.remember("my cat is called Tom")
    agent.remember("the weather was grey")
    agent.reply("what is my cat called?")
    assert agent.last_recalled[0][1].text == "my cat is called Tom"
    assert "my cat is called Tom" in agent.session.system
    assert time.strftime("%Y-%m-%d", time.gmtime()) in agent.session.system


def test_a_reply_refreshes_the_recency_of_what_it_recalled_and_recall_does_not(tiny_llama, tmp_path, words):
    agent = make(tiny_llama, tmp_path, words, weights=None)
    ids = [agent.remember(text) for text in ("I live in Lisbon", "I work as a nurse", "lunch was soup", "it rained")]
    old = time.time() - 100 * 3600
    agent.db.touch(ids, old)
    agent.index.touch(ids, old)
    agent.recall("where do I live")  # looking (/recall) leaves the times alone
    assert {m.last_accessed for m in agent.db.memories(ids)} == {old}
    agent.reply("where do I live?")
    recalled = {s.id for s, _ in agent.last_recalled}
    assert len(recalled) == 3 and ids[0] in recalled
    for memory in agent.db.memories(ids):
        assert (memory.last_accessed > time.time() - 60) == (memory.id in recalled)


def test_memories_persist_across_agents_and_the_history_is_reloaded(tiny_llama, tmp_path, words):
    first = make(tiny_llama, tmp_path, words)
    first.reply("I was born in Porto")
    first.remember("my favourite colour is green")
    first.close()
    second = make(tiny_llama, tmp_path, words)
    assert second.conversation != first.conversation
    assert second.session.messages[0] == {"role": "user", "content": "I was born in Porto"}
    top = second.recall("what is my favourite colour", k=1)
    assert top[0][1].text == "my favourite colour is green"


def test_commands(tiny_llama, tmp_path, words):
    agent = make(tiny_llama, tmp_path, words)
    assert agent.reply("/remember my dog is Rex") == "remembered as memory 1"
    assert "| 1 | observation |" in agent.reply("/memories") and "my dog is Rex" in agent.reply("/memories")
    table = agent.reply("/recall dog")
    assert table.splitlines()[0] == "| id | score | relevance | recency | importance | rated | text |" and "my dog is Rex" in table
    assert agent.reply("/sql SELECT id, text FROM memories") == "| id | text |\n|---|---|\n| 1 | my dog is Rex |\n(1 row)"
    with pytest.raises(MindsetError, match="DELETE is refused"):
        agent.reply("/sql DELETE FROM memories")
    assert agent.reply("/forget 1") == "forgot memory 1" and agent.db.count("memories") == 0
    with pytest.raises(MindsetError, match="there is no memory 1"):
        agent.reply("/forget 1")
    with pytest.raises(MindsetError, match="not 'x'"):
        agent.reply("/forget x")
    with pytest.raises(MindsetError, match="/remember needs the text"):
        agent.reply("/remember   ")
    assert agent.db.count("messages") == 0  # commands are not conversation


def test_an_unknown_command_answers_with_the_list(tiny_llama, tmp_path, words):
    answer = make(tiny_llama, tmp_path, words).reply("/frobnicate now")
    assert answer.startswith("unknown command /frobnicate; commands:")
    assert all(name in answer for name in COMMANDS)


def test_another_embedder_on_the_same_memories_is_refused(tiny_llama, tmp_path, words):
    make(tiny_llama, tmp_path, words).remember("a fact")
    with pytest.raises(MindsetError, match="was embedded by 'test words', not 'tiny-llama layer 1 mean'"):
        Agent(tiny_llama, tmp_path)


def test_the_default_embedder_reads_the_models_hidden_states(tiny_llama, tmp_path):
    agent = Agent(tiny_llama, tmp_path, params=SHORT)
    vectors = agent.embed(["I live in Lisbon", "I live in Lisbon", "quantum chromodynamics"])
    assert vectors.shape == (3, 64) and (vectors[0] == vectors[1]).all() and not (vectors[0] == vectors[2]).all()
    agent.reply("I live in Lisbon")
    assert agent.recall("I live in Lisbon", k=1)[0][0].cosine == pytest.approx(1.0, abs=1e-5)


def test_the_importance_heuristic_and_the_rating_parser():
    assert heuristic_importance("ok") == 1 and heuristic_importance("thanks!") == 1
    assert heuristic_importance("I am allergic to peanuts since I was 4, my doctor Silva said") > heuristic_importance("the sky is blue")
    assert all(1 <= heuristic_importance(t) <= 10 for t in ("", "x " * 500, "My Name Is Ana and I love 1 2 3 always never"))
    assert parse_rating(" 7") == 7 and parse_rating("Rating: 10/10") == 10 and parse_rating("high") is None


def test_importance_modes_are_checked(tiny_llama, tmp_path, words):
    with pytest.raises(MindsetError, match="importance 'loud' is not one of auto, model, heuristic"):
        make(tiny_llama, tmp_path, words, importance="loud")
    agent = make(tiny_llama, tmp_path, words, importance="model")  # the question overflows tiny-llama's 256 tokens: the heuristic
    assert agent.rate_with_model and agent.importance_of("I live in Lisbon") == heuristic_importance("I live in Lisbon")


def test_cli_chat_with_memory_across_two_runs(cli, tmp_path):
    folder = str(tmp_path / "mem")
    code, out, err = cli("chat", "tiny-llama", "--memory", folder, "--max-new-tokens", "4",
                         stdin="I live in Lisbon\n/memories\n/frob\n/forget abc\n/sql DROP TABLE memories\n/exit\n")
    assert code == 0, err
    assert out.count("bot ›") == 1 and "| 1 | observation |" in out and "unknown command /frob" in out
    assert "/forget needs a memory id" in err and "DROP is refused" in err
    code, out, _ = cli("chat", "tiny-llama", "--memory", folder, "-p", "/sql SELECT role, text FROM messages WHERE role = 'user'")
    assert code == 0 and "| user | I live in Lisbon |" in out


def test_a_process_writes_and_another_reads(tiny_llama, tmp_path, run_python):
    code = "from mindset.cli import main; import sys; sys.argv = ['mindset', *sys.argv[1:]]; main()"
    proc = run_python(code, "chat", "tiny-llama", "--memory", str(tmp_path), "--max-new-tokens", "3", "-p", "My brother lives in Faro")
    assert proc.returncode == 0, proc.stderr
    agent = Agent(tiny_llama, tmp_path, params=SHORT)  # the same default embedder as the child's
    assert agent.recall("My brother lives in Faro", k=1)[0][1].text == "My brother lives in Faro"
    assert MemoryDB(tmp_path).count("messages") == 2


def test_raw_and_memory_do_not_mix(cli, tmp_path):
    code, _, err = cli("chat", "tiny-llama", "--memory", str(tmp_path), "-p", "hi", "--raw")
    assert code == 2 and "--raw cannot be used with --memory" in err


def test_turns_dropped_from_the_context_become_a_summary_citing_them(tiny_llama, tmp_path, words):
    agent = Agent(tiny_llama, tmp_path, params=SamplingParams(max_new_tokens=16), embed=words)
    for i in range(6):  # tiny-llama reads 256 byte tokens: a few turns of this fill it
        agent.reply(f"turn {i}: " + "I like long sentences about my garden and my bicycle. " * 2)
    assert agent.session.dropped_turns > 0
    summaries = [m for m in agent.db.memories(latest=50) if m.kind == "summary"]
    assert summaries and all(m.text.startswith("[SUMMARY] ") for m in summaries)
    cited = sorted(i for m in summaries for i in m.sources)
    stored = [m[0] for m in agent.db.messages(agent.conversation)]
    assert cited == stored[: len(cited)] and len(cited) == 2 * agent.session.dropped_turns  # exactly the dropped turns, in order
    assert agent.reply("/summary").startswith("summarised as memory ")
    (latest,) = agent.db.memories(latest=1)
    assert latest.kind == "summary" and latest.sources == stored
