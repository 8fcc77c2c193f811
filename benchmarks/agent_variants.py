"""Retrieval variants for benchmarks/agent_recall.py --variants: which embedder and which BM25 weight put
each fact's memory in the top 3 of its question.

Every variant runs the Agent's real recall (mindset.agent.Agent over a fresh memory folder: the three
sessions written through Agent.remember, heuristic importance, recency, the FTS5 BM25 term) with its
embeddings computed once up front (an embedder is a lookup table here, so a dozen variants cost one pass
of each model). Two sets of facts: TUNING_FACTS (another person, other questions) picks the variant, and
FACTS, the issue's questions, is measured with what was picked, so the default is not fitted to the
questions it is reported on.
"""

from __future__ import annotations

import tempfile

import numpy as np

LAYERS = (5, 10, 15, 20, 25)
LEXICAL_WEIGHTS = (0.0, 0.5, 1.0, 2.0)


class Lookup:
    """An embedder over a precomputed table (text -> vector), with the real embedder's name."""

    def __init__(self, name: str, table: dict[str, np.ndarray], queries: dict[str, np.ndarray] | None = None):
        self.name, self.table = name, table
        if queries is not None:
            self.query = lambda texts: np.stack([queries[t] for t in texts])

    def __call__(self, texts):
        return np.stack([self.table[t] for t in texts])


def texts_of(facts, seed: int) -> tuple[list[list[str]], list[str]]:
    from agent_facts import sessions

    return sessions(seed, facts=facts), [q for _, q, _ in facts]


def embedders(loaded) -> dict:
    """The candidate embedders: SmolLM2's hidden states (mean, and PromptEOL's last token) at several layers, MiniLM."""
    from mindset.agent.embed import PROMPT_EOL, HiddenStateEmbedder, SentenceEmbedder, minilm_folder
    from mindset.errors import MindsetError

    out = {}
    for layer in LAYERS:
        for pooling, template in (("mean", None), ("last", PROMPT_EOL)):
            embedder = HiddenStateEmbedder(loaded, layer, pooling=pooling, template=template)
            out[embedder.name] = embedder
    try:
        embedder = SentenceEmbedder(minilm_folder())
        out[embedder.name] = embedder
    except MindsetError as err:  # the package is not installed: say so in the table
        print(f"skipping all-MiniLM-L6-v2: {err}")
    return out


def hits(loaded, embed, facts, seed: int, lexical: float, relevance: float = 1.0, k: int = 3, questions=None) -> int:
    from mindset.agent import Agent, RecallWeights

    turns_by_session, _ = texts_of(facts, seed)
    weights = RecallWeights(lexical=lexical, relevance=relevance)
    with tempfile.TemporaryDirectory() as folder:
        for turns in turns_by_session:
            agent = Agent(loaded, folder, embed=embed, weights=weights, importance="heuristic")
            for text in turns:
                agent.remember(text)
            agent.close()
        agent = Agent(loaded, folder, embed=embed, weights=weights, importance="heuristic")
        questions = questions or [q for _, q, _ in facts]
        found = sum(statement in [m.text for _, m in agent.recall(question, k)] for (statement, _, _), question in zip(facts, questions))
        agent.close()
    return found


def variants(loaded, seed_tuning: int = 1, seed_test: int = 0) -> list[dict]:
    """Every (embedder, BM25 weight) on the tuning facts, the test facts and the test facts' paraphrased
    questions, plus BM25 alone."""
    from agent_facts import FACTS, PARAPHRASED, TUNING_FACTS

    sets = {"tuning": (TUNING_FACTS, seed_tuning, None), "test": (FACTS, seed_test, None), "paraphrased": (FACTS, seed_test, PARAPHRASED)}
    texts = sorted({t for facts, seed, _ in sets.values() for session in texts_of(facts, seed)[0] for t in session}
                   | {q for facts, _, _ in sets.values() for q in texts_of(facts, 0)[1]} | set(PARAPHRASED))
    rows = []
    for name, embedder in embedders(loaded).items():
        table = dict(zip(texts, np.asarray(embedder(texts), np.float32)))
        for lexical in LEXICAL_WEIGHTS:
            rows.append({"embedder": name, "lexical": lexical, "relevance": 1.0,
                         **{part: hits(loaded, Lookup(name, table), facts, seed, lexical, questions=qs) for part, (facts, seed, qs) in sets.items()}})
        print(rows[-4:], flush=True)
    rows.append({"embedder": "none (BM25 alone)", "lexical": 1.0, "relevance": 0.0,
                 **{part: hits(loaded, Lookup(name, table), facts, seed, 1.0, relevance=0.0, questions=qs) for part, (facts, seed, qs) in sets.items()}})
    return rows


def publish_variants(rows: list[dict], script: str) -> None:
    """The variants table (agent_variants.json), best on the tuning facts first."""
    from common import publish

    table = [[r["embedder"], r["lexical"], r["relevance"], f"{r['tuning']}/20", f"{r['test']}/20", f"{r['paraphrased']}/20"] for r in rows]
    publish(script, "retrieval variants: right memory in the top 3 (tuning facts pick, test facts report; paraphrased: no shared words)",
            ["embedder", "BM25 weight δ", "relevance weight α", "tuning", "test", "test, paraphrased"], table,
            {"rows_data": rows, "layers": LAYERS, "lexical_weights": LEXICAL_WEIGHTS})
