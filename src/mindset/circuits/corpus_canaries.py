"""Canary suites made from a pretraining corpus, for models too small for any benchmark (a byte-level
model of ~1 M parameters trained on Austen scores at chance on every shipped task).

Two four-way multiple-choice suites, scored like every suite (the log-likelihood of each choice after the
context; correct when the gold choice has the highest). Contexts come from the held-out (valid) text, so a
canary asks what the model learned, not what it saw; the vocabulary comes from the train text.

- `<corpus>-names`: the context before a proper noun of the corpus (a capitalized word that is almost never
  lower-case in the train text and occurs at least `min_count` times: Elinor, Darcy, Knightley, Bath); the
  choices are the name and three misspellings of the same length that are not words of the corpus (two
  inner letters swapped, an inner vowel changed, an inner consonant changed). It measures memorized,
  corpus-specific knowledge — the spelling of the corpus's names — which fine-tuning on another text has
  no reason to keep and every reason to overwrite.
- `<corpus>-words`: the context before a lower-case word of 4-9 letters; the choices are the word and three
  other words of its length drawn with the train text's word frequencies, so a model that knows only
  which words are common stays at chance (0.25): it measures using the context to predict the next word
  of the original text's English.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from mindset.circuits.suite import Suite, make_suite
from mindset.errors import MindsetError

CONTEXT_CHARS = 96  # at most this much text before the answer, cut at a word boundary
VOWELS, CONSONANTS = "aeiou", "bcdfghklmnprstvwy"
WORD = re.compile(r"[A-Za-z]+")


def proper_nouns(train: str, min_count: int = 50) -> list[str]:
    """Capitalized words that occur at least min_count times and are lower-case less than 2% of the time."""
    words = Counter(WORD.findall(train))
    return sorted(w for w, n in words.items() if w[0].isupper() and w[1:].islower() and len(w) >= 4 and n >= min_count
                  and words.get(w.lower(), 0) < 0.02 * n)


def misspellings(name: str, vocabulary: set[str], rng: random.Random) -> list[str] | None:
    """Three distinct same-length non-words one edit from `name`, or None if no such three exist."""
    inner = range(1, len(name) - 1)
    edits = {
        "swap": [name[:i] + name[i + 1] + name[i] + name[i + 2 :] for i in range(1, len(name) - 2) if name[i] != name[i + 1]],
        "vowel": [name[:i] + v + name[i + 1 :] for i in inner if name[i] in VOWELS for v in VOWELS if v != name[i]],
        "consonant": [name[:i] + c + name[i + 1 :] for i in inner if name[i] in CONSONANTS for c in CONSONANTS if c != name[i]],
    }
    out: list[str] = []
    for options in edits.values():
        options = [o for o in options if o.lower() not in vocabulary and o not in out]
        if not options:
            return None
        out.append(rng.choice(options))
    return out


def _context(text: str, end: int) -> str | None:
    """The text before `end`, at most CONTEXT_CHARS, starting after a space; None if too short."""
    start = max(0, end - CONTEXT_CHARS)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < end else start
    context = text[start:end].replace("\n", " ")
    return context if len(context) >= CONTEXT_CHARS // 3 else None


def names_suite(train: str, valid: str, documents: int, seed: int = 0, name: str = "corpus", min_count: int = 50) -> Suite:
    nouns = set(proper_nouns(train, min_count))
    if not nouns:
        raise MindsetError(f"the train text has no proper noun seen {min_count} times; give a longer text")
    vocabulary = {w.lower() for w in WORD.findall(train)}
    rng = random.Random(seed)
    spots = [m for m in re.finditer(r"(?<=[a-z,;] )[A-Z][a-z]+\b", valid) if m.group() in nouns]
    rng.shuffle(spots)
    items = []
    for match in spots:
        context, wrong = _context(valid, match.start() - 1), misspellings(match.group(), vocabulary, rng)
        if context and wrong:
            items.append((context, [" " + match.group(), *(" " + w for w in wrong)], 0))
        if len(items) == documents:
            break
    return _suite(f"{name}-names", items, documents)


def words_suite(train: str, valid: str, documents: int, seed: int = 0, name: str = "corpus", min_count: int = 20) -> Suite:
    counts = Counter(w for w in WORD.findall(train) if w.islower() and 4 <= len(w) <= 9)
    by_length: dict[int, tuple[list[str], list[int]]] = {}
    for word, n in counts.items():
        if n >= min_count:
            words, weights = by_length.setdefault(len(word), ([], []))
            words.append(word)
            weights.append(n)
    rng = random.Random(seed + 1)
    spots = [m for m in re.finditer(r"(?<= )[a-z]{4,9}\b", valid) if m.group() in counts and len(by_length.get(len(m.group()), ((),))[0]) > 3]
    rng.shuffle(spots)
    items = []
    for match in spots:
        word, context = match.group(), _context(valid, match.start() - 1)
        words, weights = by_length[len(word)]
        wrong: list[str] = []
        while len(wrong) < 3:
            pick = rng.choices(words, weights)[0]
            if pick != word and pick not in wrong:
                wrong.append(pick)
        if context:
            items.append((context, [" " + word, *(" " + w for w in wrong)], 0))
        if len(items) == documents:
            break
    return _suite(f"{name}-words", items, documents)


def _suite(name: str, items: list, documents: int) -> Suite:
    if len(items) < documents:
        raise MindsetError(f"the valid text gives only {len(items)} {name} canaries, fewer than the {documents} asked; ask fewer or give more text")
    rng = random.Random(len(name))
    shuffled = []
    for context, choices, _ in items:  # the gold choice at a random place: no position bias in the suite
        order = list(range(len(choices)))
        rng.shuffle(order)
        shuffled.append((context, [choices[i] for i in order], order.index(0)))
    return make_suite(name, shuffled, chance=0.25)


def corpus_canaries(train: str, valid: str, documents: int = 64, seed: int = 0, name: str = "corpus") -> list[Suite]:
    """The names and the words suites of a corpus (train text for the vocabulary, valid text for the contexts)."""
    return [names_suite(train, valid, documents, seed, name), words_suite(train, valid, documents, seed, name)]
