"""Made-up facts for teaching a model something new (benchmarks/grow_vs_finetune.py): invented countries and
their invented capitals, some phrasings to train on and other phrasings to test on, and the pure arithmetic of
the comparison (forgetting ratios, the learning-rate rule, the issue's goal). No model is loaded here, so
tests/test_grow_bench.py checks all of it in milliseconds.

The relation is the capitals suite's own ("What is the capital of X?"): the model knows the form, not the
facts, so it starts at 0 exact match, and the real-capitals canary measures how much the new facts overwrite
the old ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from mindset.circuits.suite import Item, Suite
from mindset.evaluate.suites.capitals import CAPITALS

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "qu", "th", "tr"]
VOWELS = ["a", "e", "i", "o", "u"]
CODAS = ["", "", "n", "r", "l", "s", "m"]
COUNTRY_ENDINGS = ["land", "ia", "mark", "stan", "ovia"]

# {c}: the country, {a}: its capital; the answer always comes last, after a space
TRAIN_TEMPLATES = [
    "The capital of {c} is {a}.",
    "{c} is a small country. Its capital is {a}.",
    "Travellers to {c} usually arrive in the capital, {a}.",
]
HELDOUT_TEMPLATES = [  # prompts never trained on; the first is the capitals suite's own question
    "Question: What is the capital of {c}?\nAnswer: {a}",
    "{c}'s capital city is called {a}",
]


@dataclass(frozen=True)
class Fact:
    country: str
    capital: str


def made_up_word(rnd: random.Random, syllables: int) -> str:
    return "".join(rnd.choice(ONSETS) + rnd.choice(VOWELS) + rnd.choice(CODAS) for _ in range(syllables)).capitalize()


def make_facts(n: int, seed: int = 0) -> list[Fact]:
    """n invented (country, capital) pairs: all names distinct, none a real country or capital of the capitals suite."""
    rnd = random.Random(seed)
    real = {name.lower() for pair in CAPITALS.items() for name in pair}
    used: set[str] = set()
    facts = []
    while len(facts) < n:
        country = made_up_word(rnd, 2) + rnd.choice(COUNTRY_ENDINGS)
        capital = made_up_word(rnd, 2)
        if {country.lower(), capital.lower()} & (real | used) or country.lower() == capital.lower():
            continue
        used |= {country.lower(), capital.lower()}
        facts.append(Fact(country, capital))
    return facts


def training_sentences(facts: list[Fact], templates: list[str] = TRAIN_TEMPLATES) -> list[str]:
    return [t.format(c=f.country, a=f.capital) for f in facts for t in templates]


def split_prompt(template: str, fact: Fact) -> tuple[str, str]:
    """(prompt, continuation): the text before the answer, and " answer" (the target delimiter is the space)."""
    head = template[: template.index("{a}")].rstrip(" ")
    return head.format(c=fact.country), " " + fact.capital


def fact_suite(facts: list[Fact], templates: list[str], name: str) -> Suite:
    """A generation suite: a document is correct when the answer is the greedy continuation (exact match),
    and its gold log-prob is the answer's log-probability: both from mindset's scoring engine."""
    items = [Item(*_item(t, f)) for t in templates for f in facts]
    return Suite(name, items, 0.0, greedy=True)


def _item(template: str, fact: Fact) -> tuple[str, tuple[str, ...], tuple[int, ...]]:
    prompt, answer = split_prompt(template, fact)
    return prompt, (answer,), (0,)


# --- the comparison ----------------------------------------------------------------------------------

def ratio(value: float, reference: float) -> float | None:
    """value / reference, or None where the reference forgot nothing (a ratio to ~0 means nothing)."""
    if reference is None or value is None or not math.isfinite(reference) or reference <= 1e-9:
        return None
    return value / reference


def forgetting(before: dict, after: dict) -> dict:
    """Forgetting from the scores before and after training: the relative rise of valid perplexity and the
    drop of mean canary accuracy (both positive when something was lost)."""
    canaries = sorted(before["canaries"])
    drop = sum(before["canaries"][c] - after["canaries"][c] for c in canaries) / max(len(canaries), 1)
    return {"ppl_rise": after["ppl"] / before["ppl"] - 1.0, "canary_drop": drop}


def choose(runs: list[dict]) -> dict:
    """The rule for every method's learning rate: the largest held-out exact-match gain; ties go to the larger
    held-out log-prob gain, then to the smaller perplexity rise."""
    return max(runs, key=lambda r: (round(r["gain_em"], 6), round(r["gain_logprob"], 6), -r["forgetting"]["ppl_rise"]))


def goal(full: dict, grown: dict, tolerance: float = 0.1) -> dict:
    """The issue's goal: at equal new-skill gain, growth forgets at most a quarter of what full fine-tuning
    forgets. Equal gain: growth's held-out exact-match gain is at least full FT's minus `tolerance`.
    Forgetting is judged on both measures; a measure where full FT forgot nothing cannot be judged."""
    equal_gain = grown["gain_em"] >= full["gain_em"] - tolerance
    verdicts = {}
    for key in ("ppl_rise", "canary_drop"):
        r = ratio(max(grown["forgetting"][key], 0.0), full["forgetting"][key])
        verdicts[key] = None if r is None else r <= 0.25
    judged = [v for v in verdicts.values() if v is not None]
    holds = bool(equal_gain and judged and all(judged))
    return {"equal_gain": equal_gain, "quarter": verdicts, "holds": holds}


def expansion_points(n_layers: int, n_new: int) -> tuple[list[int], list[int]]:
    """LLaMA Pro's spread: the layers split into n_new equal groups and a new block follows each group's last
    layer. Returns (the `after` indices in the original model, the new blocks' indices in the grown one)."""
    if not 1 <= n_new <= n_layers:
        raise ValueError(f"n_new={n_new}: insert between 1 and {n_layers} blocks into {n_layers} layers")
    after = [(k + 1) * n_layers // n_new - 1 for k in range(n_new)]
    return after, [a + 1 + k for k, a in enumerate(after)]


def matched(full_runs: list[dict], grown: dict, tolerance: float = 0.1) -> dict:
    """The full-FT run to hold a growth run against "at equal gain": of the full-FT runs that gained at least as
    much (within `tolerance`), the one that forgot least (lowest perplexity rise); if none did, the one that gained most."""
    enough = [r for r in full_runs if r["gain_em"] >= grown["gain_em"] - tolerance]
    if not enough:
        return max(full_runs, key=lambda r: r["gain_em"])
    return min(enough, key=lambda r: r["forgetting"]["ppl_rise"])
