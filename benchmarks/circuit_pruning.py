"""Claim: pruning the heads and FFN neurons the canaries and the text need least (circuit-aware) keeps more
of SmolLM2 than pruning the smallest weights (magnitude), at the same parameter count.

    python benchmarks/circuit_pruning.py [--docs 16] [--ppl-tokens 1024] [--neurons 0.25,0.5] [--heads 0.334]

Circuit-aware scores: attribution (|activation x gradient| per head and neuron) on the canary documents'
correct answers and on the first --attr-tokens tokens of the Austen train split. The canaries are scored
on other documents of the same tasks (the first --docs; attribution uses the next --docs), perplexity on
the first --ppl-tokens of the valid split. Both methods remove the same number of heads (per kv group)
and neurons from every layer, so parameter counts are equal. No retraining after pruning.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

TASKS = ("capitals", "ordering")


def measure(loaded, suites, ppl_ids, ppl_window) -> dict:
    from mindset.circuits import score_suite
    from mindset.evaluate import perplexity_of_ids

    out = {"params": sum(p.numel() for p in loaded.model.parameters())}
    for suite in suites:
        out[suite.name] = score_suite(loaded, suite).accuracy
    out["ppl"] = perplexity_of_ids(loaded.model, ppl_ids, context=ppl_window, stride=ppl_window).perplexity
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=16, help="documents per canary task, for scoring (as many again for attribution)")
    parser.add_argument("--ppl-tokens", type=int, default=1024)
    parser.add_argument("--attr-tokens", type=int, default=1024)
    parser.add_argument("--neurons", default="0.25,0.5", help="FFN neuron fractions to prune (heads kept)")
    parser.add_argument("--heads", type=float, default=1 / 3, help="head fraction pruned together with the first neuron fraction")
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from mindset.circuits.prune import attribution_scores, magnitude_scores, prune
    from mindset.circuits.suite import build_suite
    from mindset.data import corpus_text
    from mindset.models import load

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    tok = loaded.tokenizer
    scored, attr = [], []
    for task in TASKS:
        first, rest = build_suite(task, limit=2 * args.docs).split(args.docs)
        scored.append(first)
        attr.append(rest)
    ppl_ids = tok(corpus_text("valid"), add_special_tokens=False)["input_ids"][: args.ppl_tokens]
    attr_ids = tok(corpus_text("train")[: args.attr_tokens * 8], add_special_tokens=False)["input_ids"][: args.attr_tokens]
    window = min(512, args.ppl_tokens)

    started = time.perf_counter()
    circuit = attribution_scores(loaded, attr, attr_ids)
    attribution_seconds = time.perf_counter() - started
    magnitude = magnitude_scores(loaded.model)
    base = measure(loaded, scored, ppl_ids, window)
    settings = [(0.0, float(f)) for f in args.neurons.split(",")] + [(args.heads, float(args.neurons.split(",")[0]))]
    results = [{"heads": 0.0, "neurons": 0.0, "method": "none", **base}]
    for heads, neurons in settings:
        for method, scores in (("circuit-aware", circuit), ("magnitude", magnitude)):
            pruned = prune(copy.deepcopy(loaded), scores, head_fraction=heads, neuron_fraction=neurons)
            results.append({"heads": heads, "neurons": neurons, "method": method, **measure(pruned, scored, ppl_ids, window)})
            del pruned
            print(results[-1], flush=True)

    headers = ["heads pruned", "neurons pruned", "method", "params", *TASKS, "valid ppl", "ppl × baseline"]
    rows = [
        [f"{r['heads']:.0%}", f"{r['neurons']:.0%}", r["method"], f"{r['params'] / 1e6:.1f} M", *[f"{r[t]:.3f}" for t in TASKS],
         f"{r['ppl']:.2f}", f"{r['ppl'] / base['ppl']:.2f}"]
        for r in results
    ]
    publish(
        __file__, f"Structured pruning of SmolLM2-135M, no retraining ({args.docs} documents per canary, {len(ppl_ids)} valid tokens)",
        headers, rows, {"args": vars(args), "results": results, "attribution_seconds": attribution_seconds},
    )


if __name__ == "__main__":
    main()
