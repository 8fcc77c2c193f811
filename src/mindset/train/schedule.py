"""Surgery during pretraining: a schedule of edits (grow_saturated, prune_closed, any step of the variant table)
applied after chosen optimizer steps.

After an edit the parameters differ (heads added or removed), so the optimizer is built again over the new
ones (AdamW's moments restart, as in grow-and-prune work; the learning rate keeps its schedule through an
offset) and the FLOPs per token are re-estimated. The edited model is saved to structure/step=N/; a run
resumed from a later checkpoint loads that structure (models.load restores the surgery's shapes and
modules) and then the checkpoint's weights, so resuming after kill -9 still ends where an uninterrupted
run ends: which heads an edit grew depends on the gates at that step, and is read back, not recomputed.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L


class ScheduledSurgery(L.Callback):
    def __init__(self, schedule: list[dict], tokenizer, structure_dir: Path, seed: int, seq_len: int):
        self.schedule, self.tokenizer, self.folder, self.seed, self.seq_len = schedule, tokenizer, structure_dir, seed, seq_len

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        done = {entry["at"] for entry in module.applied}
        due = [e for e in self.schedule if e["at"] == step and step not in done]
        if due:
            self._apply(trainer, module, step, [{k: v for k, v in e.items() if k != "at"} for e in due])

    def _apply(self, trainer, module, step: int, steps: list[dict]) -> None:
        from mindset.models import save
        from mindset.models.loading import LoadedModel, ModelSource
        from mindset.train.variants import apply_steps

        loaded = LoadedModel(module.student, self.tokenizer, ModelSource(f"pretrain@{step}", "pretrain"))
        loaded, edits = apply_steps(loaded, steps, self.seed + step)
        folder = save(loaded, self.folder / f"step={step:06d}", overwrite=True)
        module.adopt(loaded.model.train(), self.seq_len)
        module.applied.append({"at": step, "edits": edits, "structure": str(folder)})
        module.lr_offset = step
        trainer.strategy.setup_optimizers(trainer)  # the new parameters, the schedule continued from `step`


def load_structure(folder: str | Path, device):
    """The model as the last scheduled edit left it (weights are replaced by the checkpoint's next)."""
    from mindset.models import load

    return load(str(folder), device=device, dtype="float32").model
