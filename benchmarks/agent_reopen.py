"""How long opening a memory folder takes beside its kept faiss index (agent.ann_file): the first open
trains the IVF index and writes DIR/memory.faiss; a reopen reads it back; a reopen after another writer
added one memory trains again. Random memories of SmolLM2's width as in agent_recall.py (tiny-llama behind
the Agent, a random embedder), the default ANN_THRESHOLD; the read-back index's top-3 is checked against a
fresh build's on the same queries.

    python benchmarks/agent_reopen.py [--sizes 100000] [--width 576] [--queries 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_recall import RandomEmbedder, fill  # noqa: E402
from common import publish  # noqa: E402


def timed_open(loaded, folder, width):
    from mindset.agent import Agent

    start = time.perf_counter()
    agent = Agent(loaded, folder, embed=RandomEmbedder(width), reload=0)
    return agent, time.perf_counter() - start


def measure(loaded, n: int, width: int, queries: int) -> dict:
    from mindset.agent import MemoryDB, MemoryIndex
    from mindset.agent.ann_file import FILENAME
    from mindset.agent.db import NewMemory

    with tempfile.TemporaryDirectory() as folder:
        db = MemoryDB(folder)
        fill(db, n, width)
        db.close()
        first, first_s = timed_open(loaded, folder, width)
        first.close()
        again, again_s = timed_open(loaded, folder, width)
        fresh = MemoryIndex.from_snapshot(again.db.snapshot())  # no file: trained here
        rng, now = np.random.default_rng(2), time.time()
        asked = rng.standard_normal((queries, width)).astype(np.float32)
        agree = sum([r.id for r in again.index.top(q, now, again.weights)] == [r.id for r in fresh.top(q, now, again.weights)] for q in asked)
        restored = again.index.ann is not None and again.index.ann_saved
        again.close()
        other = MemoryDB(folder)
        other.add_memory(NewMemory("written by another process", 5, np.ones(width, np.float32)))
        other.close()
        changed, changed_s = timed_open(loaded, folder, width)
        changed.close()
        size = (Path(folder) / FILENAME).stat().st_size
    return {"memories": n, "first_open_s": first_s, "reopen_s": again_s, "after_a_write_s": changed_s, "read_back": restored,
            "top3_equal_fresh": agree / queries, "file_mb": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--width", type=int, default=576)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    import torch

    from mindset.models import load

    torch.set_num_threads(1)
    loaded = load("tiny-llama", device="cpu", dtype="float32")
    results = [measure(loaded, int(n), args.width, args.queries) for n in args.sizes.split(",")]
    rows = [[r["memories"], f"{r['first_open_s']:.1f}", f"{r['reopen_s']:.1f}", f"{r['after_a_write_s']:.1f}", "yes" if r["read_back"] else "no",
             f"{100 * r['top3_equal_fresh']:.0f}%", f"{r['file_mb']:.0f}"] for r in results]
    publish(__file__, f"opening a memory folder with its kept faiss index, width {args.width}, one thread",
            ["memories", "first open s (train + write)", "reopen s (read back)", "after another writer s", "read back", "top-3 = fresh build",
             "memory.faiss MB"], rows, {"load_average": os.getloadavg(), "results": results, "args": vars(args)})


if __name__ == "__main__":
    main()
