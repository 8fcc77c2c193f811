"""Canary suites: small reasoning skills that later training must not break.

| task | form | chance |
|---|---|---|
| modus_ponens | two rules and a fact; which consequence follows (2 choices) | acc 1/2 |
| syllogisms | two premises over nonsense words; does the conclusion follow (Yes/No, half valid) | acc 1/2 |
| negation | "Is 7 greater than 3?": two true and two false statements, half negated (TruthfulQA mc2) | mc2 1/2 |
| copying | repeat a sequence of 5-8 digits (generation, exact match) | 0 |
| counting | how often a word occurs in a list of 5-9 words (choices 1-5) | acc 1/5 |
| ordering | which of four orderings of three numbers is increasing | acc 1/4 |

Every document is drawn from the seed; answers are balanced across choices where the form allows.
"""

from __future__ import annotations

import itertools
import random

NAMES = ["Anna", "Boris", "Carla", "Dev", "Elif", "Felix", "Gina", "Hugo", "Ines", "Jack"]
CAUSES = ["rings the bell", "opens the window", "lights the lamp", "plays the drum", "waters the plant", "closes the door", "turns the key", "presses the button"]
EFFECTS = ["the dog barks", "the bird sings", "the clock stops", "the light turns green", "the cat wakes up", "the gate opens", "the kettle whistles", "the baby laughs"]
WORDS = ["wugs", "blickets", "daxes", "feps", "zorbs", "tufas", "glims", "snerps", "mibs", "quoks", "vents", "lorps"]
COUNT_WORDS = ["cat", "dog", "sun", "tree", "cup", "hat", "fish", "book"]


def modus_ponens(rnd: random.Random) -> dict:
    name = rnd.choice(NAMES)
    c1, c2 = rnd.sample(CAUSES, 2)
    e1, e2 = rnd.sample(EFFECTS, 2)
    fired = rnd.randrange(2)
    fact = (c1, c2)[fired]
    text = f"If {name} {c1}, {e1}. If {name} {c2}, {e2}. {name} {fact}."
    return {"premises": text, "choices": [f" {e1}.", f" {e2}."], "label": fired}


def syllogism(rnd: random.Random) -> dict:
    a, b, c = rnd.sample(WORDS, 3)
    if rnd.randrange(2) == 0:  # Barbara: valid
        premises, valid = f"All {a} are {b}. All {b} are {c}.", True
    elif rnd.randrange(2) == 0:  # undistributed middle: invalid
        premises, valid = f"All {a} are {b}. All {c} are {b}.", False
    else:  # illicit conversion: invalid
        premises, valid = f"All {b} are {a}. All {b} are {c}.", False
    return {"premises": premises, "conclusion": f"all {a} are {c}", "label": 0 if valid else 1}


def negation(rnd: random.Random) -> dict:
    a, b = rnd.sample(range(1, 100), 2)
    big, small = max(a, b), min(a, b)
    if a > b:
        true = [f"Yes, {a} is greater than {b}.", f"{b} is not greater than {a}."]
        false = [f"No, {a} is not greater than {b}.", f"{b} is greater than {a}."]
    else:
        true = [f"No, {a} is not greater than {b}.", f"{a} is smaller than {b}."]
        false = [f"Yes, {a} is greater than {b}.", f"{small} is not smaller than {big}."]
    return {"question": f"Is {a} greater than {b}?", "mc2_targets": {"choices": true + false, "labels": [1, 1, 0, 0]}}


def copying(rnd: random.Random) -> dict:
    digits = " ".join(str(rnd.randrange(10)) for _ in range(rnd.randint(5, 8)))
    return {"sequence": digits}


def counting(rnd: random.Random) -> dict:
    target, *others = rnd.sample(COUNT_WORDS, 4)
    count = rnd.randint(1, 5)
    words = [target] * count + [rnd.choice(others) for _ in range(rnd.randint(max(0, 5 - count), 9 - count))]
    rnd.shuffle(words)
    return {"words": " ".join(words), "word": target, "label": count - 1}


def ordering(rnd: random.Random) -> dict:
    numbers = rnd.sample(range(1, 100), 3)
    increasing = tuple(sorted(numbers))
    wrong = [p for p in itertools.permutations(numbers) if p != increasing]
    options = rnd.sample(wrong, 3) + [increasing]
    rnd.shuffle(options)
    choices = [" " + ", ".join(str(n) for n in p) for p in options]
    return {"numbers": ", ".join(str(n) for n in numbers), "choices": choices, "label": options.index(increasing)}


def _mc(text: str, choices, target, chance: float, shots: int = 3) -> dict:
    return {
        "output_type": "multiple_choice",
        "num_fewshot": shots,
        "doc_to_text": text,
        "doc_to_choice": choices,
        "doc_to_target": target,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}, {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"chance": {"acc": chance, "acc_norm": chance}},
    }


CANARIES = {
    # name: (document generator, lm-eval task keys)
    "modus_ponens": (modus_ponens, {**_mc("{{premises}}\nTherefore,", "choices", "label", 0.5), "target_delimiter": ""}),
    "syllogisms": (syllogism, _mc("{{premises}}\nQuestion: Does it follow that {{conclusion}}?\nAnswer:", ["Yes", "No"], "label", 0.5)),
    "negation": (
        negation,
        {
            "output_type": "multiple_choice",
            "num_fewshot": 0,
            "doc_to_text": "Q: {{question}}\nA:",
            "doc_to_choice": "{{mc2_targets.choices}}",
            "doc_to_target": 0,
            "process_results": "!function utils.process_results_mc2",
            "metric_list": [{"metric": "mc2", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"chance": {"mc2": 0.5}},
        },
    ),
    "copying": (
        copying,
        {
            "output_type": "generate_until",
            "num_fewshot": 3,
            "doc_to_text": "Copy the digits exactly.\nDigits: {{sequence}}\nCopy:",
            "doc_to_target": "{{sequence}}",
            "generation_kwargs": {"until": ["\n"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 24},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
            "filter_list": [{"name": "none", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
            "metadata": {"chance": {"exact_match": 0.0}},
        },
    ),
    "counting": (counting, _mc('Words: {{words}}\nQuestion: How many times does the word "{{word}}" appear?\nAnswer:', ["1", "2", "3", "4", "5"], "label", 0.2)),
    "ordering": (ordering, {**_mc("Numbers: {{numbers}}\nQuestion: What are these numbers in increasing order?\nAnswer:", "choices", "label", 0.25), "target_delimiter": ""}),
}


def generate(name: str, seed: int, n_test: int = 200, n_train: int = 50) -> tuple[list[dict], list[dict]]:
    make = CANARIES[name][0]
    rnd = random.Random(f"{name}:{seed}")
    seen, rows = set(), []
    for _ in range(50 * (n_train + n_test)):
        if len(rows) == n_train + n_test:
            break
        row = make(rnd)
        key = repr(row)
        if key not in seen:  # no document in both splits
            seen.add(key)
            rows.append(row)
    return rows[:n_train], rows[n_train:]
