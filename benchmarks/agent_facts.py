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
# FACTS' questions reworded to share no word with their fact once stop words are dropped and words
# stemmed (BM25 cannot find these; only the embedding can): measured, never tuned on.
PARAPHRASED = [
    "What's the name of my female sibling?", "Which town is my home?", "What is my profession?", "What do I call my pet feline?",
    "Which nut gives me a reaction?", "Which hue do I like the most?", "What year did I come into the world?",
    "Which musical instrument is my hobby?", "Who am I married to?", "What vehicle do I own?", "Which novel do I love reading?",
    "Where did I spend my childhood?", "Which tongues do I know?", "What is the age of my girl?",
    "Which long-distance race do I do each year?", "Who is my closest pal?", "Which creature frightens me?",
    "What was my major in college?", "Which dish do I enjoy eating most?", "What is inked on my skin?",
]
# A second person, for choosing embedders and weights (benchmarks/agent_recall.py --variants): the
# defaults are picked on these and then measured once on FACTS, so the 90% is not tuned on its own questions.
TUNING_FACTS = [
    ("My brother is called Pedro.", "What is my brother's name?", "Pedro"),
    ("I moved to Berlin last year.", "Which city did I move to?", "Berlin"),
    ("I teach mathematics at a secondary school.", "What subject do I teach?", "mathematics"),
    ("My dog is a black labrador named Bolt.", "What is my dog called?", "Bolt"),
    ("I cannot eat gluten.", "What can't I eat?", "gluten"),
    ("My favourite season is winter.", "Which season do I like best?", "winter"),
    ("My birthday is on the third of May.", "When is my birthday?", "May"),
    ("I sing in a jazz choir on Thursdays.", "What kind of choir do I sing in?", "jazz"),
    ("My wife Clara is a veterinarian.", "What does my wife do?", "veterinarian"),
    ("I ride a red bicycle to work.", "How do I get to work?", "bicycle"),
    ("My favourite film is Casablanca.", "Which film do I like most?", "Casablanca"),
    ("I was raised in a fishing village near Nazare.", "Where was I raised?", "Nazare"),
    ("I am learning to speak Korean.", "Which language am I learning?", "Korean"),
    ("My son Tiago just started university.", "What is my son's name?", "Tiago"),
    ("I climb mountains every summer.", "What do I do every summer?", "climb"),
    ("My neighbour Rui fixes old radios.", "What does my neighbour fix?", "radio"),
    ("I am scared of deep water.", "What am I scared of?", "water"),
    ("I have a degree in history.", "What is my degree in?", "history"),
    ("I drink green tea every morning.", "What do I drink in the morning?", "tea"),
    ("I collect old stamps from Africa.", "What do I collect?", "stamp"),
]
FILLER = [
    "Can you tell me a joke?", "What is the weather usually like in autumn?", "Give me a tip for sleeping better.",
    "How do I boil an egg?", "What is a good name for a plant?", "Tell me something about the moon.",
    "How long should I rest after a run?", "What is your favourite season?", "Suggest a quick dinner.",
    "How do I fold a shirt neatly?", "What rhymes with orange?", "Recommend a board game.",
]


def sessions(seed: int = 0, n_sessions: int = 3, filler_per_fact: int = 2, facts=None) -> list[list[str]]:
    """The user's messages, session by session: each fact once, filler turns between them, order shuffled."""
    rng = random.Random(seed)
    facts = [f[0] for f in (FACTS if facts is None else facts)]
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
