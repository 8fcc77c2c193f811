"""Int8 weights: single-stream decode speed of SmolLM2-135M in mindset against llama.cpp's Q8_0.

    python benchmarks/int8_speed.py [--reps 3] [--new-tokens 64] [--threads 2] [--no-accuracy] [--clock wall|cpu] [--tag TAG]

Rows, all greedy, one stream, `--new-tokens` new tokens after a chat prompt, `--threads` threads:
- mindset fp32: `load(..., dtype="float32")`, what `mindset chat` runs on a CPU;
- the old Int8Linear: attention and MLP weights int8, dequantized to fp32 at every call (the route
  circuits' quantize used before torch's kernel; head fp32);
- int8, head fp32: torch's int8-weight kernel (`mindset.models.int8`) on attention and MLPs only, one call
  per projection;
- `--dtype int8`, unfused: the same plus the output head int8, one kernel call per projection (what
  `--dtype int8` was before q/k/v and gate/up were fused);
- `--dtype int8`: what `load(spec, dtype="int8")` gives: the same weights, q/k/v and gate/up in one kernel
  call each (bitwise the same numbers as the unfused row);
- llama.cpp: `llama-bench -p 0 -n N -t T` (tg) on mindset's own q8_0 and f32 GGUF exports of the model.
Decode tokens/s = (new tokens - 1) / the time after the first token (prefill excluded, like llama-bench's tg).
`--clock cpu` times mindset's rows by this thread's CPU time instead of the wall clock: with `--threads 1`
that is the work one decode step costs, a steadier figure on a loaded machine (waiting for the CPU is not
counted); llama-bench's rows stay wall-clock, so the ratios against llama.cpp mean nothing then.
Runs interleave (every variant and both llama-bench runs once per repetition) so that load from other
processes falls on all alike; the table shows medians and the medians of per-repetition ratios.

Accuracy, on PROMPTS: each variant's greedy text against fp32's (same tokens, or the first token where
they part), and the log-probabilities of fp32's greedy tokens read teacher-forced by each variant: the
largest and mean |difference| from fp32's.
llama.cpp comes from benchmarks/llamacpp.py (built once, cached). Not run by pytest.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402
from llamacpp import tools  # noqa: E402

MODEL = "smollm2-135m"
PROMPTS = [
    "Tell me a story about a dragon.",
    "What is the capital of France?",
    "Explain photosynthesis to a ten-year-old.",
    "List three uses of a paperclip.",
]


def variants() -> dict:
    """name -> LoadedModel: the fp32 model and its int8 copies."""
    from mindset.models import load
    from mindset.models.int8 import quantize_int8

    fp32 = load(MODEL, device="cpu", dtype="float32")

    def copy_with(head: bool, kernel: bool, fuse: bool = False):
        return type(fp32)(quantize_int8(copy.deepcopy(fp32.model), head=head, kernel=kernel, fuse=fuse), fp32.tokenizer, fp32.source)

    return {
        "mindset fp32": fp32,
        "old Int8Linear (dequantize per call)": copy_with(head=False, kernel=False),
        "int8 kernel, head fp32": copy_with(head=False, kernel=True),
        "--dtype int8 unfused (kernel, head int8)": copy_with(head=True, kernel=True),
        "--dtype int8 (kernel, head int8, fused qkv + gate/up)": load(MODEL, device="cpu", dtype="int8"),
    }


def decode_speed(loaded, prompt_ids: list[int], new_tokens: int, clock=time.perf_counter) -> float:
    """Tokens/s after the first new token; no stop ids, so every run decodes exactly `new_tokens`."""
    from contextlib import closing

    from mindset.chat.generation import stream_tokens
    from mindset.chat.sampling import SamplingParams

    params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens)
    with closing(stream_tokens(loaded.model, prompt_ids, params, (), new_tokens)) as stream:
        next(stream)
        start = clock()
        count = sum(1 for _ in stream)
    return count / (clock() - start)


def llama_bench(binary: Path, gguf: Path, new_tokens: int, threads: int) -> float:
    command = [str(binary), "-m", str(gguf), "-p", "0", "-n", str(new_tokens), "-t", str(threads), "-r", "1", "-o", "json"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"llama-bench failed ({run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
    return float(json.loads(run.stdout)[0]["avg_ts"])


@torch.inference_mode()
def chosen_logprobs(loaded, prompt_ids: list[int], tokens: list[int]) -> torch.Tensor:
    """log p(token) of each of `tokens` after `prompt_ids`, teacher-forced in one forward pass."""
    ids = torch.tensor([prompt_ids + tokens])
    logits = loaded.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(tokens)[:, None])[:, 0]


def accuracy(models: dict, new_tokens: int) -> dict:
    """Per variant: greedy agreement with fp32 on PROMPTS and log-prob differences on fp32's tokens."""
    from mindset.chat.generation import encode_prompt, generate_from_ids
    from mindset.chat.sampling import SamplingParams

    reference = models["mindset fp32"]
    params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens)
    out = {name: {"same_text": 0, "first_difference": [], "max_abs_dlogprob": 0.0, "mean_abs_dlogprob": []} for name in models}
    for prompt in PROMPTS:
        ids = encode_prompt(reference.tokenizer, prompt)
        greedy = {name: generate_from_ids(loaded, ids, params).tokens for name, loaded in models.items()}
        base = chosen_logprobs(reference, ids, greedy["mindset fp32"])
        for name, loaded in models.items():
            tokens, ref = greedy[name], greedy["mindset fp32"]
            out[name]["same_text"] += tokens == ref
            parted = next((i for i, (a, b) in enumerate(zip(tokens, ref)) if a != b), None if tokens == ref else min(len(tokens), len(ref)))
            out[name]["first_difference"].append(parted)
            diff = (chosen_logprobs(loaded, ids, ref) - base).abs()
            out[name]["max_abs_dlogprob"] = max(out[name]["max_abs_dlogprob"], float(diff.max()))
            out[name]["mean_abs_dlogprob"].append(float(diff.mean()))
        out["mindset fp32"]["example"] = reference.tokenizer.decode(greedy["mindset fp32"])
    for entry in out.values():
        entry["mean_abs_dlogprob"] = sum(entry["mean_abs_dlogprob"]) / len(PROMPTS)
    return out


def export_peers(loaded, folder: Path) -> dict[str, Path]:
    from mindset.export import export_gguf

    return {
        f"llama.cpp {precision.upper()} (llama-bench tg)": Path(export_gguf(loaded, folder / f"smollm2-{precision}.gguf", precision, modelfile=False)["gguf"])
        for precision in ("q8_0", "f32")
    }


def measure(models: dict, peers: dict[str, Path], binary: Path, reps: int, new_tokens: int, threads: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """tokens/s per row and repetition, mindset variants and llama-bench runs interleaved."""
    from mindset.chat.generation import encode_prompt

    ids = encode_prompt(models["mindset fp32"].tokenizer, PROMPTS[0])
    for loaded in models.values():
        decode_speed(loaded, ids, 8)  # warm-up: first calls pay for allocations
    speeds: dict[str, list[float]] = {name: [] for name in [*models, *peers]}
    for rep in range(reps):
        for name, loaded in models.items():
            speeds[name].append(decode_speed(loaded, ids, new_tokens, clock))
        for name, gguf in peers.items():
            speeds[name].append(llama_bench(binary, gguf, new_tokens, threads))
        print(f"repetition {rep + 1}/{reps}: " + ", ".join(f"{k}: {v[-1]:.1f}" for k, v in speeds.items()), flush=True)
    return speeds


def table(speeds: dict[str, list[float]], quality: dict, sizes: dict[str, int], q8_name: str) -> list[list]:
    fp32 = speeds["mindset fp32"]
    rows = []
    for name, values in speeds.items():
        vs_fp32 = median([v / b for v, b in zip(values, fp32, strict=True)])
        vs_q8 = median([v / b for v, b in zip(values, speeds[q8_name], strict=True)])
        q = quality.get(name)
        agree = f"{q['same_text']}/{len(PROMPTS)}" if q else "-"
        dlp = f"{q['max_abs_dlogprob']:.4f}" if q else "-"
        size = f"{sizes[name] / 2**20:.0f}" if name in sizes else "-"
        rows.append([name, f"{median(values):.1f}", f"{vs_fp32:.2f}x", f"{vs_q8:.2f}x", size, agree, dlp])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=True, help="also compare greedy text and log-probs with fp32")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: time mindset's rows by this thread's CPU time (use with --threads 1)")
    parser.add_argument("--tag", default="", help="write int8_speed.TAG.json instead of int8_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from mindset.circuits.quantize import weight_bytes

    binary = tools("llama-bench")["llama-bench"]
    models = variants()
    with tempfile.TemporaryDirectory() as tmp:
        peers = export_peers(models["mindset fp32"], Path(tmp))
        sizes = {name: weight_bytes(loaded.model) for name, loaded in models.items()} | {name: path.stat().st_size for name, path in peers.items()}
        clock = time.thread_time if args.clock == "cpu" else time.perf_counter
        speeds = measure(models, peers, binary, args.reps, args.new_tokens, args.threads, clock)
    quality = accuracy(models, args.new_tokens) if args.accuracy else {}
    q8_name = next(name for name in peers if "Q8_0" in name)
    headers = ["variant", "decode tok/s", "vs mindset fp32", "vs llama.cpp Q8_0", "weights MiB", "greedy = fp32", "max |Δ log p|"]
    timing = "mindset rows by thread CPU time, llama.cpp by wall clock" if args.clock == "cpu" else "wall clock"
    title = f"SmolLM2-135M single-stream greedy decode, {args.new_tokens} new tokens, {args.threads} threads, {timing} (medians of {args.reps})"
    publish(str(Path(__file__).with_suffix(f".{args.tag}.py" if args.tag else ".py")), title, headers, table(speeds, quality, sizes, q8_name), {
        "args": vars(args), "speeds": speeds, "quality": quality, "weight_bytes": sizes, "prompts": PROMPTS,
        "note": "runs interleaved so that load from other processes falls on all rows alike",
    })  # fmt: skip


if __name__ == "__main__":
    main()
