"""Load and generate: mindset vs plain transformers on SmolLM2-135M, in one process, on the same input.

    python benchmarks/load_and_generate.py [--reps 3] [--new-tokens 64] [--device auto]

1. Load: `mindset.models.load("smollm2-135m")` reading its safetensors cache, vs
   `from_pretrained(..., gguf_file=...)` (model and tokenizer) dequantizing the GGUF every time.
2. Greedy generation: `mindset.chat.generate` — what `mindset chat --prompt` runs — vs `model.generate`
   on the same loaded model, prompts and token budget. Tokens/s = new tokens / wall time (prefill
   included, for both). Also mindset's loop with the CPU matrix-vector path off, to separate the two gains.
   Each prompt's tokens must be identical across all three, or the script says so and fails.

Runs alternate (A, B, A, B, ...) so drift in machine speed hits both; the table shows medians and the
median of the per-run ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Write a short story about a robot who learns to paint.",
    "Explain photosynthesis to a ten-year-old.",
]


def time_call(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_load(reps: int, device: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mindset.models import load
    from mindset.models.loading import locate_embedded

    gguf = locate_embedded("smollm2-135m")
    load("smollm2-135m", device=device)  # make sure the cache exists: its one-off cost is not the claim

    def plain():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).to(device)
        return model, tokenizer

    ours, theirs = [], []
    for _ in range(reps):
        ours.append(time_call(lambda: load("smollm2-135m", device=device, dtype="float32"))[0])
        theirs.append(time_call(plain)[0])
    ratios = [t / o for o, t in zip(ours, theirs, strict=True)]
    return {"mindset_s": ours, "transformers_gguf_s": theirs, "speedup": median(ratios)}


def bench_generate(reps: int, new_tokens: int, device: str) -> dict:
    from mindset.chat import SamplingParams, encode_prompt, generate
    from mindset.models import load

    loaded = load("smollm2-135m", device=device, dtype="float32")
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0)
    model = loaded.model

    def plain(prompt):
        ids = torch.tensor([encode_prompt(loaded.tokenizer, prompt)], device=loaded.device)
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
        return out[0, ids.shape[1] :].tolist()

    def ours(prompt, fast):
        return generate(loaded, prompt, params, fast_cpu=fast).tokens

    for prompt in PROMPTS[:1]:  # warm-up: first calls pay one-off allocation costs
        plain(prompt), ours(prompt, True), ours(prompt, False)
    runs = {"transformers": [], "mindset_loop": [], "mindset": []}
    identical = True
    for _ in range(reps):
        for prompt in PROMPTS:
            t_plain, tokens_plain = time_call(lambda p=prompt: plain(p))
            t_fast, tokens_fast = time_call(lambda p=prompt: ours(p, True))
            t_loop, tokens_loop = time_call(lambda p=prompt: ours(p, False))
            # HF keeps the end token in its output; mindset yields it too: both lists are comparable
            identical &= tokens_plain == tokens_fast == tokens_loop
            n = len(tokens_plain)
            runs["transformers"].append(n / t_plain)
            runs["mindset"].append(len(tokens_fast) / t_fast)
            runs["mindset_loop"].append(len(tokens_loop) / t_loop)
    ratios = [m / t for m, t in zip(runs["mindset"], runs["transformers"], strict=True)]
    loop_ratios = [m / t for m, t in zip(runs["mindset_loop"], runs["transformers"], strict=True)]
    return {"tokens_per_s": runs, "speedup": median(ratios), "loop_speedup": median(loop_ratios), "identical_tokens": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF dequantizer's own progress bar

    load = bench_load(args.reps, args.device)
    gen = bench_generate(args.reps, args.new_tokens, args.device)
    tps = gen["tokens_per_s"]
    rows = [
        ["load smollm2-135m (s)", f"{median(load['transformers_gguf_s']):.2f}", f"{median(load['mindset_s']):.2f}", f"{load['speedup']:.1f}x"],
        ["greedy tokens/s, fast CPU path", f"{median(tps['transformers']):.1f}", f"{median(tps['mindset']):.1f}", f"{gen['speedup']:.2f}x"],
        ["greedy tokens/s, plain loop", f"{median(tps['transformers']):.1f}", f"{median(tps['mindset_loop']):.1f}", f"{gen['loop_speedup']:.2f}x"],
    ]
    publish(
        __file__,
        f"SmolLM2-135M on {args.device}: transformers vs mindset ({args.reps} reps, {len(PROMPTS)} prompts, {args.new_tokens} new tokens max)",
        ["measure", "transformers", "mindset", "mindset speed-up"],
        rows,
        {"load": load, "generate": gen, "args": vars(args)},
    )
    if not gen["identical_tokens"]:
        print("FAIL: greedy tokens differ between transformers and mindset")
        sys.exit(1)
    print("greedy tokens identical across transformers, mindset and mindset's plain loop")


if __name__ == "__main__":
    main()
