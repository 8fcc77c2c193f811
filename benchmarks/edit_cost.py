"""Claim: each architecture edit on SmolLM2-135M takes at most 2 s on 2 cores (issue 15); the working copy
(copy-on-write tensors, lent weights the edit replaces) is what makes it so, against a plain deepcopy.

    python benchmarks/edit_cost.py [--reps 3]

Each edit runs --reps times with mindset's working copy and --reps times with `copy.deepcopy` in its place
(the baseline: what surgery did before), interleaved so machine load hits both alike; the table gives the
fastest wall time and the process CPU time of that run (CPU time is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import publish  # noqa: E402

OPS = {
    "widen_ffn 0-29 +256 random": lambda s, m: s.widen_ffn(m, "0-29", add=256, init="random"),
    "widen_ffn [3,7] +512 split": lambda s, m: s.widen_ffn(m, [3, 7], add=512, init="split"),
    "add_heads 0-29 +3 random": lambda s, m: s.add_heads(m, "0-29", 3, init="random"),
    "insert_layers after 7, 4": lambda s, m: s.insert_layers(m, after=7, n=4),
    "remove_heads 0: 0-2": lambda s, m: s.remove_heads(m, {0: [0, 1, 2]}),
    "narrow_ffn 0-29 to 1024": lambda s, m: s.narrow_ffn(m, "0-29", width=1024),
    "drop_layers 29": lambda s, m: s.drop_layers(m, [29]),
}
MODULES = ("mindset.surgery.ffn_width", "mindset.surgery.heads", "mindset.surgery.depth")


def deepcopy_copy(model, inplace, replaced=()):
    return model if inplace else copy.deepcopy(model)


def timed(op, surgery, loaded) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    op(surgery, loaded)
    return time.perf_counter() - wall, time.process_time() - cpu


def copy_rows(loaded, reps: int, working_copy, data: dict) -> list[list[str]]:
    """The working copy alone, against copy.deepcopy: of the model as loaded (weights memory-mapped from the
    cache, so cloned), lending the 90 FFN weights widen_ffn replaces, and of an edited model (copy-on-write)."""
    from mindset import surgery
    from mindset.models.anatomy import blocks

    model = loaded.model
    edited = surgery.drop_layers(loaded, [29]).model  # its tensors live in torch's own memory
    ffn = [p for b in blocks(model) for p in (*b.ffn.inputs, b.ffn.down)]
    cases = {
        "copy only: loaded model": (lambda: working_copy(model, False), lambda: copy.deepcopy(model)),
        "copy only: loaded, FFN weights lent": (lambda: working_copy(model, False, ffn), lambda: copy.deepcopy(model)),
        "copy only: edited model (COW)": (lambda: working_copy(edited, False), lambda: copy.deepcopy(edited)),
    }
    rows = []
    for name, (ours, base) in cases.items():
        runs = {"working copy": [], "deepcopy": []}
        for _ in range(reps):
            for kind, fn in (("working copy", ours), ("deepcopy", base)):
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                runs[kind].append((time.perf_counter() - wall, time.process_time() - cpu))
        (w_ours, c_ours), (w_base, c_base) = min(runs["working copy"]), min(runs["deepcopy"])
        data[name] = {"working copy": {"wall_s": w_ours, "cpu_s": c_ours}, "deepcopy": {"wall_s": w_base, "cpu_s": c_base}}
        rows.append([name, f"{w_ours:.2f}", f"{c_ours:.2f}", f"{w_base:.2f}", f"{c_base:.2f}", f"{w_base / max(w_ours, 1e-9):.1f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    import importlib

    from mindset import surgery
    from mindset.models import load

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    modules = [importlib.import_module(m) for m in MODULES]
    ours = {m: m.working_copy for m in modules}
    rows, data = [], {}
    for name, op in OPS.items():
        runs = {"working copy": [], "deepcopy": []}
        for _ in range(args.reps):
            for kind in runs:
                for m in modules:
                    m.working_copy = ours[m] if kind == "working copy" else deepcopy_copy
                runs[kind].append(timed(op, surgery, loaded))
        for m in modules:
            m.working_copy = ours[m]
        best = {kind: min(r) for kind, r in runs.items()}
        data[name] = {kind: {"wall_s": w, "cpu_s": c} for kind, (w, c) in best.items()}
        (w_ours, c_ours), (w_base, c_base) = best["working copy"], best["deepcopy"]
        rows.append([name, f"{w_ours:.2f}", f"{c_ours:.2f}", f"{w_base:.2f}", f"{c_base:.2f}", f"{w_base / w_ours:.1f}x"])
    rows += copy_rows(loaded, args.reps, ours[modules[0]], data)
    headers = ["edit", "wall s", "cpu s", "deepcopy wall s", "deepcopy cpu s", "speed-up"]
    publish(__file__, "Edit cost on SmolLM2-135M (fastest of --reps)", headers, rows, {"reps": args.reps, "results": data})


if __name__ == "__main__":
    main()
