"""A person's facts for benchmarks/agent_recall.py: 20 statements spread over 3 sessions with filler turns
between, and one question per fact with the word its answer must contain. No model is loaded here."""

from __future__ import annotations

import random

# (statement, question, answer word)
FACTS = [
    ("My sister is called Ana.", "What is my sister's name?", "Ana"),
    ("I live in Lisbon, near the river.", "Which city do I live in?", "Lisbon"),
    ("I work as a nurse at the children's hospital.", "What is my job?", "nurse"),
    ("My cat is a grey tabby named Tom.", "What is my cat called?", "Tom"),
    ("I am allergic to peanuts.", "What food am I allergic to?", "peanut"),
    ("My favourite colour is green.", "What is my favourite colour?", "green"),
    ("I was born in 1990.", "In which year was I born?", "1990"),
    ("I play the cello in an amateur orchestra.", "Which instrument do I play?", "cello"),
    ("My husband Marco is an architect.", "What is my husband's name?", "Marco"),
    ("I drive an old blue Volvo.", "What car do I drive?", "Volvo"),
    ("My favourite book is Moby Dick.", "What is my favourite book?", "Moby"),
    ("I grew up on a farm in Alentejo.", "Where did I grow up?", "Alentejo"),
    ("I speak Portuguese, English and a little Japanese.", "Which Asian language do I speak a little?", "Japanese"),
    ("My daughter Sofia is seven years old.", "How old is my daughter?", "seven"),
    ("I run a marathon every spring.", "What race do I run every spring?", "marathon"),
    ("My best friend is called Joana.", "Who is my best friend?", "Joana"),
    ("I am afraid of spiders.", "What animal am I afraid of?", "spider"),
    ("I studied chemistry at university.", "What did I study at university?", "chemistry"),
    ("My favourite food is grilled sardines.", "What is my favourite food?", "sardine"),
    ("I have a tattoo of a swallow on my arm.", "What is my tattoo of?", "swallow"),
]
FILLER = [
    "Can you tell me a joke?", "What is the weather usually like in autumn?", "Give me a tip for sleeping better.",
    "How do I boil an egg?", "What is a good name for a plant?", "Tell me something about the moon.",
    "How long should I rest after a run?", "What is your favourite season?", "Suggest a quick dinner.",
    "How do I fold a shirt neatly?", "What rhymes with orange?", "Recommend a board game.",
]


def sessions(seed: int = 0, n_sessions: int = 3, filler_per_fact: int = 2) -> list[list[str]]:
    """The user's messages, session by session: each fact once, filler turns between them, order shuffled."""
    rng = random.Random(seed)
    facts = [f[0] for f in FACTS]
    rng.shuffle(facts)
    out = []
    per = -(-len(facts) // n_sessions)
    for s in range(n_sessions):
        turns = []
        for fact in facts[s * per : (s + 1) * per]:
            turns.append(fact)
            turns += rng.sample(FILLER, filler_per_fact)
        out.append(turns)
    return out
