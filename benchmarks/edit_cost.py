"""Claim: each architecture edit on SmolLM2-135M takes at most 2 s on 2 cores (issue 15).

    python benchmarks/edit_cost.py [--reps 3]

Each edit runs --reps times, interleaved with the baseline, a bare `copy.deepcopy` of the same model: the
floor of any pure edit (surgery changes a copy), so the ratio says how much the edit itself adds. The table
gives the fastest wall time and that run's process CPU time (steadier on a shared machine).
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
    "duplicate_layers 3": lambda s, m: s.duplicate_layers(m, [3]),
    "move_layer 5 -> 2": lambda s, m: s.move_layer(m, 5, 2),
    "head_gates 0-29": lambda s, m: s.head_gates(m, "0-29"),
    "embedding_shim (576x576)": lambda s, m: s.embedding_shim(m),
    "layerwise_feedback (2,10),(5,20)": lambda s, m: s.layerwise_feedback(m, [(2, 10), (5, 20)]),
}
GATED_OPS = {  # on a gated model whose layers 0-9 saturated and layers 20-29 closed their first kv group
    "grow_saturated (10 layers)": lambda s, m: s.grow_saturated(m, 0.95),
    "prune_closed (10 layers)": lambda s, m: s.prune_closed(m, 0.05),
}
LIMIT_S = 2.0  # the goal per edit


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def trained_gates(surgery, loaded):
    """A gated SmolLM2 as if training had saturated layers 0-9 and closed the first kv group of layers 20-29."""
    import torch

    from mindset.models.anatomy import blocks

    gated = surgery.head_gates(loaded)
    with torch.no_grad():
        for b in blocks(gated.model):
            gate = b.attention.o.gate_logits
            group = b.attention.n_heads // b.attention.n_kv_heads
            if b.index < 10:
                gate.fill_(4.0)
            elif b.index >= 20:
                gate[:group] = -4.0
    return gated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    from mindset import surgery
    from mindset.models import load

    loaded = load("smollm2-135m", device="cpu", dtype="float32")
    gated = trained_gates(surgery, loaded)
    rows, data = [], {}
    for name, op in [*OPS.items(), *GATED_OPS.items()]:
        model = gated if name in GATED_OPS else loaded
        runs = {"edit": [], "deepcopy": []}
        for _ in range(args.reps):
            runs["edit"].append(timed(lambda op=op, model=model: op(surgery, model)))
            runs["deepcopy"].append(timed(lambda model=model: copy.deepcopy(model.model)))
        (w_edit, c_edit), (w_copy, c_copy) = min(runs["edit"]), min(runs["deepcopy"])
        data[name] = {kind: {"wall_s": w, "cpu_s": c} for kind, (w, c) in (("edit", (w_edit, c_edit)), ("deepcopy", (w_copy, c_copy)))}
        rows.append([name, f"{w_edit:.2f}", f"{c_edit:.2f}", f"{w_copy:.2f}", f"{w_edit / w_copy:.1f}x", "yes" if w_edit <= LIMIT_S else "NO"])
    headers = ["edit", "wall s", "cpu s", "deepcopy wall s", "edit / deepcopy", f"≤ {LIMIT_S:g} s"]
    publish(__file__, "Edit cost on SmolLM2-135M (fastest of --reps)", headers, rows, {"reps": args.reps, "limit_s": LIMIT_S, "results": data})


if __name__ == "__main__":
    main()
