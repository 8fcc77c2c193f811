"""GGUF export of SmolLM2-135M: size and fidelity of each precision, read back by transformers.

    python benchmarks/gguf_export.py [--tokens 1024]

For f32, f16 and q8_0: file size (and ratio to f32), export seconds, and against the source model on
the same text (the Austen valid split's first --tokens tokens): max and mean |logit difference|,
top-1 agreement, and perplexity ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from mindset.data import corpus_text
    from mindset.evaluate import perplexity_of_ids
    from mindset.export import export_gguf
    from mindset.models import load

    source = load("smollm2-135m", device="cpu", dtype="float32")
    ids = source.tokenizer(corpus_text("valid"), add_special_tokens=False)["input_ids"][: args.tokens]
    with torch.no_grad():
        reference = source.model(torch.tensor([ids])).logits
    reference_ppl = perplexity_of_ids(source.model, ids).perplexity
    rows, data, f32_bytes = [], {}, None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MINDSET_HOME"] = tmp  # reading the exports back must not touch the user's cache
        for precision in ("f32", "f16", "q8_0"):
            start = time.perf_counter()
            written = export_gguf(source, Path(tmp) / f"smollm2-{precision}.gguf", precision, modelfile=False)
            seconds = time.perf_counter() - start
            back = load(written["gguf"], device="cpu", dtype="float32")
            with torch.no_grad():
                logits = back.model(torch.tensor([ids])).logits
            diff = (logits - reference).abs()
            f32_bytes = f32_bytes or written["bytes"]
            result = {
                "bytes": written["bytes"],
                "export_s": seconds,
                "max_abs_logit_diff": diff.max().item(),
                "mean_abs_logit_diff": diff.mean().item(),
                "top1_agreement": (logits.argmax(-1) == reference.argmax(-1)).float().mean().item(),
                "ppl_ratio": perplexity_of_ids(back.model, ids).perplexity / reference_ppl,
            }
            data[precision] = result
            rows.append(
                [
                    precision,
                    f"{result['bytes'] / 2**20:.0f} MiB ({result['bytes'] / f32_bytes:.2f}x)",
                    f"{seconds:.1f}",
                    f"{result['max_abs_logit_diff']:.2g}",
                    f"{result['mean_abs_logit_diff']:.2g}",
                    f"{100 * result['top1_agreement']:.1f}%",
                    f"{result['ppl_ratio']:.4f}x",
                ]
            )
    publish(
        __file__,
        f"GGUF export of SmolLM2-135M read back by transformers, vs the source on {len(ids)} tokens (source ppl {reference_ppl:.2f})",
        ["precision", "size", "export s", "max |Δlogit|", "mean |Δlogit|", "top-1 agree", "ppl vs source"],
        rows,
        data | {"args": vars(args), "source_ppl": reference_ppl},
    )


if __name__ == "__main__":
    main()
