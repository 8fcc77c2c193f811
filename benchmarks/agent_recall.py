"""Claims of issue 19: recall costs at most 50 ms per turn at 10^5 memories on 2 cores; the right memory is
in the top 3 for at least 90% of the 20 facts' questions; answers with memory beat answers without.

    python benchmarks/agent_recall.py [--sizes 10000,100000] [--width 576] [--queries 20]
    python benchmarks/agent_recall.py --skip-latency --answers smollm2-135m [--embed-model all-minilm-l6-v2] [--layouts system,user]
    python benchmarks/agent_recall.py --skip-latency --answers smollm2-135m --answers-backend llama-server  # + the backend column
    python benchmarks/agent_recall.py --skip-latency --variants smollm2-135m

Latency: for each size, a fresh memory database is filled with random memories of SmolLM2's width (576,
texts of 8 words from the facts' vocabulary), an Agent (tiny-llama behind it, a random embedder: the
model's cost is not recall's) opens it, and each query runs the reply's whole recall path: the BM25 query
(FTS5), scoring, top-3, last_accessed written back in one transaction, the 3 memories read. Two searches:
the exact scan of every embedding, and faiss candidates (agent.ann, the default from ANN_THRESHOLD
memories on), with how often its top-3 equals the exact one. The load average is recorded: the machine is shared.

--answers (agent_answers.py): answer accuracy with and without memory and the top-1/3/5 retrieval columns,
the prompt layout chosen on the tuning person. --answers-backend llama-server (agent_llama.py) asks the
same questions once more through Agent's backend path, llama-server on MODEL's q8_0 GGUF (agent_answers.backend.json);
--answers-backend URL uses any OpenAI-compatible server instead.
--variants (agent_variants.py): embedders x BM25 weight, picked on TUNING_FACTS, reported on FACTS.
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


def vocabulary() -> list[str]:
    from agent_facts import FACTS, FILLER, TUNING_FACTS

    words = " ".join([f[0] for f in FACTS + TUNING_FACTS] + FILLER).lower().replace(".", " ").replace("?", " ").replace(",", " ").split()
    return sorted(set(words))


def fill(db, n: int, width: int, seed: int = 1) -> None:
    """n random memories: unit-free random vectors, ages up to a year, texts of 8 words from the facts' vocabulary."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary())
    now = time.time()
    with db.transaction() as conn:
        for start in range(0, n, 10_000):
            count = min(10_000, n - start)
            vectors = rng.standard_normal((count, width)).astype("<f4")
            ages = rng.uniform(0, 24 * 365, count) * 3600
            texts = [" ".join(rng.choice(words, 8)) for _ in range(count)]
            conn.executemany("INSERT INTO memories (text, kind, created, last_accessed, importance, embedding, sources) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(texts[i], "observation", now - ages[i], now - ages[i] / 2, int(rng.integers(1, 11)), vectors[i].tobytes(), "[]")
                              for i in range(count)])
    db.set_setting("embedder", RandomEmbedder.name)


def measure(loaded, n: int, width: int, queries: int, dtype: str) -> list[dict]:
    """One row per search (exact scan, faiss candidates) at n memories: a whole recall's time (BM25 query,
    scoring, top-3, last_accessed written back, the memories read), its parts, and top-3 agreement with exact."""
    import torch
    from agent_facts import FACTS

    from mindset.agent import Agent, MemoryDB, MemoryIndex

    out = []
    with tempfile.TemporaryDirectory() as folder:
        db = MemoryDB(folder)
        fill(db, n, width)
        db.close()
        start = time.perf_counter()
        agent = Agent(loaded, folder, embed=RandomEmbedder(width), index_dtype=getattr(torch, dtype), ann_threshold=0)
        open_exact = time.perf_counter() - start
        start = time.perf_counter()
        faiss_index = MemoryIndex.from_snapshot(agent.db.snapshot(), getattr(torch, dtype), ann_threshold=1)
        open_faiss = time.perf_counter() - start
        exact_index = agent.index
        rng = np.random.default_rng(2)
        asked = [(rng.standard_normal(width).astype(np.float32), FACTS[i % len(FACTS)][1]) for i in range(queries)]
        now = time.time()  # agreement first, before any recall refreshes a memory in one index and not the other
        agree = sum([r.id for r in faiss_index.top(q, now, agent.weights, lexical=agent.db.lexical(t))]
                    == [r.id for r in exact_index.top(q, now, agent.weights, lexical=agent.db.lexical(t))] for q, t in asked)
        for search, index, open_s in (("exact", exact_index, open_exact), ("faiss", faiss_index, open_faiss)):
            agent.index = index
            turn, scoring, lexical = [], [], []
            for query, text in asked:
                t0 = time.perf_counter()
                words = agent.db.lexical(text)
                t1 = time.perf_counter()
                index.top(query, time.time(), agent.weights, lexical=words)
                t2 = time.perf_counter()
                t3 = time.perf_counter()
                recalled = agent.recall_vector(query, touch=True, text=text)
                t4 = time.perf_counter()
                assert len(recalled) == agent.weights.top_k
                lexical.append((t1 - t0) * 1000)
                scoring.append((t2 - t1) * 1000)
                turn.append((t4 - t3) * 1000)
            out.append({"memories": n, "search": search, "dtype": dtype, "median_ms": statistics.median(turn), "max_ms": max(turn),
                        "scoring_median_ms": statistics.median(scoring), "bm25_median_ms": statistics.median(lexical),
                        "agree_top3": 1.0 if search == "exact" else agree / queries, "open_s": open_s})
            print(out[-1], flush=True)
        agent.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--width", type=int, default=576)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--answers", default=None, metavar="MODEL", help="also ask the 20 facts' questions to MODEL, with memory and without")
    parser.add_argument("--embed-model", default=None, help="with --answers: the embedder (default: MODEL's hidden states)")
    parser.add_argument("--layouts", default=None, help="with --answers: the prompt layouts to choose from (default: all of agent.layout.LAYOUTS)")
    parser.add_argument("--answers-backend", default=None, metavar="llama-server|URL",
                        help="with --answers: also answer through this OpenAI-compatible backend; llama-server starts it on MODEL's q8_0 GGUF")
    parser.add_argument("--local", action=argparse.BooleanOptionalAction, default=True, help="with --answers-backend: also the local answers")
    parser.add_argument("--variants", default=None, metavar="MODEL", help="also compare embedders and BM25 weights on the tuning and test facts")
    parser.add_argument("--skip-latency", action="store_true", help="only --answers / --variants")
    parser.add_argument("--dtypes", default="float32", help="how the index holds the embeddings (float32 is the default)")
    args = parser.parse_args()
    import torch

    from mindset.agent.ann import ANN_THRESHOLD
    from mindset.models import load

    loaded = load("tiny-llama", device="cpu", dtype="float32")
    results = [] if args.skip_latency else [r for n in args.sizes.split(",") for d in args.dtypes.split(",")
                                            for r in measure(loaded, int(n), args.width, args.queries, d)]
    rows = [[r["memories"], r["search"] + (" (default)" if (r["search"] == "faiss") == (r["memories"] >= ANN_THRESHOLD) else ""), r["dtype"],
             f"{r['median_ms']:.1f}", f"{r['max_ms']:.1f}", f"{r['scoring_median_ms']:.1f}", f"{r['bm25_median_ms']:.1f}",
             f"{100 * r['agree_top3']:.0f}%", f"{r['open_s']:.2f}", "yes" if r["median_ms"] <= GOAL_MS else "no"] for r in results]
    if results:
        publish(__file__, f"recall per turn, width {args.width}, top-3, torch {torch.__version__} on {torch.get_num_threads()} threads",
                ["memories", "search", "index dtype", "median ms", "max ms", "scoring ms", "BM25 ms", "top-3 = exact", "open s",
                 f"≤ {GOAL_MS:.0f} ms"], rows,
                {"goal_ms": GOAL_MS, "load_average": os.getloadavg(), "results": results, "args": vars(args)})
    print(json.dumps(results))
    if args.answers:
        run_answers(args)
    if args.variants:
        from agent_variants import publish_variants, variants

        publish_variants(variants(load(args.variants, device="cpu", dtype="float32")), str(Path(__file__).with_name("agent_variants.py")))


def run_answers(args) -> None:
    """The local answers (agent_answers.json), then the backend's (agent_answers.backend.json) when asked."""
    from contextlib import nullcontext

    from agent_answers import answers, publish_answers

    layouts = args.layouts.split(",") if args.layouts else None
    if args.local:
        publish_answers(answers(args.answers, args.embed_model, layouts, on_part=lambda part: publish_answers(part, __file__)), __file__)
    if args.answers_backend is None:
        return
    if args.answers_backend == "llama-server":
        from agent_llama import llama_backend

        server = llama_backend(args.answers)
    else:
        server = nullcontext((args.answers_backend, f"{args.answers} through {args.answers_backend}"))
    with server as (url, label):
        if url is None:
            print(f"skipped the backend column: {label}", flush=True)
            return
        found = answers(args.answers, args.embed_model, layouts, backend_url=url, label=label,
                        on_part=lambda part: publish_answers(part, __file__, ".backend"))
        publish_answers(found, __file__, ".backend")


if __name__ == "__main__":
    main()
