"""Where recalled memories go (agent.layout), editing a memory (Agent.edit) and paging the database (MemoryDB.page)."""

import pytest

from mindset.agent import Agent
from mindset.agent.db import Memory, MemoryDB
from mindset.agent.layout import LAYOUTS, place
from mindset.chat import SamplingParams
from mindset.errors import MindsetError

SHORT = SamplingParams(max_new_tokens=4)
CAT = Memory(1, "my cat is called Tom", "observation", 0.0, 0.0, 5, [])


def test_each_layout_puts_the_memories_in_its_place():
    for layout in LAYOUTS:
        system, user = place(layout, "SYS", [CAT], "what is my cat called?")
        assert system.startswith("SYS") and user.endswith("what is my cat called?")
        inside = system if layout.startswith("system") else user
        outside = user if layout.startswith("system") else system
        assert "my cat is called Tom" in inside and "Tom" not in outside
    assert "1970-01-01" in place("system", "SYS", [CAT], "q")[0] and "1970" not in place("system-facts", "SYS", [CAT], "q")[0]
    assert all(place(layout, "SYS", [], "q") == ("SYS", "q") for layout in LAYOUTS)


def test_the_user_layout_reaches_the_prompt_and_the_history_keeps_the_users_words(tiny_llama, tmp_path, words, monkeypatch):
    agent = Agent(tiny_llama, tmp_path, params=SHORT, embed=words, layout="user")
    agent.remember("my cat is called Tom")
    prompts = []
    fit = agent.session._fit_context
    monkeypatch.setattr(agent.session, "_fit_context", lambda: prompts.append(fit()) or prompts[-1])
    agent.reply("what is my cat called?")
    prompt = tiny_llama.tokenizer.decode(prompts[0])
    assert "Things I told you earlier:\n- my cat is called Tom\n\nwhat is my cat called?" in prompt
    assert "Tom" not in agent.session.system
    assert agent.session.messages[-2] == {"role": "user", "content": "what is my cat called?"}
    assert [m[3] for m in agent.db.messages(agent.conversation)][0] == "what is my cat called?"
    agent.reply("and my sister?")
    assert "Things I told you earlier" not in tiny_llama.tokenizer.decode(agent.session._fit_context()).split("what is my cat called?")[0]


def test_an_unknown_layout_is_refused(tiny_llama, tmp_path, words):
    with pytest.raises(MindsetError, match="memory layout 'side' is not one of system, system-facts, user, user-answer"):
        Agent(tiny_llama, tmp_path, embed=words, layout="side")


def test_an_edit_re_embeds_the_text_and_keeps_the_recency(tiny_llama, tmp_path, words):
    agent = Agent(tiny_llama, tmp_path, params=SHORT, embed=words)
    cat = agent.remember("my cat is called Tom")
    agent.remember("my dog is called Rex")
    before = agent.db.memories([cat])[0].last_accessed
    edited = agent.edit(cat, text="my parrot is called Kiwi", importance=9)
    assert (edited.text, edited.importance, edited.last_accessed) == ("my parrot is called Kiwi", 9, before)
    assert agent.recall("parrot Kiwi", 1)[0][1].id == cat
    assert agent.db.lexical("Tom")[0].tolist() == [] and agent.db.lexical("Kiwi")[0].tolist() == [cat]
    agent.edit(cat, importance=2)
    assert agent.index.importance[agent.index.ids == cat].tolist() == [2.0] and agent.index.n == 2
    other = Agent(tiny_llama, tmp_path, params=SHORT, embed=words)  # another process's view of the file
    assert other.recall("parrot Kiwi", 1)[0][1].importance == 2
    other.close()
    for kwargs, match in (({"text": " "}, "new text is empty"), ({"importance": 0}, "importance 0 is outside 1..10")):
        with pytest.raises(MindsetError, match=match):
            agent.edit(cat, **kwargs)
    with pytest.raises(MindsetError, match="there is no memory 99"):
        agent.edit(99, importance=3)


def test_pages_of_memories_by_each_order(tmp_path, tiny_llama, words):
    agent = Agent(tiny_llama, tmp_path, params=SHORT, embed=words)
    ids = [agent.remember(f"memory number {i}") for i in range(5)]
    for i, memory_id in enumerate(ids):
        agent.edit(memory_id, importance=10 - i)
    agent.db.touch([ids[3]])
    db = MemoryDB(tmp_path)
    assert [m.id for m in db.page(0, 2, "importance")] == ids[:2]
    assert [m.id for m in db.page(2, 2, "importance")] == ids[2:4]
    assert [m.id for m in db.page(0, 5, "created", descending=False)] == ids
    assert db.page(0, 1, "last_accessed")[0].id == ids[3]
    with pytest.raises(MindsetError, match="sort memories by one of id, created, last_accessed, importance"):
        db.page(0, 5, "text; DROP TABLE memories")
    assert db.update_memory(999, importance=3) is False
    db.close()


def test_cli_memory_layout_reaches_the_agents_prompt(cli, tmp_path, monkeypatch):
    import mindset.agent.agent as agent_module

    used = []
    real_place = agent_module.place
    monkeypatch.setattr(agent_module, "place", lambda layout, *rest: used.append(layout) or real_place(layout, *rest))
    folder = str(tmp_path / "mem")
    code, _, err = cli("chat", "tiny-llama", "--memory", folder, "--max-new-tokens", "2", "-p", "/remember my cat is called Tom")
    assert code == 0, err
    code, _, err = cli("chat", "tiny-llama", "--memory", folder, "--memory-layout", "user-answer", "--max-new-tokens", "2", "-p", "my cat?")
    assert code == 0, err
    assert used and set(used) == {"user-answer"}
    used.clear()
    code, _, err = cli("chat", "tiny-llama", "--memory", folder, "--max-new-tokens", "2", "-p", "my cat?")
    assert code == 0 and used and set(used) == {"system"}  # without the option: the default layout


def test_cli_memory_layout_errors(cli, tmp_path):
    code, out, err = cli("chat", "tiny-llama", "--memory", str(tmp_path / "mem"), "--memory-layout", "side", "-p", "hi")
    assert code == 2 and err.strip().splitlines() == [
        "error: --memory-layout: Input should be 'system', 'system-facts', 'user' or 'user-answer', not 'side'"]
    assert not (tmp_path / "mem").exists()  # refused before the model or the folder is touched
    code, _, err = cli("chat", "tiny-llama", "--memory-layout", "user", "-p", "hi")
    assert code == 2 and "--memory-layout work with --memory DIR" in err
