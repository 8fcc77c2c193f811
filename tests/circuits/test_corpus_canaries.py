"""Canaries made from a corpus: what each item asks, and that the gold answer is the one a model of the
corpus should prefer."""

import re

import pytest

from mindset.circuits.corpus_canaries import WORD, corpus_canaries, misspellings, proper_nouns
from mindset.data import corpus_text
from mindset.errors import MindsetError


@pytest.fixture(scope="module")
def austen():
    return corpus_text("train"), corpus_text("valid")


def test_proper_nouns_are_names_not_words(austen):
    nouns = proper_nouns(austen[0])
    assert {"Elinor", "Darcy", "Knightley", "Pemberley", "Bath"} <= set(nouns)
    assert not {"The", "She", "When", "House"} & set(nouns)  # sentence-initial or ordinary words


def test_names_suite_items(austen):
    names, words = corpus_canaries(*austen, documents=24, name="austen")
    vocabulary = {w.lower() for w in WORD.findall(austen[0])}
    nouns = set(proper_nouns(austen[0]))
    assert names.name == "austen-names" and len(names.items) == 24 and names.chance == 0.25
    golds = set()
    for item in names.items:
        gold = item.choices[item.gold[0]].strip()
        wrong = [c.strip() for i, c in enumerate(item.choices) if i != item.gold[0]]
        assert gold in nouns and gold in austen[1] and len(set(wrong)) == 3
        assert all(len(w) == len(gold) and w.lower() not in vocabulary for w in wrong)
        assert austen[1].find(item.context.split("  ")[-1][-30:]) >= 0  # the context is held-out text
        golds.add(item.gold[0])
    assert len(golds) > 1  # the gold answer is not always in the same place

    for item in words.items:
        gold = item.choices[item.gold[0]].strip()
        assert re.fullmatch(r"[a-z]{4,9}", gold) and all(len(c.strip()) == len(gold) for c in item.choices)


def test_canaries_are_the_same_every_time(austen):
    a, b = corpus_canaries(*austen, documents=8), corpus_canaries(*austen, documents=8)
    assert [s.items for s in a] == [s.items for s in b]
    assert [s.items for s in corpus_canaries(*austen, documents=8, seed=1)] != [s.items for s in a]


def test_misspellings_are_one_edit_non_words():
    import random

    wrong = misspellings("Elinor", {"elinor"}, random.Random(0))
    assert len(wrong) == 3 and "Elinor" not in wrong
    assert all(len(w) == 6 and w[0] == "E" and w[-1] == "r" and sum(a != b for a, b in zip(w, "Elinor")) <= 2 for w in wrong)
    assert misspellings("Ab", set(), random.Random(0)) is None  # nothing inside to edit


def test_canary_errors(austen):
    with pytest.raises(MindsetError, match="fewer than the 100000 asked"):
        corpus_canaries(*austen, documents=100_000)
    with pytest.raises(MindsetError, match="no proper noun"):
        corpus_canaries("tiny text", "valid text", documents=4)


def test_a_model_of_the_corpus_beats_chance_on_the_names(austen):
    """A character-trigram model of the train text (no network) already prefers the real spellings: the suite
    measures corpus knowledge, not noise. Contexts end just before the name, so only the choice is scored."""
    import math
    from collections import Counter

    train = austen[0]
    tri, bi = Counter(train[i : i + 3] for i in range(len(train) - 2)), Counter(train[i : i + 2] for i in range(len(train) - 1))

    def logprob(text):
        return sum(math.log((tri[text[i : i + 3]] + 0.1) / (bi[text[i : i + 2]] + 26)) for i in range(len(text) - 2))

    names, words = corpus_canaries(*austen, documents=64)
    right = sum(max(range(4), key=lambda i: logprob(it.context[-2:] + it.choices[i])) == it.gold[0] for it in names.items)
    assert right / len(names.items) > 0.6
