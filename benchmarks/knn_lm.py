"""kNN-LM on SmolLM2-135M: valid-split perplexity alone vs with a datastore built from the train split, over lambda.

    python benchmarks/knn_lm.py [--train-tokens 32768] [--valid-tokens 4096] [--k 16] [--lambdas 0,0.05,0.1,0.25,0.5]
        [--backend torch]

The datastore holds (final hidden state, next token) for the first --train-tokens tokens of the Austen
train split (windows of 512 tokens, disjoint: the first token of each window has no entry). Perplexity
is measured on the first --valid-tokens tokens of the valid split (windows of 512, disjoint), with the
LM alone and interpolated, for two kNN variants of mindset.memory.KnnLMHead:
- plain (Khandelwal et al.): p = (1 - lam) p_LM + lam p_kNN, softmax over -d/T with T = 100;
- fallback (mindset's default): the same plus a virtual neighbour at squared distance 100 voting for
  p_LM, T = 20 (what `attach_knn_lm` uses; it keeps unrelated text unchanged).
T and the fallback distance were picked on the first 512 valid tokens (a tuning set that overlaps the
measured prefix; no other tuning). One pass computes p_LM and the neighbours; every lambda reuses them.
The paper's datastore is 103M tokens; this one is ~3000x smaller, so expect a small gain.
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

VARIANTS = {"plain": {"temperature": 100.0, "fallback": None}, "fallback": {"temperature": 20.0, "fallback": 100.0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-tokens", type=int, default=32768)
    parser.add_argument("--valid-tokens", type=int, default=4096)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--lambdas", default="0,0.05,0.1,0.25,0.5")
    parser.add_argument("--backend", default="torch", help="store backend, e.g. torch or faiss:IVF512,Flat")
    args = parser.parse_args()

    from mindset.data import corpus_text
    from mindset.evaluate.perplexity import plan_windows
    from mindset.memory.knn_lm import add_text, final_hidden_states
    from mindset.models import load
    from mindset.surgery import attach_knn_lm

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    model = attach_knn_lm(loaded, args.backend, k=args.k, capacity=args.train_tokens, inplace=True).model
    head = model.get_output_embeddings()
    start = time.perf_counter()
    added = add_text(model, loaded.tokenizer, head.store, corpus_text("train"), context=512, stride=512, max_tokens=args.train_tokens, label="austen/train", progress=True)
    build_s = time.perf_counter() - start

    lambdas = [float(v) for v in args.lambdas.split(",")]
    ids = torch.tensor(loaded.tokenizer(corpus_text("valid"), add_special_tokens=False)["input_ids"][: args.valid_tokens])
    nll = {(name, lam): 0.0 for name in VARIANTS for lam in lambdas}
    scored = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for w in plan_windows(ids.numel(), 512, 512):
            window = ids[w.begin : w.end]
            hidden = final_hidden_states(model, window[None])[0, w.first_target - 1 - w.begin : w.end - 1 - w.begin]
            targets = window[w.first_target - w.begin :]
            logits = (hidden @ head.weight.T).float()
            hits = head.store.query(hidden, args.k)
            for name, variant in VARIANTS.items():
                head.temperature, head.fallback = variant["temperature"], variant["fallback"]
                for lam in lambdas:
                    log_p = head.mix(logits, hits, lam=lam)
                    nll[(name, lam)] += float(-log_p.gather(1, targets[:, None]).sum())
            scored += targets.numel()
    eval_s = time.perf_counter() - start

    base = math.exp(nll[("plain", 0.0)] / scored) if 0.0 in lambdas else None
    rows, results = [], []
    for name in VARIANTS:
        for lam in lambdas:
            ppl = math.exp(nll[(name, lam)] / scored)
            results.append({"variant": name, "lambda": lam, "perplexity": ppl, "ratio": ppl / base if base else None})
            rows.append([name, lam, f"{ppl:.3f}", f"{ppl / base:.3f}x" if base else "", f"{base - ppl:+.3f}" if base else ""])
    headers = ["kNN variant", "lambda", "valid ppl", "vs LM alone", "gain"]
    title = f"kNN-LM on SmolLM2-135M: datastore {added:,} train tokens, valid {scored:,} tokens, k={args.k}, {head.store.describe()}"
    publish(__file__, title, headers, rows, {"args": vars(args), "entries": added, "scored_tokens": scored, "build_s": build_s, "eval_s": eval_s, "results": results})
    print(f"datastore built in {build_s:.0f} s; evaluation (one forward pass, all lambdas) {eval_s:.0f} s")


if __name__ == "__main__":
    main()
