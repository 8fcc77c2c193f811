"""Peer check: mindset's scores against lm-eval's own, on the same HF folders and the same local task files.

    pip install 'mindset-lab[lm-eval]'     # lm-eval 0.4.13; torch stays 2.13.0+cpu
    python benchmarks/peer_check.py [--limit 10] [--models tiny-llama,tiny-gpt2,smollm2-135m] [--tasks capitals,arithmetic,canaries]

Tiny models are saved with `mindset.models.save` into a temporary HF folder; SmolLM2 is read from the
folder mindset caches its GGUF into. lm-eval 0.4.13 runs its HF backend (`--model hf`) on that folder with
the task YAML mindset writes; mindset runs the same files. Compared per task: every prompt, every choice's
log-likelihood (to 1e-4), every generation and filtered answer, every per-document metric, every mean and
standard error. The test suite runs the same check on smaller slices (tests/evaluate/test_peer_check.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-llama,tiny-gpt2,smollm2-135m")
    parser.add_argument("--tasks", default="capitals,arithmetic,canaries")
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    import transformers

    from mindset.evaluate.peer import peer_check
    from mindset.evaluate.suites import write_suites
    from mindset.models import load, save

    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="peer-check-"))
    files = write_suites(args.tasks.split(","), work / "tasks")
    rows, data, ok = [], {}, True
    for spec in args.models.split(","):
        loaded = load(spec, device="cpu", dtype="float32")
        folder = loaded.source.weights if loaded.source.weights else save(loaded, work / spec)
        del loaded
        for report in peer_check(folder, files, limit=args.limit):
            ok &= report.ok
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in report.mindset.items())
            rows.append([spec, report.task, report.docs, report.loglikelihoods, f"{report.max_ll_diff:.1e}", report.generations, metrics, "equal" if report.ok else f"{len(report.problems)} differences"])
            data[f"{spec}/{report.task}"] = {**report.__dict__, "problems": report.problems[:10]}
    publish(
        __file__,
        f"Peer check: mindset vs lm-eval 0.4.13 (HF backend), {args.limit} documents per task",
        ["model", "task", "docs", "log-likelihoods", "max |Δ|", "generations", "metrics (mindset = lm-eval)", "verdict"],
        rows,
        {"args": vars(args), "all_equal": ok, "reports": data},
    )
    if not ok:
        print("FAIL: mindset and lm-eval differ")
        sys.exit(1)
    print("every score equal to lm-eval's")


if __name__ == "__main__":
    main()
