"""Background jobs of the workbench: heal (the recipe's distill step) and importance maps.

A job runs in its own thread on a snapshot of the current model (a heal on the working copy `ops.apply_op`
makes; an importance map on a deep copy, because ablation hooks and backward passes must not touch the
model other requests read). The model lock is taken only twice: to read which model is current when the
job starts, and, for a heal, to add its result as one more undoable step (`Workbench.commit`, refused if
the model changed meanwhile). So a failed or cancelled job leaves the model as it was, and the page keeps
working while a job runs.

Progress is a list of events ({"type": "progress"|"state", ...}) that `GET /api/jobs/{id}/events` streams as
server-sent events. Cancel sets a flag the job checks at every training step (a Lightning callback added
through `train.distill.extra_callbacks`) or between the layers of an importance map.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError
from mindset.ui import ops

KINDS = ("heal", "importance")
FINISHED = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside a job's work when its cancel flag is set (not a RuntimeError: distill re-raises it as is)."""


class ImportanceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    granularity: list[Literal["head", "mlp", "attn", "layer"]] = Field(["head", "mlp"], min_length=1, description="which components to map")
    suite: str = Field("capitals", description="a shipped circuits task (capitals, modus_ponens, ...) the components are scored on")
    limit: int = Field(8, ge=1, le=1000, description="documents of the suite")
    estimate: Literal["attribution", "exact"] = Field("attribution", description="attribution: one forward+backward pass; exact: one pass per component")
    method: Literal["zero", "mean"] = "zero"
    layers_per_pass: int = Field(4, ge=1, description="layers mapped per pass: progress and cancel come between passes")


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    state: str = "running"
    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def emit(self, **event: Any) -> None:
        with self.changed:
            self.events.append({"t": round(time.time() - self.started, 3), **event})
            self.changed.notify_all()

    def check(self) -> None:
        if self.cancel_flag.is_set():
            raise Cancelled()

    def finish(self, state: str, result: dict | None = None, error: str | None = None) -> None:
        self.state, self.result, self.error, self.finished = state, result, error, time.time()
        self.emit(type="state", state=state, error=error)

    def summary(self) -> dict[str, Any]:
        last = next((e for e in reversed(self.events) if e.get("type") == "progress"), None)
        return {"id": self.id, "kind": self.kind, "params": self.params, "state": self.state, "error": self.error, "progress": last,
                "result": self.result, "seconds": (self.finished or time.time()) - self.started}  # fmt: skip

    def stream(self, since: int = 0, poll: float = 15.0):
        """Events from number `since` on, as they come, until the job has finished: (number, event)."""
        index = since
        while True:
            with self.changed:
                while index >= len(self.events) and self.state not in FINISHED:
                    self.changed.wait(poll)
                    if index >= len(self.events):
                        yield None  # a keep-alive
                batch, done = self.events[index:], self.state in FINISHED
            for event in batch:
                yield index, event
                index += 1
            if done and index >= len(self.events):
                return


class Jobs:
    """The workbench's jobs; one running job of each kind at a time (two heals would race to be the next step)."""

    def __init__(self, workbench):
        self.workbench = workbench
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.importance: dict[str, Any] | None = None  # the latest map, with the model version it was made on
        self._extra: dict[str, tuple] = {}  # kind -> (parse(params), work(job, base, version, parsed)), from register

    def register(self, kind: str, parse, work) -> None:
        """Add a job kind another module defines (the map view's map job): parse checks its parameters, work runs it."""
        self._extra[kind] = (parse, work)

    def list(self) -> list[dict[str, Any]]:
        return [j.summary() for j in self._jobs.values()]

    def get(self, job_id: str) -> Job:
        if job_id not in self._jobs:
            raise MindsetError(f"no job {job_id!r}; GET /api/jobs lists them")
        return self._jobs[job_id]

    def start(self, kind: str, params: dict[str, Any] | None = None) -> Job:
        if kind not in (*KINDS, *self._extra):
            raise MindsetError(f"unknown job kind {kind!r}; choose one of {', '.join((*KINDS, *self._extra))}")
        params = dict(params or {})
        if kind in self._extra:
            parsed = self._extra[kind][0](params)
        else:
            parsed = ops.parse_params("distill", params) if kind == "heal" else _importance_params(params)
        with self._lock:
            running = [j for j in self._jobs.values() if j.kind == kind and j.state == "running"]
            if running:
                raise MindsetError(f"a {kind} job ({running[0].id}) is running; wait for it or cancel it first")
            job = Job(uuid.uuid4().hex[:12], kind, params)
            self._jobs[job.id] = job
        with self.workbench.lock:
            base, version = self.workbench.current, self.workbench.version
        work = self._extra[kind][1] if kind in self._extra else self._heal if kind == "heal" else self._importance
        threading.Thread(target=self._run, args=(job, work, base, version, parsed), daemon=True, name=f"mindset-job-{job.id}").start()
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel_flag.set()
        return job

    def _run(self, job: Job, work, base, version: int, parsed) -> None:
        job.emit(type="state", state="running")
        try:
            job.finish("done", work(job, base, version, parsed))
        except Cancelled:
            job.finish("cancelled")
        except MindsetError as err:
            job.finish("failed", error=str(err))
        except Exception as err:  # a bug: keep the traceback for whoever reads the job
            job.finish("failed", error=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}")

    def _heal(self, job: Job, base, version: int, parsed) -> dict[str, Any]:
        from mindset.train.distill import extra_callbacks

        with extra_callbacks(_watcher(job, parsed.steps)):
            applied = ops.apply_op(base, "distill", parsed, self.workbench.spec)
        job.check()  # cancelled after the last step: still nothing changes
        step = self.workbench.commit(base, "distill", parsed, applied)
        return {"step": {"op": step.op, "result": step.result}, "version": self.workbench.version}

    def _importance(self, job: Job, base, version: int, parsed: ImportanceParams) -> dict[str, Any]:
        """The map a few layers at a time (circuits.importance on those layers' components), so it reports progress
        and can stop between passes. The suite is built and the unablated model scored once, before the passes:
        every pass would score the same baseline again (a forward over the suite per pass, 8 on SmolLM2's 30 layers)."""
        from mindset.circuits.importance import importance
        from mindset.circuits.suite import as_suite, score_suite
        from mindset.models.names import list_components

        copy = ops.working_copy(base)
        suite = as_suite(parsed.suite, limit=parsed.limit)
        unablated = score_suite(copy, suite)
        comps = [c for g in parsed.granularity for c in list_components(copy.model, g)]
        layers = sorted({c.layer for c in comps})
        passes = [layers[i : i + parsed.layers_per_pass] for i in range(0, len(layers), parsed.layers_per_pass)]
        scores: dict[str, float] = {}
        baseline = None
        for done, group in enumerate(passes):
            job.check()
            names = [c.name for c in comps if c.layer in group]
            result = importance(copy, suite, method=parsed.method, components=names, estimate=parsed.estimate, baseline=unablated)
            baseline = {"logprob": result.baseline_logprob, "accuracy": result.baseline_accuracy, "at_chance": result.at_chance}
            scores.update({s.name: s.drop_logprob for s in result.scores})
            job.emit(type="progress", step=done + 1, total=len(passes), layers=group)
        out = {"version": version, "suite": parsed.suite, "estimate": parsed.estimate, "granularity": parsed.granularity,
               "n_docs": parsed.limit, "baseline": baseline, "scores": scores}  # fmt: skip
        self.importance = out
        return out


def _importance_params(params: dict[str, Any]) -> ImportanceParams:
    from pydantic import ValidationError

    try:
        return ImportanceParams.model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        raise MindsetError(f"importance: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}; it takes {', '.join(ImportanceParams.model_fields)}") from None


def _watcher(job: Job, total: int):
    """A Lightning callback: one progress event per optimizer step (loss, and valid perplexity when measured),
    and the cancel check."""
    import lightning as L

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            metrics = trainer.callback_metrics
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            event = {"type": "progress", "step": int(trainer.global_step), "total": total, "loss": float(loss) if loss is not None else None}
            if "valid/ppl" in metrics:
                event["ppl"] = float(metrics["valid/ppl"])
            job.emit(**event)
            job.check()

    return Watch()
