"""Featural memory on SmolLM2-135M: perplexity and latency against the dense model, over k.

    python benchmarks/memory_tradeoff.py [--ks 8,32,128,512,1536] [--layer-sets 4,12,20:all]
        [--score exact] [--valid-tokens 1024] [--prefill-tokens 256] [--reps 5] [--decode-steps 16] [--tag NAME]

For each set of layers (default: 4,12,20 and all 30) and each k, the FFN blocks of those layers become
featural memories (mindset.surgery.ffn_to_memory, path "auto": gathered slots for small k, masked dense
projections for large k). Measured in the same process, on the same input, as ratios to the dense model:
- valid-split perplexity on a fixed prefix of --valid-tokens tokens (windows of 512, disjoint);
- prefill latency: one forward pass over --prefill-tokens tokens;
- decode latency: --decode-steps single-token steps over a KV cache of 64 tokens.
Dense and converted runs alternate. Latency ratios are best-of-reps (min time of each side): on a
shared, busy machine the minimum is the run least disturbed by other work (timeit's rule); the JSON also
keeps the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def prefill(model, ids):
    return lambda: model(input_ids=ids, logits_to_keep=1)


def decode(model, prompt, steps):
    def run():
        out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        run.seconds = time.perf_counter() - start  # decode steps only, not the prompt

    return run


def paired_ratio(dense_fn, memory_fn, reps: int, inner=None) -> tuple[float, float, float, float]:
    """(best dense seconds, best memory seconds, ratio of the bests, median of per-pair ratios); runs alternate."""
    dense_fn(), memory_fn()  # warm up both
    dense, memory = [], []
    for _ in range(reps):
        for fn, out in ((dense_fn, dense), (memory_fn, memory)):
            t = timed(fn)
            out.append(getattr(fn, "seconds", t) if inner else t)
    ratios = [m / d for d, m in zip(dense, memory)]
    return min(dense), min(memory), min(memory) / min(dense), median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="8,32,128,512,1536")
    parser.add_argument("--layer-sets", default="4,12,20:all", help="colon-separated layer lists; 'all' for every layer")
    parser.add_argument("--score", default="exact", choices=["exact", "bound"])
    parser.add_argument("--valid-tokens", type=int, default=1024)
    parser.add_argument("--prefill-tokens", type=int, default=256)
    parser.add_argument("--decode-steps", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tag", default=None, help="write memory_tradeoff.TAG.json instead of memory_tradeoff.json")
    args = parser.parse_args()

    from mindset.data import corpus_text
    from mindset.evaluate import perplexity_of_ids
    from mindset.models import load
    from mindset.surgery import ffn_to_memory

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    tokenizer, dense = loaded.tokenizer, loaded.model
    valid_ids = tokenizer(corpus_text("valid"), add_special_tokens=False)["input_ids"][: args.valid_tokens]
    ids = torch.tensor([valid_ids[: args.prefill_tokens]])
    prompt = torch.tensor([valid_ids[:64]])

    def ppl(model) -> float:
        return perplexity_of_ids(model, valid_ids, context=512, stride=512).perplexity

    with torch.inference_mode():
        dense_ppl = ppl(dense)
    rows, results = [], []
    for layer_set in args.layer_sets.split(":"):
        layers = None if layer_set == "all" else layer_set
        for k in (int(v) for v in args.ks.split(",")):
            memory = ffn_to_memory(dense, layers, kind="featural", k=k, score=args.score)
            with torch.inference_mode():
                memory_ppl = ppl(memory)
                d_pre, m_pre, r_pre, med_pre = paired_ratio(prefill(dense, ids), prefill(memory, ids), args.reps)
                d_dec, m_dec, r_dec, med_dec = paired_ratio(decode(dense, prompt, args.decode_steps), decode(memory, prompt, args.decode_steps), args.reps, inner=True)
            label = "all 30" if layers is None else layer_set
            result = {
                "layers": label, "k": k, "ppl": memory_ppl, "ppl_ratio": memory_ppl / dense_ppl,
                "prefill_s": {"dense": d_pre, "memory": m_pre}, "prefill_ratio": r_pre, "prefill_median_pair_ratio": med_pre,
                "decode_ms_per_token": {"dense": 1000 * d_dec / args.decode_steps, "memory": 1000 * m_dec / args.decode_steps}, "decode_ratio": r_dec, "decode_median_pair_ratio": med_dec,
            }
            results.append(result)
            rows.append([label, k, f"{memory_ppl:.2f}", f"{memory_ppl / dense_ppl:.3f}x", f"{1000 * m_pre:.0f}", f"{r_pre:.2f}x", f"{result['decode_ms_per_token']['memory']:.1f}", f"{r_dec:.2f}x"])
            print(rows[-1], flush=True)
            del memory
    headers = ["layers", "k", "valid ppl", "ppl / dense", f"prefill {args.prefill_tokens} tok ms", "prefill / dense", "decode ms/tok", "decode / dense"]
    title = f"Featural memory on SmolLM2-135M, score={args.score} (dense: valid ppl {dense_ppl:.2f} on {len(valid_ids)} tokens)"
    script = __file__ if args.tag is None else str(Path(__file__).with_name(f"memory_tradeoff.{args.tag}.py"))
    publish(script, title, headers, rows, {"args": vars(args), "dense_ppl": dense_ppl, "results": results})


if __name__ == "__main__":
    main()
