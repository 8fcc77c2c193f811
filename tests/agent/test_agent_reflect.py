"""Reflection with citations: scripted completions stand in for the model, so what is stored is exactly checkable."""

import pytest

from mindset.agent import Agent
from mindset.agent.reflect import EVIDENCE, parse_insight, parse_questions
from mindset.chat import SamplingParams
from mindset.errors import MindsetError

SHORT = SamplingParams(max_new_tokens=4)
FACTS = ["I play the cello", "I play the piano at home", "I live in Lisbon", "my sister is called Ana", "lunch was soup"]


class Scripted:
    """A completion function: questions for the question prompt, an insight citing statements 1 and 2 otherwise."""

    def __init__(self, insight="The user is a musician (because of 1, 2)"):
        self.prompts, self.insight = [], insight

    def __call__(self, prompt, max_tokens):
        self.prompts.append(prompt)
        if "most salient" in prompt:
            return "1. Which instruments does the user play?\n2. Where does the user live?\nthat is all"
        return self.insight


def agent_with(loaded, folder, words, script, **kw):
    agent = Agent(loaded, folder, params=SHORT, embed=words, **kw)
    agent.complete = script
    return agent


def shown_statements(prompt):
    """{number: text} of the numbered statements in a prompt."""
    return {int(n): text for n, _, text in (line.partition(". ") for line in prompt.splitlines()) if n.isdigit()}


def test_a_reflection_stores_insights_citing_the_memories_they_came_from(roomy_llama, tmp_path, words):
    script = Scripted()
    agent = agent_with(roomy_llama, tmp_path, words, script)
    for text in FACTS:
        agent.remember(text)
    evidence = [m.id for _, m in agent.recall("Which instruments does the user play?", k=EVIDENCE)]
    written = agent.reflect()
    assert len(written) == 2 and len(script.prompts) == 3  # questions, then one insight per question
    assert shown_statements(script.prompts[0]) == dict(enumerate(FACTS, 1))  # the recent memories, oldest first
    for memory_id, prompt in zip(written, script.prompts[1:]):
        (memory,) = agent.db.memories([memory_id])
        by_text = {m.text: m.id for m in agent.db.memories(latest=50) if m.id < memory_id}
        shown = shown_statements(prompt)
        assert memory.kind == "reflection" and memory.text == "The user is a musician."
        assert memory.cites == [by_text[shown[1]], by_text[shown[2]]]  # "because of 1, 2": the first two statements it was shown
    (first,) = agent.db.memories([written[0]])
    assert first.cites == evidence[:2] and set(first.cites) == {1, 2}  # the cello and the piano
    table = agent.reply("/memories")
    assert f"| {written[0]} | reflection |" in table and "| 1, 2 | The user is a musician. |" in table
    assert agent.db.read_only_query(f"SELECT cites FROM memories WHERE id = {written[0]}")[1] == [("[1, 2]",)]  # JSON for any SQLite tool


def test_an_insight_without_numbers_cites_everything_it_was_shown(roomy_llama, tmp_path, words):
    agent = agent_with(roomy_llama, tmp_path, words, Scripted(insight="The user likes music"))
    for text in FACTS:
        agent.remember(text)
    evidence = [m.id for _, m in agent.recall("Which instruments does the user play?", k=EVIDENCE)]
    memory = agent.db.memories([agent.reflect()[0]])[0]
    assert memory.cites == evidence and len(evidence) == len(FACTS)


def test_reflection_runs_every_n_memories_and_counts_from_the_last(roomy_llama, tmp_path, words):
    script = Scripted()
    agent = agent_with(roomy_llama, tmp_path, words, script, reflect_every=3)
    agent.reply("I play the cello")
    agent.reply("I live in Lisbon")
    assert agent.db.count("memories") == 2 and not script.prompts
    agent.reply("my sister is called Ana")  # the third memory: reflect
    kinds = [m.kind for m in agent.db.memories(latest=10)]
    assert kinds.count("reflection") == 2 and len(script.prompts) == 3
    agent.reply("lunch was soup")  # one since the last reflection (reflections themselves do not count)
    assert [m.kind for m in agent.db.memories(latest=10)].count("reflection") == 2
    again = agent_with(roomy_llama, tmp_path, words, script, reflect_every=3)  # the count lives in the database
    again.reply("I ride a bicycle")
    assert [m.kind for m in again.db.memories(latest=10)].count("reflection") == 2
    again.reply("I drink tea")
    assert [m.kind for m in again.db.memories(latest=20)].count("reflection") == 4


def test_reflect_command_and_its_bad_values(roomy_llama, tmp_path, words):
    agent = agent_with(roomy_llama, tmp_path, words, Scripted())
    assert agent.reply("/reflect") == "no reflection came of it"  # nothing to reflect on yet
    agent.remember("I play the cello")
    assert agent.reply("/reflect").startswith("reflected: memories ")
    with pytest.raises(MindsetError, match="reflect_every -1 is negative"):
        Agent(roomy_llama, tmp_path, embed=words, reflect_every=-1)


def test_reflection_with_the_real_tiny_model_stores_whatever_it_says_with_citations(roomy_llama, tmp_path, words):
    agent = Agent(roomy_llama, tmp_path, params=SHORT, embed=words)
    for text in FACTS[:3]:
        agent.remember(text)
    for memory in agent.db.memories(agent.reflect()):  # random weights: maybe no question; each insight cites what it saw
        assert memory.kind == "reflection" and memory.cites and all(0 < i < memory.id for i in memory.cites)


def test_parsers():
    assert parse_questions("1. Who?\n- What is it?\n\nok") == ["Who?", "What is it?"]
    assert parse_questions("no questions here") == ["no questions here"]
    assert parse_insight("The user loves music (because of 1, 3, 9)", 4) == ("The user loves music.", [1, 3])
    assert parse_insight("Music matters (1 and 2).", 2) == ("Music matters.", [1, 2])
    assert parse_insight("Nothing cited", 3) == ("Nothing cited", [])
