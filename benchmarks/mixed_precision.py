"""Claim: role-aware precision (int8 for the blocks the canaries and the text need least, fp32 for the
critical ones) keeps SmolLM2's perplexity closer to fp32 than uniform int8, for a little more size.

    python benchmarks/mixed_precision.py [--critical 0.2] [--docs 16] [--ppl-tokens 1024] [--tokens 256] [--reps 5]

Variants, all in one process on the same inputs: fp32; for each int8 mode (weight-only: mindset's
Int8Linear, per-row scales, float matmul; dynamic: torch's quantize_dynamic, int8 activations and matmul):
uniform int8 of every attention and MLP Linear, role-aware (the top --critical fraction of the 60 blocks by
attribution on the canaries' and the train text's losses stay fp32), and a control with the same number of
fp32 blocks chosen at random (seeded). Embedding and tied head stay fp32 everywhere. Size: weight bytes
as stored. Latency: one forward pass over --tokens tokens, median of --reps, on the CPU. Perplexity: the
first --ppl-tokens of the valid split. Canary accuracy on capitals and ordering (--docs documents each,
not the ones attribution read).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

TASKS = ("capitals", "ordering")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critical", type=float, default=0.2, help="fraction of blocks kept in fp32")
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--ppl-tokens", type=int, default=1024)
    parser.add_argument("--attr-tokens", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per timed forward pass")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    import warnings

    import transformers

    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")  # torch's notice that torch.ao is deprecated

    transformers.utils.logging.set_verbosity_error()
    from mindset.circuits import score_suite
    from mindset.circuits.prune import attribution_scores
    from mindset.circuits.quantize import block_names, critical_blocks, quantize_blocks, weight_bytes
    from mindset.circuits.suite import build_suite
    from mindset.data import corpus_text
    from mindset.evaluate import perplexity_of_ids
    from mindset.models import load

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    tok = loaded.tokenizer
    scored, attr = [], []
    for task in TASKS:
        first, rest = build_suite(task, limit=2 * args.docs).split(args.docs)
        scored.append(first)
        attr.append(rest)
    valid_ids = tok(corpus_text("valid"), add_special_tokens=False)["input_ids"]
    ppl_ids = valid_ids[: args.ppl_tokens]
    timing_ids = torch.tensor([valid_ids[: args.tokens]])
    attr_ids = tok(corpus_text("train")[: args.attr_tokens * 8], add_special_tokens=False)["input_ids"][: args.attr_tokens]

    critical = critical_blocks(attribution_scores(loaded, attr, attr_ids), args.critical)
    control = random.Random(0).sample(block_names(loaded.model), len(critical))
    variants = {"fp32": lambda: loaded}
    for mode in ("weight-only", "dynamic"):
        variants[f"{mode}: uniform int8"] = lambda mode=mode: quantize_blocks(loaded, mode=mode)
        variants[f"{mode}: role-aware, {len(critical)} critical blocks fp32"] = lambda mode=mode: quantize_blocks(loaded, critical, mode=mode)
        variants[f"{mode}: {len(control)} random blocks fp32 (control)"] = lambda mode=mode: quantize_blocks(loaded, control, mode=mode)
    results = {}
    for name, build in variants.items():
        variant = build()
        model = variant.model.eval()
        with torch.inference_mode():
            model(input_ids=timing_ids)  # warm-up
            times = []
            for _ in range(args.reps):
                start = time.perf_counter()
                model(input_ids=timing_ids)
                times.append(time.perf_counter() - start)
        results[name] = {
            "bytes": weight_bytes(model), "latency_s": statistics.median(times),
            "ppl": perplexity_of_ids(model, ppl_ids, context=512, stride=512).perplexity,
            **{s.name: score_suite(variant, s).accuracy for s in scored},
        }
        print(name, results[name], flush=True)
        del variant, model
    base = results["fp32"]
    headers = ["variant", "weights MB", "size × fp32", "forward ms", "speed × fp32", "valid ppl", "ppl × fp32", *TASKS]
    rows = [
        [name, f"{r['bytes'] / 1e6:.1f}", f"{r['bytes'] / base['bytes']:.2f}", f"{1000 * r['latency_s']:.0f}",
         f"{base['latency_s'] / r['latency_s']:.2f}", f"{r['ppl']:.3f}", f"{r['ppl'] / base['ppl']:.4f}", *[f"{r[t]:.3f}" for t in TASKS]]
        for name, r in results.items()
    ]
    publish(
        __file__, f"Role-aware int8 vs uniform int8 on SmolLM2-135M ({torch.get_num_threads()} CPU threads, {args.tokens}-token forward)",
        headers, rows, {"args": vars(args), "critical": critical, "control": control, "results": results},
    )


if __name__ == "__main__":
    main()
