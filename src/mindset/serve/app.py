"""The OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions, /v1/models, /health."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from mindset.chat.generation import encode_prompt
from mindset.chat.sampling import SamplingParams
from mindset.errors import MindsetError
from mindset.serve.engine import Engine, EngineBusy, Job
from mindset.serve.protocol import FINISH, ChatCompletionRequest, CompletionRequest, ResponseIds, SamplingFields, error_body, usage

DISCONNECT_POLL_S = 0.5


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, error_body(message, type_, param, code)


def create_app(loaded, *, model_name: str | None = None, api_key: str | None = None, max_pending: int = 64, fast_cpu: bool = True) -> FastAPI:
    """An app serving `loaded` (a LoadedModel) under `model_name`; generation starts with the app's lifespan."""
    engine = Engine(loaded, max_pending=max_pending, fast_cpu=fast_cpu)
    name = model_name or loaded.name

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="mindset", version="1", lifespan=lifespan)
    app.state.engine = engine

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        if first.get("type") == "json_invalid":
            return JSONResponse(error_body("the request body is not valid JSON"), status_code=400)
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(error_body(f"{param or 'body'}: {first.get('msg')}", param=param), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(err.detail), "invalid_request_error"), status_code=err.status_code)

    async def authorize(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):  # constant time
            raise ApiError(401, "invalid API key", code="invalid_api_key")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "pending": engine.pending, "served": engine.served}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "mindset"}]}

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        try:
            prompt_ids = encode_prompt(loaded.tokenizer, messages)
        except MindsetError as err:
            raise ApiError(400, str(err), param="messages") from None
        except Exception as err:  # the chat template itself may reject a conversation (roles, order)
            raise ApiError(400, f"the chat template rejected the messages: {err}", param="messages") from None
        return await _respond(request, body, prompt_ids, chat=True)

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(body: CompletionRequest, request: Request):
        prompt_ids = loaded.tokenizer(body.prompt_text(), add_special_tokens=True)["input_ids"]
        if not prompt_ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        return await _respond(request, body, prompt_ids, chat=False)

    async def _respond(request: Request, body: SamplingFields, prompt_ids: list[int], chat: bool):
        if body.model != name:
            raise ApiError(404, f"the model {body.model!r} does not exist; this server serves {name!r}", param="model", code="model_not_found")
        job = _job(body, prompt_ids)
        try:
            engine.submit(job)
        except EngineBusy as err:
            raise ApiError(429, f"the server is busy ({err}); retry shortly", "rate_limit_error") from None
        ids = ResponseIds("chatcmpl" if chat else "cmpl", name)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_stream(job, ids, chat, len(prompt_ids), include_usage), media_type="text/event-stream")
        text, reason, n_tokens = await _collect(request, job)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": FINISH[reason], "logprobs": None}
            return {**ids.head("chat.completion"), "choices": [choice], "usage": usage(len(prompt_ids), n_tokens)}
        choice = {"index": 0, "text": text, "finish_reason": FINISH[reason], "logprobs": None}
        return {**ids.head("text_completion"), "choices": [choice], "usage": usage(len(prompt_ids), n_tokens)}

    def _job(body: SamplingFields, prompt_ids: list[int]) -> Job:
        context = loaded.context_length
        limit = body.token_limit()
        if len(prompt_ids) >= context or (limit is not None and len(prompt_ids) + limit > context):
            asked = f" plus {limit} new tokens" if limit else ""
            raise ApiError(
                400,
                f"this model's context is {context} tokens; the request has {len(prompt_ids)} prompt tokens{asked}",
                param="messages" if isinstance(body, ChatCompletionRequest) else "prompt",
                code="context_length_exceeded",
            )
        budget = limit or context - len(prompt_ids)
        params = SamplingParams(max_new_tokens=budget, temperature=body.temperature, top_p=body.top_p, seed=request_seed(body.seed))
        return Job(prompt_ids, params, body.stop_list(), loop=asyncio.get_running_loop())

    return app


def request_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one: without a seed, two sampled answers to one prompt differ (as in OpenAI's API)."""
    import secrets

    return seed if seed is not None else secrets.randbelow(2**31)


async def _collect(request: Request, job: Job) -> tuple[str, str, int]:
    """Wait for a whole answer; a client that disconnects meanwhile cancels its generation."""
    parts: list[str] = []
    try:
        while True:
            try:
                event = await asyncio.wait_for(job.events.get(), timeout=DISCONNECT_POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    job.cancel()
                    raise ApiError(499, "client closed the request") from None
                continue
            if event[0] == "text":
                parts.append(event[1])
            elif event[0] == "done":
                return "".join(parts), event[1], event[2]
            else:
                raise ApiError(500, event[1], "server_error")
    finally:
        job.cancel()  # a no-op once finished; stops the work if we leave early


async def _stream(job: Job, ids: ResponseIds, chat: bool, prompt_tokens: int, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format; leaving early (disconnect) cancels the generation."""
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: str | None, finish: str | None = None, role: bool = False) -> str:
        if chat:
            content = {"role": "assistant", "content": ""} if role else ({} if delta is None else {"content": delta})
            choice = {"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps({**ids.head(kind), 'choices': [choice]})}\n\n"

    try:
        if chat:
            yield chunk(None, role=True)
        while True:
            event = await job.events.get()
            if event[0] == "text":
                yield chunk(event[1])
            elif event[0] == "done":
                yield chunk(None, FINISH[event[1]])
                if include_usage:
                    yield f"data: {json.dumps({**ids.head(kind), 'choices': [], 'usage': usage(prompt_tokens, event[2])})}\n\n"
                break
            else:
                yield f"data: {json.dumps(error_body(event[1], 'server_error'))}\n\n"
                break
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()
