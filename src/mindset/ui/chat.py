"""Chat with the model being edited: `/v1/...`, the OpenAI-compatible API of `mindset serve`, inside the workbench,
with two model ids, `original` (the loaded model) and `current` (the model as it is after the edits so far).

The API is serve's own app (serve.app.create_app: the same generation, log-probabilities and SSE), over a pool
of those two models. `current` follows the workbench: each request for it reads the workbench's current model
under its lock (so an edit in progress is waited for, never seen half-applied), and when an edit, undo or
redo has changed it since, the pool swaps in an engine for the new model (ModelPool.replace); answers
already streaming finish on the model they began with. The workbench's token guards /v1 as it guards /api
(security.guard); the page's Chat view and any OpenAI client (base_url .../v1, api_key = the token) use it.

`POST /api/chat/retrieved` says, for a reply, which memory entries each of its tokens was predicted with
(ui/retrieved.py).
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute, Match, NoMatchFound

from mindset.serve.pool import ModelPool

PREFIX = "/v1"
MODELS = ("original", "current")


class EditedModels(ModelPool):
    """The pool /v1 serves: `original` and `current`, both handed over loaded; `current` follows the workbench."""

    def __init__(self, workbench):
        super().__init__(dict.fromkeys(MODELS), preloaded={"original": workbench.original, "current": workbench.current})
        self.workbench = workbench
        self._started = False
        self._switch = threading.Lock()

    def start(self) -> None:
        """Idempotent: the pool starts with the first /v1 request (a mounted app gets no lifespan of its own)."""
        with self._switch:
            if not self._started:
                self._started = True
                super().start()

    def stop(self) -> None:
        with self._switch:
            if self._started:
                self._started = False
                super().stop()

    def served(self, name: str):
        """The model `name` is served from now (a LoadedModel)."""
        with self._lock:
            return self._entry(name).loaded

    async def acquire(self, name: str):
        self.start()
        if name == "current":
            current = await asyncio.to_thread(lambda: self.workbench.current)  # the lock: waits for an edit in progress
            self.follow(current)
        return await super().acquire(name)

    def follow(self, current) -> None:
        """Serve `current` as `current` from now on, unless it already is."""
        with self._switch:
            if self.served("current") is not current:
                self.replace("current", current)


def v1_app(workbench) -> FastAPI:
    """serve's app over the workbench's two models. fast_cpu off: the engines share model objects with the
    workbench, whose measurements must see the plain modules (the fast path patches them while decoding)."""
    from mindset.serve.app import create_app

    return create_app(EditedModels(workbench), fast_cpu=False)


class Prefixed(BaseRoute):
    """Hands every request under `prefix` to `app` with its path unchanged (serve's routes are /v1/...; a Mount
    would strip the prefix), leaving the other paths to the routes around it, whatever their order."""

    def __init__(self, prefix: str, app) -> None:
        self.prefix, self.app = prefix, app

    def matches(self, scope) -> tuple[Match, dict]:
        path = scope.get("path", "")
        inside = scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/"))
        return (Match.FULL, {}) if inside else (Match.NONE, {})

    async def handle(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **params: Any):
        raise NoMatchFound(name, params)


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(..., pattern="^(system|user|assistant|developer)$")
    content: str


class RetrievedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Literal["original", "current"] = Field("current", description="the model that wrote the reply")
    messages: list[ChatTurn] = Field(..., min_length=1, description="the conversation the reply answered (as sent to /v1/chat/completions)")
    tokens: list[list[Annotated[int, Field(ge=0, le=255)]]] = Field(..., max_length=4096, description="the reply's tokens as their UTF-8 bytes (logprobs.content[i].bytes)")
    top: int = Field(3, ge=1, le=32, description="entries reported per store and token")


def install(app: FastAPI, workbench) -> None:
    """Add /v1 (serve's API over original and current) and the chat view's /api routes to the workbench's app."""
    v1 = app.state.v1 = v1_app(workbench)
    app.router.routes.append(Prefixed(PREFIX, v1))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(owner):
        async with inner(owner) as state:
            yield state
        v1.state.pool.stop()

    app.router.lifespan_context = lifespan
    app.include_router(router(workbench))
    app.openapi = with_v1(app.openapi, v1)


def with_v1(openapi, v1: FastAPI):
    """The workbench's OpenAPI document (/docs) with serve's /v1 paths in it (a schema name both use keeps the workbench's)."""

    def merged() -> dict:
        schema = openapi()  # built once, then cached by FastAPI: the /v1 paths are added the first time
        if PREFIX + "/models" not in schema["paths"]:
            theirs = v1.openapi()
            schema["paths"].update({path: ops for path, ops in theirs["paths"].items() if path.startswith(PREFIX)})
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, body in theirs.get("components", {}).get("schemas", {}).items():
                schemas.setdefault(name, body)
        return schema

    return merged


def router(workbench) -> APIRouter:
    routes = APIRouter()

    @routes.post("/api/chat/retrieved", summary="For each token of a reply: the memory entries its model read while predicting it")
    def post_retrieved(body: RetrievedRequest) -> dict:
        from mindset.ui.retrieved import retrieved

        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in body.messages]
        with workbench.lock:
            loaded = workbench.current if body.model == "current" else workbench.original
            return {"version": workbench.version, **retrieved(loaded, messages, [bytes(t) for t in body.tokens], body.top)}

    return routes
