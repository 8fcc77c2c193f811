"""Importance, 1 (mundane) to 10 (poignant), given to a memory when it is written.

`rate_with_model` asks the model with Generative Agents' prompt and reads the first number it answers.
`heuristic_importance` is the fallback for models too small to answer with a digit, and the default for
models under RATING_MIN_PARAMS: SmolLM2-135M answers the rating prompt with "1" for nearly everything ("brushed my
teeth", "my mother died last year", "I got accepted to MIT" all 1) and "10" for "thanks". The heuristic
scores what tends to matter later in a chat about a person: first-person facts, numbers and names,
preferences and strong words, and length; greetings and filler score 1.
"""

from __future__ import annotations

import re

RATING_MIN_PARAMS = 1_000_000_000  # below this, importance comes from the heuristic unless asked otherwise
RATING_PROMPT = ("On the scale of 1 to 10, where 1 is purely mundane (e.g., brushing teeth, making bed) and 10 is extremely poignant "
                 "(e.g., a break up, college acceptance), rate the likely poignancy of the following piece of memory. "
                 "Answer with one number.\nMemory: {text}\nRating:")

FIRST_PERSON = re.compile(r"\b(i am|i'm|i have|i've|i live|i work|i was|i like|i love|i hate|my|mine|i)\b", re.I)
STRONG = re.compile(r"\b(always|never|love|hate|allergic|birthday|born|name|married|divorce|died|death|accepted|broke up|pregnant|hospital|"
                    r"job|moved|favou?rite|important|remember|afraid|dream)\w*", re.I)
NUMBER = re.compile(r"\d")
FILLER = re.compile(r"^\W*(hi|hello|hey|ok|okay|thanks|thank you|yes|no|sure|bye|good|cool|nice|lol|hmm)\W*$", re.I)


def heuristic_importance(text: str) -> int:
    """1-10 from the text alone (see the module docstring)."""
    if FILLER.match(text) or not text.strip():
        return 1
    words = text.split()
    score = 2
    score += 2 if FIRST_PERSON.search(text) else 0
    score += 1 if NUMBER.search(text) else 0
    score += 1 if any(w[:1].isupper() for w in words[1:] if w.strip("'\".,!?") not in ("I", "I'm", "I've")) else 0  # a name
    score += min(2, len(STRONG.findall(text)))
    score += (len(words) > 8) + (len(words) > 20)
    return max(1, min(10, score))


def parse_rating(answer: str) -> int | None:
    """The first integer 1-10 in the model's answer, or None."""
    match = re.search(r"\b(10|[1-9])\b", answer)
    return int(match.group(1)) if match else None


def rate_with_model(loaded, text: str) -> int:
    """The model's own 1-10 rating, greedy; the heuristic when the answer holds no number."""
    from mindset.chat import SamplingParams, encode_prompt, generate_from_ids

    ids = encode_prompt(loaded.tokenizer, RATING_PROMPT.format(text=text[:1000]))
    if len(ids) + 4 > loaded.context_length:  # the question does not fit this model's context
        return heuristic_importance(text)
    answer = generate_from_ids(loaded, ids, SamplingParams(max_new_tokens=4)).text
    rating = parse_rating(answer)
    return rating if rating is not None else heuristic_importance(text)


def model_can_rate(loaded) -> bool:
    return sum(p.numel() for p in loaded.model.parameters()) >= RATING_MIN_PARAMS
