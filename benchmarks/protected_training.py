"""Claim: protected training keeps a canary that an unprotected destructive fine-tune destroys.

tiny-llama learns a 26-letter lookup ("x=" -> f(x), the canary), then is fine-tuned at a high learning rate
on random letters that contradict it, twice from the same weights: unprotected (the canary monitor only
watches) and protected (components the importance map marks train at x0.1; a canary drop beyond the
threshold rolls back and tightens). Prints both runs' canary accuracy per check and writes the plot
`protected_training.png` beside this script.

    python benchmarks/protected_training.py [--steps 60] [--lr 1e-2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import publish  # noqa: E402
from toy import destructive_finetune_demo  # noqa: E402

from mindset.circuits.plots import lines_plot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--check-every", type=int, default=5)
    parser.add_argument("--max-drop", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = destructive_finetune_demo(tmp, steps=args.steps, lr=args.lr, check_every=args.check_every, max_drop=args.max_drop)
    plain = {h["step"]: h["accuracy"][demo["suite"]] for h in demo["unprotected"]}
    guarded = {h["step"]: (h["accuracy"][demo["suite"]], h["event"]) for h in demo["protected"]}
    rows = [[step, f"{plain[step]:.3f}", f"{guarded[step][0]:.3f}", guarded[step][1]] for step in sorted(plain)]
    baseline = plain[0]
    kept = [a for a, e in guarded.values() if e in ("baseline", "pass")]
    png = Path(__file__).with_suffix(".png")
    lines_plot(
        {"unprotected": (list(plain), list(plain.values())),
         "protected (measured; rollbacks undo the dips)": (list(guarded), [a for a, _ in guarded.values()])},
        png, title=f"canary accuracy during a destructive fine-tune (lr {args.lr:g})", xlabel="optimizer step",
        ylabel=f"{demo['suite']} accuracy", hline=baseline - args.max_drop, hline_label=f"baseline - {args.max_drop:g}",
    )
    publish(
        __file__, f"Canary accuracy during a destructive fine-tune: unprotected vs protected ({len(demo['rollbacks'])} rollbacks)",
        ["step", "unprotected", "protected", "protected: event"], rows,
        {"args": vars(args), "baseline": baseline, "final_unprotected": plain[max(plain)], "final_protected": guarded[max(guarded)][0],
         "min_kept_protected": min(kept), "protected_components": demo["protected_components"], "rollbacks": demo["rollbacks"],
         "plot": png.name},
    )


if __name__ == "__main__":
    main()
