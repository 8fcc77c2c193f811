"""End to end on the real SmolLM2-135M: a fact told in one session is recalled and answered in the next."""

import pytest

from mindset.agent import Agent
from mindset.chat import SamplingParams

pytestmark = pytest.mark.slow
GREEDY = SamplingParams(max_new_tokens=24)


def test_a_fact_from_the_first_session_answers_a_question_in_the_second(smollm2, tmp_path):
    first = Agent(smollm2, tmp_path / "mem", params=GREEDY)
    for text in ("My cat is called Tom.", "Can you tell me a joke?", "How do I boil an egg?"):
        first.reply(text)
    first.close()
    second = Agent(smollm2, tmp_path / "mem", params=GREEDY, reload=0)  # no history: only memory carries the fact
    answer = second.reply("What is my cat called?")
    assert second.last_recalled[0][1].text == "My cat is called Tom."
    assert "Tom" in answer
    control = Agent(smollm2, tmp_path / "empty", params=GREEDY).reply("What is my cat called?")
    assert "Tom" not in control  # without the memory the model cannot know
