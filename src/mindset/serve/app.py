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
from mindset.serve.pool import Lease, ModelPool, PoolError
from mindset.serve.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ResponseIds, SamplingFields, error_body
from mindset.serve.responses import Answer, ApiError, Choices, collect_choices, stream, whole


class Served:
    """One loaded model as the API serves it: the name clients send, the model, its engine and token texts (a pool runner)."""

    def __init__(self, name: str, loaded, engine: Engine):
        self.name, self.loaded, self.engine, self.token_text = name, loaded, engine, TokenText(loaded.tokenizer)

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    @property
    def pending(self) -> int:
        return self.engine.pending

    @property
    def running(self) -> int:
        return self.engine.running


def create_app(models, *, model_name: str | None = None, api_key: str | None = None, max_pending: int = 64, fast_cpu: bool = True,
               batching: bool = True) -> FastAPI:
    """An app serving `models`: a LoadedModel (under `model_name`), or a ModelPool of several; generation starts
    with the app's lifespan. Each loaded model gets its own engine; max_pending bounds each engine.
    batching: decode all requests in one forward per step (False: the round-robin engine, batch 1)."""
    pool = models if isinstance(models, ModelPool) else ModelPool({model_name or models.name: None}, preloaded={model_name or models.name: models})
    metrics = ServerMetrics(pending=lambda: pool.pending, running=lambda: pool.running, loaded=lambda: len(pool.runners()))

    def make_runner(name: str, loaded) -> Served:
        engine = Engine(loaded, max_pending=max_pending, fast_cpu=fast_cpu, batching=batching)
        engine.metrics = metrics
        metrics.model_loads.labels(name).inc()
        return Served(name, loaded, engine)

    pool.attach(make_runner)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.start()
        yield
        pool.stop()

    app = FastAPI(title="mindset", version="1", lifespan=lifespan)
    app.state.pool, app.state.metrics = pool, metrics
    if not isinstance(models, ModelPool):  # one model, kept loaded for good: its engine, as before pools
        app.state.engine = pool.runners()[0].engine
    app.add_middleware(RequestCounter, metrics=metrics)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body, status_code=err.status)

    @app.exception_handler(PoolError)
    async def _pool_error(_: Request, err: PoolError) -> JSONResponse:
        return JSONResponse(error_body(str(err), err.type_, "model", err.code), status_code=err.status, headers=err.headers())

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

    async def serving(requested: str, handle):
        """handle(served) under a lease on the requested model: it stays loaded until the answer (or its stream) ends."""
        lease: Lease = await pool.acquire(requested)
        try:
            response = await handle(lease.runner)
        except BaseException:
            lease.release()
            raise
        if isinstance(response, StreamingResponse):
            response.body_iterator = lease.hold(response.body_iterator)
        else:
            lease.release()
        return response

    @app.get("/health")
    async def health() -> dict[str, Any]:
        runners = pool.runners()
        served = sum(getattr(r.engine, "served", 0) for r in runners)
        return {"status": "ok", "model": pool.names[0], "models": {m["id"]: m["state"] for m in pool.describe()}, "pending": pool.pending, "served": served,
                "batching": {r.name: r.engine.batching for r in runners}}  # per loaded model: a model whose cache can't be batched runs round-robin

    @app.get("/metrics", response_class=Response)
    async def scrape() -> Response:
        """Prometheus text format; open like /health (scrapers rarely hold API keys), and as local as the server."""
        return Response(metrics.scrape(), media_type=metrics.content_type)

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def list_models() -> dict[str, Any]:
        """Every model this server serves, loaded or not (`loaded`; `state`: loaded, loading, unloading or not-loaded; `bytes` and
        `load_seconds` once loaded)."""
        return {"object": "list", "data": [_model_card(m) for m in pool.describe()]}

    @app.get("/v1/models/{model}", dependencies=[Depends(authorize)])
    async def retrieve_model(model: str) -> dict[str, Any]:
        pool.state(model)  # UnknownModel: 404
        return next(_model_card(m) for m in pool.describe() if m["id"] == model)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await serving(body.model, lambda served: _chat(served, body, request))

    async def _chat(served: Served, body: ChatCompletionRequest, request: Request):
        loaded, name, token_text = served.loaded, served.name, served.token_text
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        try:
            prompt_ids = encode_prompt(loaded.tokenizer, messages)
        except MindsetError as err:
            raise ApiError(400, str(err), param="messages") from None
        except Exception as err:  # the chat template itself may reject a conversation (roles, order)
            raise ApiError(400, f"the chat template rejected the messages: {err}", param="messages") from None
        answer = Answer(ResponseIds("chatcmpl", name), True, len(prompt_ids), token_text, logprobs=body.logprobs is True)
        return await _respond(served, request, body, prompt_ids, answer, top=body.logprob_top())

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(body: CompletionRequest, request: Request):
        return await serving(body.model, lambda served: _complete(served, body, request))

    async def _complete(served: Served, body: CompletionRequest, request: Request):
        loaded, name, token_text = served.loaded, served.name, served.token_text
        prompt = body.prompt_value()
        if isinstance(prompt, str):
            prompt_ids, text = list(loaded.tokenizer(prompt, add_special_tokens=True)["input_ids"]), prompt
        else:
            prompt_ids, text = list(prompt), _decode_ids(loaded, prompt)
        if not prompt_ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        answer = Answer(ResponseIds("cmpl", name), False, len(prompt_ids), token_text, body.logprobs is not None, text, body.echo)
        return await _respond(served, request, body, prompt_ids, answer, top=body.logprobs, score_prompt=body.echo and body.logprobs is not None)

    def _decode_ids(loaded, ids: list[int]) -> str:
        vocab = len(loaded.tokenizer)
        if ids and max(ids) >= vocab:
            raise ApiError(400, f"the prompt has token id {max(ids)}; this model's ids are 0 to {vocab - 1}", param="prompt")
        return loaded.tokenizer.decode(ids)

    @app.post("/v1/embeddings", dependencies=[Depends(authorize)])
    async def create_embeddings(body: EmbeddingRequest):
        return await serving(body.model, lambda served: _embed(served, body))

    async def _embed(served: Served, body: EmbeddingRequest):
        loaded, name, engine = served.loaded, served.name, served.engine
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

    async def _respond(served: Served, request: Request, body: SamplingFields, prompt_ids: list[int], answer: Answer, top: int | None,
                       score_prompt: bool = False):
        job = _job(served.loaded, body, prompt_ids, top, score_prompt)
        engine = served.engine
        if body.n > engine.max_pending:
            raise ApiError(400, f"n is {body.n}; this server queues at most {engine.max_pending} generations per model (--max-pending)", param="n")
        choices = Choices(_choice_jobs(job, body.n))
        try:
            engine.submit_all(choices.jobs)
        except EngineBusy as err:
            raise ApiError(429, f"the server is busy ({err}); retry shortly", "rate_limit_error") from None
        metrics.prompt_tokens.inc(len(prompt_ids))
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(stream(choices, answer, include_usage), media_type="text/event-stream")
        return whole(answer, await collect_choices(request, choices))

    def _choice_jobs(job: Job, n: int) -> list[Job]:
        """n jobs for n choices of one prompt: choice i samples with seed + i (greedy ones all decode alike);
        only the first scores the prompt (echo), for all. The engine prefills their prompt once."""
        jobs = [job]
        for index in range(1, n):
            params = job.params.model_copy(update={"seed": job.params.seed + index})
            jobs.append(Job(job.prompt_ids, params, job.stop, job.loop, job.logprobs, score_prompt=False, generate=job.generate))
        return jobs

    def _job(loaded, body: SamplingFields, prompt_ids: list[int], top: int | None, score_prompt: bool) -> Job:
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


def _model_card(model: dict[str, Any]) -> dict[str, Any]:
    return {"id": model["id"], "object": "model", "created": 0, "owned_by": "mindset", **{k: model[k] for k in ("loaded", "state", "bytes", "load_seconds")}}


def request_seed(seed: int | None) -> int:
    """The request's seed, or a fresh one: without a seed, two sampled answers to one prompt differ (as in OpenAI's API)."""
    import secrets

    return seed if seed is not None else secrets.randbelow(2**31)
