import re

import pytest

from mindset.errors import MindsetError
from mindset.evaluate.suites import SUITES, TASKS, arithmetic, canaries, capitals, expand, write_task
from mindset.evaluate.taskfile import load_task
from mindset.evaluate.tasks import Task


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_is_reproducible_split_cleanly_and_readable(name, tmp_path):
    train, test = TASKS[name].generate(0, 60)
    assert (train, test) == TASKS[name].generate(0, 60)
    assert TASKS[name].generate(1, 60) != (train, test)
    assert train and test and not {repr(r) for r in train} & {repr(r) for r in test}
    assert TASKS[name].chance  # every task documents its chance level
    task = Task(load_task(write_task(name, tmp_path, n_test=60)))
    assert len(task.docs) == len(test)
    task.check()  # every prompt, choice list and target renders
    assert set(TASKS[name].chance) == {m.metric if name != "arithmetic" else f"{m.metric},{f.name}" for m in task.spec.metrics for f in task.spec.filters}


def test_capitals_are_right_and_the_answer_is_among_four():
    assert capitals.CAPITALS["Kenya"] == "Nairobi" and capitals.CAPITALS["Australia"] == "Canberra"
    train, test = capitals.generate(0)
    assert len(train) + len(test) == len(capitals.CAPITALS)
    for row in train + test:
        country = row["country"].removeprefix("the ")
        assert len(set(row["choices"])) == 4 and row["choices"][row["label"]] == capitals.CAPITALS[country]


def test_arithmetic_answers_are_correct():
    _, test = arithmetic.generate(0, 100)
    for row in test:
        steps = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", row["answer"])
        assert steps
        for a, op, b, result in steps:
            assert eval(f"{a} {op} {b}") == int(result)  # noqa: S307 - digits and one operator
        assert row["answer"].endswith(f"#### {steps[-1][3]}")


def test_canary_answers_are_correct_and_balanced():
    _, test = canaries.generate("counting", 0, 200)
    assert all(row["words"].split().count(row["word"]) == row["label"] + 1 for row in test)
    _, test = canaries.generate("ordering", 0, 200)
    for row in test:
        gold = [int(x) for x in row["choices"][row["label"]].split(",")]
        assert gold == sorted(gold)
    _, test = canaries.generate("modus_ponens", 0, 200)
    for row in test:
        fact = row["premises"].split(". ")[-1]
        rule = next(r for r in row["premises"].split(". ") if r.startswith("If") and r.split(", ")[0].endswith(fact.split(" ", 1)[1].rstrip(".")))
        assert row["choices"][row["label"]].strip().rstrip(".") == rule.split(", ")[1].rstrip(".")
    assert 0.4 < sum(r["label"] for r in test) / len(test) < 0.6
    _, test = canaries.generate("negation", 0, 200)
    for row in test:
        a, b = map(int, re.findall(r"\d+", row["question"]))
        truths = [c for c, label in zip(row["mc2_targets"]["choices"], row["mc2_targets"]["labels"]) if label]
        assert (a > b) == truths[0].startswith("Yes")


def test_names_expand_and_unknown_names_suggest():
    assert expand(["canaries", "capitals", "negation"]) == SUITES["canaries"] + ["capitals"]
    with pytest.raises(MindsetError, match="did you mean 'capitals'"):
        expand(["capitols"])
