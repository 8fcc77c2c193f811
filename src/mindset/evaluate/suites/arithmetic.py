"""Arithmetic word problems in GSM8K's format, scored exactly like GSM8K.

Each answer shows its working and ends with `#### N`. One- and two-step problems (addition, subtraction,
multiplication, exact division) over small numbers, with names and objects drawn from the seed. Scoring is
lm-eval's gsm8k task: `exact_match` after the strict filter (the number after `#### `) and the flexible
filter (the last number in the output), ignoring case, commas, `$`, a final period, and everything up to
`#### ` in the reference. Chance: about 0.
"""

from __future__ import annotations

import random

NAMES = ["Ava", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells", "cards", "balloons"]
CHANCE = {"exact_match,strict-match": 0.0, "exact_match,flexible-extract": 0.0}


def problem(rnd: random.Random) -> dict:
    name, item = rnd.choice(NAMES), rnd.choice(ITEMS)
    kind = rnd.randrange(5)
    if kind == 0:
        a, b = rnd.randint(2, 60), rnd.randint(2, 40)
        q = f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?"
        r, work = a + b, f"{name} has {a} + {b} = {a + b} {item} now."
    elif kind == 1:
        a = rnd.randint(10, 90)
        b = rnd.randint(1, a - 1)
        q = f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} does {name} have left?"
        r, work = a - b, f"{name} has {a} - {b} = {a - b} {item} left."
    elif kind == 2:
        a, b = rnd.randint(2, 12), rnd.randint(2, 12)
        q = f"{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy in total?"
        r, work = a * b, f"{name} buys {a} * {b} = {a * b} {item}."
    elif kind == 3:
        each, friends = rnd.randint(2, 12), rnd.randint(2, 9)
        total = each * friends
        q = f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?"
        r, work = each, f"Each friend gets {total} / {friends} = {each} {item}."
    else:
        a, b = rnd.randint(5, 50), rnd.randint(2, 30)
        c = rnd.randint(1, a + b - 1)
        q = f"{name} has {a} {item}, buys {b} more, and then gives away {c}. How many {item} does {name} have now?"
        r, work = a + b - c, f"{name} first has {a} + {b} = {a + b} {item}. After giving away {c}, {name} has {a + b} - {c} = {a + b - c} {item}."
    return {"question": q, "answer": f"{work}\n#### {r}"}


def generate(seed: int, n_test: int = 200, n_train: int = 50) -> tuple[list[dict], list[dict]]:
    rnd = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < n_train + n_test:
        row = problem(rnd)
        if row["question"] not in seen:  # the same problem never sits in both splits
            seen.add(row["question"])
            rows.append(row)
    return rows[:n_train], rows[n_train:]


TASK = {
    "output_type": "generate_until",
    "num_fewshot": 3,
    "doc_to_text": "Question: {{question}}\nAnswer:",
    "doc_to_target": "{{answer}}",
    "metric_list": [
        {
            "metric": "exact_match",
            "aggregation": "mean",
            "higher_is_better": True,
            "ignore_case": True,
            "ignore_punctuation": False,
            "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"],
        }
    ],
    # GSM8K stops at "Question:"; "\n\n" (the few-shot delimiter) also ends an answer, and saves decoding time
    "generation_kwargs": {"until": ["Question:", "</s>", "<|im_end|>", "\n\n"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 64},
    "filter_list": [
        {"name": "strict-match", "filter": [{"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)"}, {"function": "take_first"}]},
        {"name": "flexible-extract", "filter": [{"function": "regex", "group_select": -1, "regex_pattern": "(-?[$0-9.,]{2,})|(-?[0-9]+)"}, {"function": "take_first"}]},
    ],
}
