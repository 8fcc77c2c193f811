"""Several models behind one server: each loaded on demand, and unloaded (least recently used first) when a
memory budget needs the room, or after an idle TTL.

The pool knows models by the name clients send; what serves a loaded model (its engine) is a *runner* the
app makes (`attach(make_runner)`) with start(), stop(), pending and running, so the pool knows nothing of
engines. Loads run on a thread, one at a time (the budget then sees one newcomer at a time); a request for
a model that is not loaded starts its load and waits up to `load_wait` seconds, then gets ModelLoading (503
with Retry-After). A model with requests in flight (a Lease held) is never unloaded. Sizes are what the
model's parameters and buffers take, measured after each load: a model's first load may briefly exceed the
budget before the least recently used idle models are unloaded; later loads make room first.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mindset.errors import MindsetError
from mindset.serve.sizes import format_bytes, model_bytes

log = logging.getLogger("mindset.serve")
POLL_S = 0.02  # how often a waiting request looks at its model's load
FIRST_LOAD_GUESS_S = 2.0  # Retry-After while a model loads for the first time (later: its last load time)


class PoolError(Exception):
    """A request the pool cannot serve now; the app answers `status` in OpenAI's error shape."""

    status, type_, code = 503, "server_error", "model_unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code or self.code
        self.status = status or self.status
        self.retry_after = retry_after  # seconds, for the Retry-After header; None: none

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class UnknownModel(PoolError):
    status, type_, code = 404, "invalid_request_error", "model_not_found"


class ModelLoading(PoolError):
    code = "model_loading"


@dataclass(eq=False)
class Entry:
    """One configured model. Every field is guarded by the pool's lock."""

    name: str
    spec: str | None  # None: handed over loaded (e.g. after surgery), cannot be reloaded, so never unloaded
    loaded: Any = None
    runner: Any = None  # set while loaded and serving
    nbytes: int | None = None  # parameters + buffers, measured at the last load
    users: int = 0  # requests holding or waiting for it
    last_used: float = 0.0
    loading: bool = False
    unloading: bool = False  # detached, its memory not yet freed
    attempt: int = 0  # loads begun; a request knows which one it waited for
    failed: int = -1  # the attempt that failed last
    failure: PoolError | None = None
    permanent: bool = False  # the failure stands (too large for the budget): no retry
    load_began: float = 0.0
    load_seconds: float | None = None

    @property
    def state(self) -> str:
        return "loaded" if self.runner is not None else "loading" if self.loading else "unloading" if self.unloading else "not-loaded"


class Lease:
    """A request's hold on a loaded model: while any is held, the model stays loaded. release() is idempotent."""

    def __init__(self, pool: ModelPool, entry: Entry):
        self.runner = entry.runner
        self._pool, self._entry, self._held = pool, entry, True
        pool._leases[self.runner] = pool._leases.get(self.runner, 0) + 1  # the caller holds the pool's lock

    def release(self) -> None:
        retired = None
        with self._pool._lock:
            if self._held:
                self._held = False
                self._entry.users -= 1
                self._entry.last_used = self._pool._clock()
                self._pool._leases[self.runner] -= 1
                retired = self._pool._drained(self.runner)
        if retired is not None:
            threading.Thread(target=retired.stop, name="mindset-retire", daemon=True).start()

    def hold(self, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        """`chunks`, releasing this lease when they end, fail, or are dropped unread (a client gone before the stream began)."""
        return _HeldStream(chunks, self)


class _HeldStream:
    def __init__(self, chunks: AsyncIterator[str], lease: Lease):
        self._chunks = chunks
        self._release = weakref.finalize(self, lease.release)  # also when the response is dropped unstarted

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._chunks:
                yield chunk
        finally:
            self._release()
            close = getattr(self._chunks, "aclose", None)
            if close is not None:  # left early (a client gone): close the inner stream now, which cancels its generation
                await close()


class ModelPool:
    def __init__(self, specs: Mapping[str, str | None], *, preloaded: Mapping[str, Any] | None = None, load: Callable[[str], Any] | None = None,
                 budget: int | None = None, idle_ttl: float | None = None, load_wait: float = 10.0, clock: Callable[[], float] = time.monotonic):
        """specs: name -> spec (what `load` reads), in order, the first being the default; preloaded: name -> an already
        loaded model (its spec None: kept loaded for good). budget: bytes for all loaded models (None: no limit)."""
        if not specs:
            raise MindsetError("no model to serve; give at least one")
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time
        self._clock, self.budget, self.idle_ttl, self.load_wait = clock, budget, idle_ttl, load_wait
        self._load = load or _default_load
        self._entries = {name: Entry(name, spec) for name, spec in specs.items()}
        self._make_runner: Callable[[str, Any], Any] | None = None
        self._reaper: threading.Thread | None = None
        self._closing = threading.Event()
        self._leases: dict[Any, int] = {}  # runner -> leases held on it
        self._retired: dict[Any, Any] = {}  # runner -> itself, for runners replaced (`replace`) while leases held them: stopped when the last is released
        for name, loaded in (preloaded or {}).items():
            entry = self._entry(name)
            entry.loaded, entry.nbytes = loaded, model_bytes(loaded.model)
            try:
                self._check_fits(entry)
            except PoolError as err:
                raise MindsetError(str(err)) from None
        together = sum(e.nbytes for e in self._entries.values() if e.loaded is not None)
        if budget is not None and together > budget:
            raise MindsetError(f"the models given loaded take {format_bytes(together)} together, more than the --memory-budget of {format_bytes(budget)}")

    # ---------------------------------------------------------------- what the app and /v1/models see

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def describe(self) -> list[dict[str, Any]]:
        """Every configured model, loaded or not: name, state (loaded, loading, unloading, not-loaded), bytes (None until first
        loaded) and how long its last load took (None for one handed over loaded)."""
        with self._lock:
            return [{"id": e.name, "loaded": e.runner is not None, "state": e.state, "bytes": e.nbytes,
                     "load_seconds": None if e.load_seconds is None else round(e.load_seconds, 3)} for e in self._entries.values()]

    def state(self, name: str) -> str:
        with self._lock:
            return self._entry(name).state

    def runners(self) -> list[Any]:
        with self._lock:
            return [e.runner for e in self._entries.values() if e.runner is not None]

    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes or 0 for e in self._entries.values() if e.runner is not None)

    @property
    def pending(self) -> int:
        return sum(r.pending for r in self.runners())

    @property
    def running(self) -> int:
        return sum(r.running for r in self.runners())

    # ---------------------------------------------------------------- life cycle

    def attach(self, make_runner: Callable[[str, Any], Any]) -> None:
        """How a loaded model is served: make_runner(name, loaded) -> a runner (not yet started). Runners of the
        models handed over loaded are made now; start() starts them."""
        self._make_runner = make_runner
        with self._lock:
            for entry in self._entries.values():
                if entry.loaded is not None and entry.runner is None:
                    entry.runner = make_runner(entry.name, entry.loaded)
                    entry.last_used = self._clock()

    def start(self) -> None:
        self._closing.clear()
        for runner in self.runners():
            runner.start()
        if self.idle_ttl is not None:
            self._reaper = threading.Thread(target=self._reap, name="mindset-model-ttl", daemon=True)
            self._reaper.start()

    def stop(self) -> None:
        self._closing.set()
        if self._reaper is not None:
            self._reaper.join(timeout=10)
        for runner in self.runners():
            runner.stop()

    def replace(self, name: str, loaded) -> None:
        """Serve `loaded` under `name` from now on, in a started pool (a model handed over loaded, e.g. the UI's current model
        after an edit): later requests get a new runner; requests in flight finish on the old one, stopped when the last ends."""
        self.state(name)  # UnknownModel before anything starts
        runner = self._make_runner(name, loaded)
        runner.start()
        with self._lock:
            entry = self._entry(name)
            old, entry.loaded, entry.runner, entry.nbytes = entry.runner, loaded, runner, model_bytes(loaded.model)
            self._retired[old] = old
            old = self._drained(old)
        if old is not None:
            threading.Thread(target=old.stop, name="mindset-retire", daemon=True).start()

    def _drained(self, runner):
        """`runner` when it was replaced and no lease holds it any more (the caller stops it), else None; under the lock."""
        if self._leases.get(runner, 0) > 0:
            return None
        self._leases.pop(runner, None)
        return self._retired.pop(runner, None)

    # ---------------------------------------------------------------- requests

    async def acquire(self, name: str) -> Lease:
        """A lease on `name`'s runner, loading the model first if needed (waiting up to load_wait seconds)."""
        with self._lock:
            entry = self._entry(name)
            entry.users += 1
        try:
            return await self._wait_for(entry)
        except BaseException:
            with self._lock:
                entry.users -= 1
            raise

    async def _wait_for(self, entry: Entry) -> Lease:
        deadline, seen = self._clock() + self.load_wait, None
        while True:
            with self._lock:
                if entry.runner is not None:
                    entry.last_used = self._clock()
                    return Lease(self, entry)
                if entry.failure is not None and (entry.permanent or entry.failed == seen):
                    raise entry.failure
                if not entry.loading:
                    self._begin_load(entry)
                seen = entry.attempt
                retry = max(FIRST_LOAD_GUESS_S if entry.load_seconds is None else entry.load_seconds - (self._clock() - entry.load_began), 1.0)
            if self._clock() >= deadline:
                raise ModelLoading(f"the model {entry.name!r} is loading; retry in a few seconds", retry_after=retry)
            await asyncio.sleep(POLL_S)

    def _entry(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            served = ", ".join(repr(n) for n in self._entries)
            raise UnknownModel(f"the model {name!r} does not exist; this server serves {served}")
        return entry

    # ---------------------------------------------------------------- loading and unloading

    def _begin_load(self, entry: Entry) -> None:
        """Mark `entry` loading and load it on a thread (caller holds the lock)."""
        if self._make_runner is None:
            raise RuntimeError("ModelPool.attach() was not called")
        entry.loading, entry.attempt, entry.failure = True, entry.attempt + 1, None
        threading.Thread(target=self._load_entry, args=(entry,), name=f"mindset-load-{entry.name}", daemon=True).start()

    def _load_entry(self, entry: Entry) -> None:
        with self._load_lock:
            with self._lock:
                entry.load_began = self._clock()
            runner = loaded = failure = None
            try:
                if entry.nbytes is not None:
                    self._make_room(entry, entry.nbytes)  # its size is known: room first, then load
                loaded = self._load(entry.spec)
                with self._lock:
                    entry.nbytes = model_bytes(loaded.model)
                self._check_fits(entry)
                self._make_room(entry, entry.nbytes)
                if self._closing.is_set():
                    raise PoolError("the server is shutting down", code="shutting_down")
                runner = self._make_runner(entry.name, loaded)
                runner.start()
            except PoolError as err:
                failure = err
            except MindsetError as err:
                failure = PoolError(f"cannot load the model {entry.name!r}: {err}", code="model_load_failed")
            except Exception as err:  # a bug: its traceback goes to the log, the request gets a 500
                log.exception("loading %s failed", entry.name)
                failure = PoolError(f"loading the model {entry.name!r} failed: {type(err).__name__}: {err}", status=500)
            with self._lock:
                entry.loading, entry.load_seconds = False, self._clock() - entry.load_began
                if failure is None:
                    entry.loaded, entry.runner, entry.last_used = loaded, runner, self._clock()
                else:
                    entry.failure, entry.failed = failure, entry.attempt
                    entry.permanent = failure.code == "model_too_large"
            if failure is None:
                log.info("loaded %s (%s) in %.1f s", entry.name, format_bytes(entry.nbytes), entry.load_seconds)
            else:
                del loaded, runner
                _free_memory()

    def _check_fits(self, entry: Entry) -> None:
        if self.budget is not None and entry.nbytes > self.budget:
            raise PoolError(f"the model {entry.name!r} takes {format_bytes(entry.nbytes)}, more than the whole --memory-budget "
                            f"of {format_bytes(self.budget)}; raise the budget or serve a smaller model", code="model_too_large")

    def _make_room(self, newcomer: Entry, need: int) -> None:
        """Unload the least recently used idle models until `need` more bytes fit in the budget."""
        if self.budget is None:
            return
        while True:
            with self._lock:
                others = [e for e in self._entries.values() if e.runner is not None and e is not newcomer]
                used = sum(e.nbytes or 0 for e in others)
                if used + need <= self.budget:
                    return
                idle = [e for e in others if e.users == 0 and e.spec is not None]
                if not idle:
                    busy = ", ".join(repr(e.name) for e in others)
                    raise PoolError(f"the model {newcomer.name!r} needs {format_bytes(need)}; the --memory-budget of {format_bytes(self.budget)} "
                                    f"is held by models in use ({busy}); retry shortly", code="memory_budget_busy", retry_after=2)
                victim = min(idle, key=lambda e: e.last_used)
            self._evict(victim, "to make room for " + repr(newcomer.name), when=lambda e: e.users == 0)

    def _evict(self, entry: Entry, why: str, when: Callable[[Entry], bool]) -> bool:
        """Unload `entry` if it is still loaded, reloadable and `when(entry)` holds (checked under the lock); the caller holds
        the load lock, so a reload waits until its memory is freed. This frame holds the only reference to the runner."""
        with self._lock:
            if entry.runner is None or entry.spec is None or not when(entry):
                return False
            runner, entry.runner, entry.loaded, entry.unloading = entry.runner, None, None, True
        runner.stop()
        del runner
        _free_memory()
        with self._lock:
            entry.unloading = False
        log.info("unloaded %s (%s) %s", entry.name, format_bytes(entry.nbytes or 0), why)
        return True

    def unload(self, name: str) -> bool:
        """Unload `name` now if it is loaded, idle and reloadable; True if it was unloaded."""
        with self._lock:
            entry = self._entry(name)
        with self._load_lock:
            return self._evict(entry, "on request", when=lambda e: e.users == 0)

    def _reap(self) -> None:
        """Unload models idle for longer than idle_ttl (LM Studio's TTL), checking a few times per TTL."""
        period = min(max(self.idle_ttl / 4, 0.05), 5.0)

        def expired(e: Entry) -> bool:
            return e.users == 0 and self._clock() - e.last_used >= self.idle_ttl

        while not self._closing.wait(period):
            with self._lock:
                candidates = [e for e in self._entries.values() if e.runner is not None and e.spec is not None and expired(e)]
            for entry in candidates:
                with self._load_lock:
                    self._evict(entry, f"after {self.idle_ttl:g} s idle", when=expired)
            del candidates


def _default_load(spec: str):
    from mindset.models import load

    return load(spec)


def _free_memory() -> None:
    """Collect now, so an unloaded model's tensors are gone before the next one loads; then hand the freed memory back
    (CUDA's cache; glibc's heaps, which each loader and engine thread's arena would otherwise keep)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator returns memory its own way
        pass
