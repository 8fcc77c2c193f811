"""Claim: recall costs at most 50 ms per turn at 10^5 memories on 2 cores (issue 19).

    python benchmarks/agent_recall.py [--sizes 10000,100000] [--width 576] [--queries 20]

For each size, a fresh memory database is filled with random memories of SmolLM2's width (576), an Agent
(tiny-llama behind it, a random embedder: the model's cost is not recall's) opens it, and each query runs
the reply's whole recall path (load average at the start recorded: the machine is shared): exact scoring of every memory in torch, top-k, last_accessed written back
in one transaction, the k memories read. The table gives the median and slowest query, the scoring alone,
and the time to open the folder (reading every embedding into the index).

--retrieval MODEL adds the retrieval column of the issue: the scripted conversation of benchmarks/agent_facts.py
(20 facts over 3 sessions, two filler turns after each) is written through Agent.remember (the same embedding
and importance as a reply's observation, without generating), then each fact's question is recalled and
counted a hit when the fact is among the top 3 (goal: 90%). Answer accuracy with and without memory is a
later slice of issue 19.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

GOAL_MS = 50.0


class RandomEmbedder:
    name = "random"

    def __init__(self, width: int, seed: int = 0):
        self.width, self.rng = width, np.random.default_rng(seed)

    def __call__(self, texts):
        return self.rng.standard_normal((len(texts), self.width)).astype(np.float32)


def fill(db, n: int, width: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    now = time.time()
    with db.transaction() as conn:
        for start in range(0, n, 10_000):
            count = min(10_000, n - start)
            vectors = rng.standard_normal((count, width)).astype("<f4")
            ages = rng.uniform(0, 24 * 365, count) * 3600
            conn.executemany("INSERT INTO memories (text, kind, created, last_accessed, importance, embedding, sources) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(f"memory {start + i}", "observation", now - ages[i], now - ages[i] / 2, int(rng.integers(1, 11)), vectors[i].tobytes(), "[]")
                              for i in range(count)])
    db.set_setting("embedder", RandomEmbedder.name)


def measure(loaded, n: int, width: int, queries: int, dtype: str) -> dict:
    import torch

    from mindset.agent import Agent, MemoryDB

    with tempfile.TemporaryDirectory() as folder:
        db = MemoryDB(folder)
        fill(db, n, width)
        db.close()
        start = time.perf_counter()
        agent = Agent(loaded, folder, embed=RandomEmbedder(width), index_dtype=getattr(torch, dtype))
        open_s = time.perf_counter() - start
        rng = np.random.default_rng(2)
        turn, scoring = [], []
        for _ in range(queries):
            query = rng.standard_normal(width).astype(np.float32)
            t0 = time.perf_counter()
            agent.index.top(query, time.time(), agent.weights)
            t1 = time.perf_counter()
            recalled = agent.recall_vector(query, touch=True)
            t2 = time.perf_counter()
            assert len(recalled) == agent.weights.top_k
            scoring.append((t1 - t0) * 1000)
            turn.append((t2 - t1) * 1000)
        agent.close()
    return {"memories": n, "dtype": dtype, "median_ms": statistics.median(turn), "max_ms": max(turn), "scoring_median_ms": statistics.median(scoring), "open_s": open_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--width", type=int, default=576)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--answers", default=None, metavar="MODEL", help="also ask the 20 facts' questions to MODEL, with memory and without")
    parser.add_argument("--embed-model", default=None, help="with --answers: the embedder (default: MODEL's hidden states)")
    parser.add_argument("--variants", default=None, metavar="MODEL", help="also compare embedders and BM25 weights on the tuning and test facts")
    parser.add_argument("--skip-latency", action="store_true", help="only --answers / --variants")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="how the index holds the embeddings (float32 is the default)")
    args = parser.parse_args()
    import torch

    from mindset.models import load

    loaded = load("tiny-llama", device="cpu", dtype="float32")
    results = [] if args.skip_latency else [measure(loaded, int(n), args.width, args.queries, d) for n in args.sizes.split(",") for d in args.dtypes.split(",")]
    rows = [[r["memories"], r["dtype"], f"{r['median_ms']:.1f}", f"{r['max_ms']:.1f}", f"{r['scoring_median_ms']:.1f}", f"{r['open_s']:.2f}",
             "yes" if r["median_ms"] <= GOAL_MS else "no"] for r in results]
    if results:
        publish(__file__, f"recall per turn, width {args.width}, top-3, torch {torch.__version__} on {torch.get_num_threads()} threads",
                ["memories", "index dtype", "median ms", "max ms", "scoring only ms", "open s", f"≤ {GOAL_MS:.0f} ms"], rows,
                {"goal_ms": GOAL_MS, "load_average": os.getloadavg(), "results": results, "args": vars(args)})
    print(json.dumps(results))
    if args.answers:
        from agent_answers import answers, publish_answers

        publish_answers(answers(args.answers, args.embed_model), str(Path(__file__).with_name("agent_answers.py")))
    if args.variants:
        from agent_variants import publish_variants, variants

        publish_variants(variants(load(args.variants, device="cpu", dtype="float32")), str(Path(__file__).with_name("agent_variants.py")))


if __name__ == "__main__":
    main()
