"""Store throughput: the exact torch store vs faiss indexes (flat, IVF, HNSW), and recall of the approximate ones.

    python benchmarks/store_throughput.py [--sizes 10000,100000] [--full] [--batch 64] [--k 32] [--dim 576]

For each store size: insert that many entries (in batches of 1024; for IVF the training and the first
fill of the index count as insertion time, since a store cannot answer before), then time query
batches of --batch rows for top --k. Recall@k of each faiss index is measured against the exact torch
store's answers to the same queries. --full adds 10^6 entries (about 2.3 GB of keys per copy; slow).

Keys are synthetic, d = 576 (SmolLM2's hidden size): a mixture of 256 Gaussian clusters with noise,
and queries are fresh draws from the same mixture, which gives ANN indexes structure to exploit, as
hidden states do. Every backend sees the same keys and queries; ratios are to the torch store.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402


def mixture(n: int, dim: int, centers: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    which = torch.randint(0, centers.shape[0], (n,), generator=generator)
    return centers[which] + 0.5 * torch.randn(n, dim, generator=generator)


def backends(n: int) -> list[str]:
    nlist = int(4 * math.sqrt(n))  # the usual faiss rule of thumb, 4 to 16 sqrt(n) lists
    return ["torch", "faiss:Flat", f"faiss:IVF{nlist},Flat", "faiss:HNSW32"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--full", action="store_true", help="also 1,000,000 entries")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--query-batches", type=int, default=5)
    args = parser.parse_args()

    from mindset.memory import make_store

    sizes = [int(s) for s in args.sizes.split(",")] + ([1_000_000] if args.full else [])
    generator = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(256, args.dim, generator=generator)
    rows, results = [], []
    for n in sizes:
        keys = mixture(n, args.dim, centers, generator)
        queries = [mixture(args.batch, args.dim, centers, generator) for _ in range(args.query_batches)]
        exact = None
        base = {}
        for backend in backends(n):
            store = make_store(backend, args.dim, n, metric="l2", value_shape=(), value_dtype=torch.long, eviction="none")
            start = time.perf_counter()
            for begin in range(0, n, 1024):
                store.insert(keys[begin : begin + 1024], torch.arange(begin, min(begin + 1024, n)))
            if getattr(store, "_dirty", False) or (hasattr(store, "index") and not store.index.is_trained):
                store.rebuild()  # IVF: train and fill now, so query timing is queries only
            insert_s = time.perf_counter() - start
            store.query(queries[0][:1], args.k)  # warm up
            start = time.perf_counter()
            answers = [store.query(q, args.k, touch=False).slots for q in queries]
            query_s = time.perf_counter() - start
            answers = torch.cat(answers)
            if exact is None:
                exact = answers
            recall = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(answers, exact)) / exact.numel()
            result = {
                "entries": n, "backend": backend, "inserts_per_s": n / insert_s,
                "queries_per_s": args.batch * args.query_batches / query_s, "recall_at_k": recall,
            }
            if backend == "torch":
                base = result
            results.append(result)
            rows.append([
                f"{n:,}", backend, f"{result['inserts_per_s']:,.0f}", f"{result['inserts_per_s'] / base['inserts_per_s']:.2f}x",
                f"{result['queries_per_s']:,.0f}", f"{result['queries_per_s'] / base['queries_per_s']:.2f}x", f"{recall:.3f}",
            ])
            print(rows[-1], flush=True)
            del store
    headers = ["entries", "backend", "inserts/s", "vs torch", f"queries/s (batch {args.batch}, k {args.k})", "vs torch", f"recall@{args.k}"]
    title = f"Store throughput, d={args.dim}, synthetic clustered keys"
    publish(__file__, title, headers, rows, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
