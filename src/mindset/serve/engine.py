"""One model, many requests: a worker thread that advances every active generation one token at a time.

Requests are served round-robin, token by token: a long answer never blocks a short one, and every
client sees its first token after at most one step of each request ahead of it. Each request has its
own KV cache; the model runs batch 1 (batching decode steps across requests would need padded caches).
Cancelled requests (a client that went away) are dropped at their next turn, freeing their cache.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from mindset.chat.completion import CompletionText
from mindset.chat.cpu_decode import fast_cpu_decode
from mindset.chat.generation import stop_token_ids, stream_tokens
from mindset.chat.sampling import SamplingParams


class EngineBusy(Exception):
    """More requests are waiting than the engine accepts."""


@dataclass
class Job:
    prompt_ids: list[int]
    params: SamplingParams  # max_new_tokens: max_tokens, or what the context leaves
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # ("text", str) ... then ("done", reason, n_tokens) or ("error", msg)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, *event: Any) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def cancel(self) -> None:
        self.cancelled.set()


class Engine:
    def __init__(self, loaded, *, max_pending: int = 64, fast_cpu: bool = True):
        self.loaded = loaded
        self.max_pending = max_pending
        self.fast_cpu = fast_cpu
        self.stop_ids = stop_token_ids(loaded.model, loaded.tokenizer)
        self._inbox: queue.Queue[Job] = queue.Queue()
        self._pending = 0  # submitted and not finished, guarded by _lock
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.served = 0

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._work, name="mindset-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread:
            self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._pending >= self.max_pending:
                raise EngineBusy(f"{self._pending} requests are already waiting")
            self._pending += 1
        self._inbox.put(job)

    def _work(self) -> None:
        active: list[tuple[Job, Any, CompletionText]] = []
        # the whole worker runs with the fast CPU path on: per-request patching would interleave badly
        with fast_cpu_decode(self.loaded.model, enabled=self.fast_cpu):
            while self._running.is_set():
                self._admit(active, block=not active)
                for entry in list(active):
                    job, stream, completion = entry
                    if self._step(job, stream, completion):
                        stream.close()
                        active.remove(entry)
                        self._finished()
            for job, stream, _ in active:
                stream.close()
                job.emit("error", "the server is shutting down")

    def _admit(self, active: list, block: bool) -> None:
        try:
            job = self._inbox.get(timeout=0.1) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            if job.cancelled.is_set():
                self._finished()
            else:
                stream = stream_tokens(self.loaded.model, job.prompt_ids, job.params, self.stop_ids, job.params.max_new_tokens, fast_cpu=False)
                active.append((job, stream, CompletionText(self.loaded.tokenizer, self.stop_ids, job.stop)))
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _step(self, job: Job, stream, completion: CompletionText) -> bool:
        """Advance one request by one token; True when it is finished."""
        if job.cancelled.is_set():
            return True
        try:
            token = next(stream)
        except StopIteration:
            tail = completion.close("length")
        except Exception as err:  # a failing request must not take the server down with it
            job.emit("error", f"{type(err).__name__}: {err}")
            return True
        else:
            delta = completion.push(token)
            if delta:
                job.emit("text", delta)
            if not completion.finish_reason:
                return False
            tail = ""
        if tail:
            job.emit("text", tail)
        job.emit("done", completion.finish_reason, len(completion.tokens))
        self.served += 1
        return True

    def _finished(self) -> None:
        with self._lock:
            self._pending -= 1
