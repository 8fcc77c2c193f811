"""The OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /health, /metrics."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from mindset.chat.generation import encode_prompt
from mindset.chat.sampling import SamplingParams
from mindset.errors import MindsetError
from mindset.serve import embeddings
from mindset.serve.engine import Engine, EngineBusy, Job
from mindset.serve.logprobs import TokenText
from mindset.serve.metrics import RequestCounter, ServerMetrics
from mindset.serve.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ResponseIds, SamplingFields, error_body
from mindset.serve.responses import Answer, ApiError, collect, stream, whole


def create_app(
    loaded, *, model_name: str | None = None, api_key: str | None = None, max_pending: int = 64, fast_cpu: bool = True, batching: bool = True
) -> FastAPI:
    """An app serving `loaded` (a LoadedModel) under `model_name`; generation starts with the app's lifespan.
    batching: decode all requests in one forward per step (False: the round-robin engine, batch 1)."""
    engine = Engine(loaded, max_pending=max_pending, fast_cpu=fast_cpu, batching=batching)
    metrics = ServerMetrics(pending=lambda: engine.pending, running=lambda: engine.running)
    engine.metrics = metrics
    token_text = TokenText(loaded.tokenizer)
    name = model_name or loaded.name

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="mindset", version="1", lifespan=lifespan)
    app.state.engine, app.state.metrics = engine, metrics
    app.add_middleware(RequestCounter, metrics=metrics)

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

    def check_model(requested: str) -> None:
        if requested != name:
            raise ApiError(404, f"the model {requested!r} does not exist; this server serves {name!r}", param="model", code="model_not_found")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "pending": engine.pending, "served": engine.served, "batching": engine.batching}

    @app.get("/metrics", response_class=Response)
    async def scrape() -> Response:
        """Prometheus text format; open like /health (scrapers rarely hold API keys), and as local as the server."""
        return Response(metrics.scrape(), media_type=metrics.content_type)

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
        answer = Answer(ResponseIds("chatcmpl", name), True, len(prompt_ids), token_text, logprobs=body.logprobs is True)
        return await _respond(request, body, prompt_ids, answer, top=body.logprob_top())

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(body: CompletionRequest, request: Request):
        prompt = body.prompt_value()
        if isinstance(prompt, str):
            prompt_ids, text = list(loaded.tokenizer(prompt, add_special_tokens=True)["input_ids"]), prompt
        else:
            prompt_ids, text = list(prompt), _decode_ids(prompt)
        if not prompt_ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        answer = Answer(ResponseIds("cmpl", name), False, len(prompt_ids), token_text, body.logprobs is not None, text, body.echo)
        return await _respond(request, body, prompt_ids, answer, top=body.logprobs, score_prompt=body.echo and body.logprobs is not None)

    def _decode_ids(ids: list[int]) -> str:
        vocab = len(loaded.tokenizer)
        if ids and max(ids) >= vocab:
            raise ApiError(400, f"the prompt has token id {max(ids)}; this model's ids are 0 to {vocab - 1}", param="prompt")
        return loaded.tokenizer.decode(ids)

    @app.post("/v1/embeddings", dependencies=[Depends(authorize)])
    async def create_embeddings(body: EmbeddingRequest):
        check_model(body.model)
        try:
            embeddings.check_dimensions(loaded, body.dimensions)
            id_lists = embeddings.token_lists(loaded, body.inputs())
            vectors = await engine.call(lambda: embeddings.embed(loaded, id_lists, body.layer, body.pooling, body.normalize))
        except MindsetError as err:
            raise ApiError(400, str(err), param="input") from None
        except EngineBusy as err:
            raise ApiError(429, f"the server is busy ({err}); retry shortly", "rate_limit_error") from None
        n_tokens = sum(len(ids) for ids in id_lists)
        metrics.prompt_tokens.inc(n_tokens)
        return embeddings.response(name, vectors, body.encoding_format, n_tokens)

    async def _respond(request: Request, body: SamplingFields, prompt_ids: list[int], answer: Answer, top: int | None, score_prompt: bool = False):
        check_model(body.model)
        job = _job(body, prompt_ids, top, score_prompt)
        try:
            engine.submit(job)
        except EngineBusy as err:
            raise ApiError(429, f"the server is busy ({err}); retry shortly", "rate_limit_error") from None
        metrics.prompt_tokens.inc(len(prompt_ids))
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(stream(job, answer, include_usage), media_type="text/event-stream")
        return whole(answer, await collect(request, job))

    def _job(body: SamplingFields, prompt_ids: list[int], top: int | None, score_prompt: bool) -> Job:
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
        budget = (limit if limit is not None else context - len(prompt_ids)) or 1  # 0 (echo only): nothing is generated
        params = SamplingParams(max_new_tokens=budget, temperature=body.temperature, top_p=body.top_p, seed=request_seed(body.seed))
        return Job(prompt_ids, params, body.stop_list(), loop=asyncio.get_running_loop(), logprobs=top, score_prompt=score_prompt, generate=limit != 0)

    return app


def request_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one: without a seed, two sampled answers to one prompt differ (as in OpenAI's API)."""
    import secrets

    return seed if seed is not None else secrets.randbelow(2**31)
