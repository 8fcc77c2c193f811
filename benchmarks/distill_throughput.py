"""Distillation overhead: `mindset.train.distill` (Lightning) vs a bare PyTorch loop, same work.

    python benchmarks/distill_throughput.py [--model smollm2-135m] [--steps 12] [--batch-size 4] [--seq-len 128]

Both sides: the same student and teacher (the student is a fresh copy each time), the same batches
(StepBatches from the same seed), teacher forward under no_grad, student forward, the same loss,
backward, gradient clipping, AdamW and the LR schedule. Tokens/s is measured over the steps after the
first two (start-up and first-step allocations excluded on both sides); the runs alternate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, publish  # noqa: E402

WARM = 2


class StepClock(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter())


def mindset_run(args, config) -> float:
    from mindset.models import load
    from mindset.train import distill

    student, teacher = load(args.model, device=args.device), load(args.model, device=args.device)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as runs:
        distill(student, teacher, config, runs_dir=runs, callbacks=[clock], progress=False)
    steps = len(clock.times) - WARM
    return steps * config.batch_size * config.seq_len / (clock.times[-1] - clock.times[WARM - 1])


def bare_run(args, config) -> float:
    from mindset.models import load
    from mindset.train.data import StepBatches, read_training_text, token_blocks
    from mindset.train.distill import select_trainable
    from mindset.train.losses import distill_loss
    from mindset.train.module import lr_factor

    student, teacher = load(args.model, device=args.device), load(args.model, device=args.device)
    trainable = select_trainable(student.model, config.trainable)
    blocks = token_blocks(student.tokenizer, read_training_text(config.data), config.seq_len, config.max_train_tokens)
    batches = iter(StepBatches(blocks, config.batch_size, config.seed))
    params = [p for n, p in student.model.named_parameters() if n in trainable]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps, config.min_lr_ratio))
    model, reference = student.model.train(), teacher.model.eval()
    times = []
    for _ in range(config.steps):
        ids = next(batches).to(student.device)
        with torch.no_grad():
            teacher_out = reference(input_ids=ids)
        loss, _ = distill_loss(model(input_ids=ids), teacher_out, ids, config)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        times.append(time.perf_counter())
    return (len(times) - WARM) * config.batch_size * config.seq_len / (times[-1] - times[WARM - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--trainable", default="model.layers.2*", help="glob of parameters to train")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from mindset.train import DistillConfig

    config = DistillConfig(
        name="bench", steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, trainable=[args.trainable],
        checkpoint_every=10**6, max_train_tokens=200_000, warmup_steps=2,
    )  # fmt: skip
    ours, bare = [], []
    for _ in range(args.reps):
        bare.append(bare_run(args, config))
        ours.append(mindset_run(args, config))
    ratio = median([o / b for o, b in zip(ours, bare, strict=True)])
    publish(
        __file__,
        f"Distilling {args.model} (trainable {args.trainable}), batch {args.batch_size} x {args.seq_len}, {args.steps} steps, on {args.device}",
        ["", "bare PyTorch loop", "mindset.train.distill", "ratio"],
        [["tokens/s (median)", f"{median(bare):.0f}", f"{median(ours):.0f}", f"{ratio:.3f}x (overhead {100 * (1 - ratio):.1f}%)"]],
        {"bare_tokens_per_s": bare, "mindset_tokens_per_s": ours, "ratio": ratio, "args": vars(args)},
    )


if __name__ == "__main__":
    main()
