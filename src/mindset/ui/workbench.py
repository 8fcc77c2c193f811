"""The UI's session: the loaded (original) model, the current (edited) one, and the history between them.

Undo keeps snapshots, with replay as the fallback. Each edit runs on a deep copy of the current model
(`ops.apply_op`), so the model before it is already a complete snapshot for free: undo is a pointer move
and takes no time, however slow the edit was. Memory bounds it: the states of the last `snapshots` steps
are kept (SmolLM2 in float32 is 0.54 GB each); an older state is rebuilt by replaying the steps from the
nearest kept one (the original is always kept). Replay gives the same tensors because every random init
takes its seed from the parameters, the same reason the history as a recipe rebuilds the model.

One re-entrant lock guards every read and change, so a request never sees a half-applied edit; a failed
edit raises before the history or the current model changes. After every change the history is written
as a recipe (`mindset-ui-history.yaml` in --root), so a crash or a closed tab loses nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from mindset.errors import MindsetError
from mindset.fileio import atomic_write_text
from mindset.ui import ops
from mindset.ui.paths import inside_root

HISTORY_FILE = "mindset-ui-history.yaml"


@dataclass
class Step:
    op: str
    params: BaseModel
    result: dict = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        """The step as a recipe writes it: {op: {params}}."""
        return {self.op: ops.recipe_params(self.params)}


class Workbench:
    def __init__(self, loaded, root: str | Path, *, snapshots: int = 3, autosave: bool = True):
        if snapshots < 1:
            raise MindsetError(f"snapshots {snapshots}: keep at least 1 state besides the original")
        self.original = loaded
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.snapshots = snapshots
        self.autosave = autosave
        self.agent_memory = None  # mindset ui --agent-memory DIR: a ui.agentdb.AgentMemoryView (chat's database)
        self.version = 0  # bumped by every change; the page compares it to know whether to redraw
        self._steps: list[Step] = []
        self._cursor = 0  # steps[:cursor] are applied; steps[cursor:] can be redone
        self._states: dict[int, Any] = {0: loaded}  # state k = the model after k steps

    # --- reading ----------------------------------------------------------------------------------------

    @property
    def current(self):
        with self.lock:
            return self._states[self._cursor]

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY_FILE

    def applied(self) -> list[Step]:
        with self.lock:
            return self._steps[: self._cursor]

    def history(self) -> dict[str, Any]:
        with self.lock:
            rows = [{"index": i, "op": s.op, "params": ops.recipe_params(s.params), "applied": i < self._cursor, "result": s.result}
                    for i, s in enumerate(self._steps)]  # fmt: skip
            return {"steps": rows, "cursor": self._cursor, "can_undo": self._cursor > 0, "can_redo": self._cursor < len(self._steps), "version": self.version}

    # --- changing ---------------------------------------------------------------------------------------

    def apply(self, op: str, params: dict[str, Any] | None = None) -> Step:
        """Apply edit `op`; the redo tail is dropped. A failure changes nothing."""
        with self.lock:
            parsed = ops.parse_params(op, params)
            applied = ops.apply_op(self.current, op, parsed, self.spec)
            return self._push(Step(op, parsed, applied.result), applied.loaded)

    def commit(self, base, op: str, parsed: BaseModel, applied) -> Step:
        """Add the result of `op` computed outside the lock (a background job) on `base`, which must still be the
        current model: otherwise the result would silently drop the edits made meanwhile, so it is refused."""
        with self.lock:
            if self.current is not base:
                raise MindsetError(f"the model changed while the {op} job ran (an edit, undo or redo); run it again on the current model")
            return self._push(Step(op, parsed, applied.result), applied.loaded)

    def _push(self, step: Step, loaded) -> Step:
        del self._steps[self._cursor :]
        self._states = {k: v for k, v in self._states.items() if k <= self._cursor}
        self._steps.append(step)
        self._cursor += 1
        self._states[self._cursor] = loaded
        self._changed()
        return step

    def preview(self, op: str, params: dict[str, Any] | None = None):
        """What `apply` would give, without keeping it: (the edited model, the step's report). Nothing changes."""
        with self.lock:
            parsed = ops.parse_params(op, params)
            applied = ops.apply_op(self.current, op, parsed, self.spec)
            return applied.loaded, applied.result

    def undo(self) -> Step:
        with self.lock:
            if self._cursor == 0:
                raise MindsetError("nothing to undo: the current model is the loaded one")
            step = self._steps[self._cursor - 1]
            if self._cursor - 1 not in self._states:
                self._states[self._cursor - 1] = self._rebuild(self._cursor - 1)
            self._cursor -= 1
            self._changed()
            return step

    def redo(self) -> Step:
        with self.lock:
            if self._cursor == len(self._steps):
                raise MindsetError("nothing to redo: no undone edit follows the current model")
            step = self._steps[self._cursor]
            if self._cursor + 1 not in self._states:
                self._states[self._cursor + 1] = ops.apply_op(self.current, step.op, step.params, self.spec).loaded
            self._cursor += 1
            self._changed()
            return step

    def replay(self, recipe: str | Path) -> int:
        """Apply the steps of a recipe this UI wrote (e.g. the autosaved history after a crash); returns how many."""
        data = yaml.safe_load(Path(recipe).read_text(encoding="utf-8")) or {}
        steps = data.get("steps") or []
        if data.get("model") not in (None, self.spec):
            raise MindsetError(f"{recipe}: the recipe edits {data.get('model')!r}, but the UI loaded {self.spec!r}; start mindset ui with that model")
        count = 0
        for entry in steps:
            if entry == "inspect":
                continue
            (op, params), = entry.items()
            self.apply(op, {k: v for k, v in (params or {}).items() if k != "save"})
            count += 1
        return count

    def _rebuild(self, k: int):
        """State k from the nearest kept state before it, replaying the steps in between."""
        start = max(j for j in self._states if j <= k)
        loaded = self._states[start]
        for step in self._steps[start:k]:
            loaded = ops.apply_op(loaded, step.op, step.params, self.spec).loaded
        return loaded

    def _changed(self) -> None:
        keep = {0, *range(self._cursor - self.snapshots + 1, self._cursor + 2)}
        self._states = {k: v for k, v in self._states.items() if k in keep}
        self.version += 1
        if self.autosave:
            atomic_write_text(self.history_path, self.recipe())

    # --- the history as a recipe, and saving --------------------------------------------------------------

    @property
    def spec(self) -> str:
        """The loaded model as a recipe names it: a path for folders and files, the name (and seed) otherwise."""
        source = self.original.source
        if source.kind in ("folder", "gguf") and source.path is not None:
            return str(Path(source.path).resolve())
        seed = (source.detail or {}).get("seed", 0) if source.kind == "tiny" else 0
        return f"{source.spec}@{seed}" if seed and "@" not in source.spec else source.spec

    def recipe(self, save: str | None = "model", name: str = "ui-edits") -> str:
        """A recipe YAML that rebuilds the current model from the loaded one; its last step saves the result
        to runs/<name>/<save> (None: no save; a last distill step saves its student to runs/<name>/<its name>/student).
        With no edits it only inspects the model."""
        with self.lock:
            applied = self.applied()
            steps = [s.entry() for s in applied]
            where = None
            if steps and save:
                (op, params), = steps[-1].items()
                if "save" in type(applied[-1].params).model_fields:
                    steps[-1], where = {op: {**params, "save": save}}, f"runs/{name}/{save}"
                else:  # distill saves its student itself
                    where = f"runs/{name}/{params.get('name', op)}/student"
            loaded = self.original
            doc = {"name": name, "model": self.spec, "device": loaded.device.type, "dtype": str(loaded.dtype).removeprefix("torch."),
                   "steps": steps or ["inspect"]}  # fmt: skip
        head = (f"# Written by mindset ui: {len(steps)} edit(s) of {self.spec}. `mindset run` on this file rebuilds the edited model"
                + (f" and saves it to {where}.\n" if where else ".\n"))
        return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

    def save(self, out: str, fmt: str = "hf", *, overwrite: bool = False, precision: str = "f32") -> dict[str, Any]:
        """Save the current model under --root: an HF folder (fmt 'hf') or a GGUF file (fmt 'gguf')."""
        target = inside_root(self.root, out)
        with self.lock:
            current = self.current
            if fmt == "hf":
                from mindset.models import save

                folder = save(current, target, overwrite=overwrite)
                return {"format": "hf", "path": str(folder), "relative": str(folder.relative_to(self.root))}
            if fmt == "gguf":
                from mindset.export import export_gguf

                if target.suffix.lower() != ".gguf":
                    target = target.with_name(target.name + ".gguf")
                info = export_gguf(current, target, precision=precision, modelfile=False, overwrite=overwrite)
                return {"format": "gguf", "path": str(target), "relative": str(target.relative_to(self.root)), **_plain(info)}
        raise MindsetError(f"format {fmt!r}: save as 'hf' (a model folder) or 'gguf'")


def _plain(info: Any) -> dict[str, Any]:
    return {k: v for k, v in (info or {}).items() if isinstance(v, (str, int, float, bool))}
