"""Multiple-choice evaluation: mindset vs lm-eval's HF backend, same model folder, same task files, one process.

    pip install 'mindset-lab[lm-eval]'     # lm-eval 0.4.13; torch stays 2.13.0+cpu
    python benchmarks/eval_vs_lm_eval.py [--model smollm2-135m] [--tasks capitals,modus_ponens] [--limit 40] [--reps 2]

For each task: lm-eval (`simple_evaluate` on an `HFLM` built once, so model loading is not timed; batch
sizes 1 and 4) and mindset (`evaluate_task`, what `mindset eval` runs; and with context sharing off, to
separate the engine's gain) score the same documents. Samples/s = documents / wall time of the call.
Runs alternate (lm-eval, mindset, lm-eval, ...) so drift in machine speed hits both; the table shows medians
and the ratio of medians. The scores must be identical — every log-likelihood to 1e-4 and every metric
equal — or the script says so and fails.

The published numbers were taken with OMP_NUM_THREADS=1 on a shared 2-core machine under heavy load: there,
torch's two threads spin on a core another process holds and every run becomes 5-50x slower, for lm-eval
and mindset alike.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="capitals,modus_ponens")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["TQDM_DISABLE"] = "1"
    import transformers
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from mindset.evaluate.peer import compare
    from mindset.evaluate.runner import evaluate_task
    from mindset.evaluate.suites import write_suites
    from mindset.evaluate.taskfile import load_task
    from mindset.evaluate.tasks import Task
    from mindset.models import load, save

    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    loaded = load(args.model, device="cpu", dtype="float32")
    folder = loaded.source.weights if loaded.source.kind in ("embedded", "gguf", "folder") else save(loaded, work / "model")
    files = write_suites(args.tasks.split(","), work / "tasks")
    manager = TaskManager(include_path=[str(work / "tasks")], include_defaults=False)
    lms = {bs: HFLM(pretrained=str(folder), dtype="float32", device="cpu", batch_size=bs) for bs in (1, 4)}

    rows, data, identical = [], {"tasks": {}}, True
    for path in files:
        spec = load_task(path)
        if spec.output_type != "multiple_choice":
            raise SystemExit(f"{spec.task} is not a multiple-choice task")
        times: dict[str, list[float]] = {"lm-eval bs=1": [], "lm-eval bs=4": [], "mindset": [], "mindset, no context sharing": []}
        theirs = ours = None
        for _ in range(args.reps):
            for bs, lm in lms.items():
                start = time.perf_counter()
                theirs = simple_evaluate(model=lm, tasks=[spec.task], task_manager=manager, limit=args.limit, log_samples=True, bootstrap_iters=1000)
                times[f"lm-eval bs={bs}"].append(time.perf_counter() - start)
            for label, share in (("mindset", True), ("mindset, no context sharing", False)):
                start = time.perf_counter()
                ours = evaluate_task(loaded, Task(load_task(path)), limit=args.limit, share_context=share)
                times[label].append(time.perf_counter() - start)
        report = compare(theirs, ours)
        identical &= report.ok
        n = ours.n
        best_lm = min(median(times["lm-eval bs=1"]), median(times["lm-eval bs=4"]))
        for label, values in times.items():
            rate = n / median(values)
            rows.append([spec.task, label, f"{median(values):.1f}", f"{rate:.2f}", f"{best_lm / median(values):.2f}x"])
        data["tasks"][spec.task] = {
            "n": n, "seconds": times, "identical": report.ok, "problems": report.problems[:5],
            "max_loglikelihood_diff": report.max_ll_diff, "lm_eval": report.lm_eval, "mindset": report.mindset,
        }
    publish(
        __file__,
        f"{args.model}, multiple choice on CPU: lm-eval {lms[1].__class__.__name__} vs mindset ({args.limit} docs per task, {args.reps} reps, medians)",
        ["task", "runner", "seconds", "samples/s", "vs best lm-eval"],
        rows,
        {"args": vars(args), "identical_scores": identical, **data},
    )
    if not identical:
        print("FAIL: scores differ between lm-eval and mindset")
        sys.exit(1)
    print("scores identical: every log-likelihood within 1e-4, every metric equal")


if __name__ == "__main__":
    main()
