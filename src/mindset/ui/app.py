"""The workbench's HTTP API and its page: `create_app(workbench, token=...)`, served by `mindset ui`.

The API is the product (the page is one client; scripts and notebooks are others); OpenAPI at /docs.
User errors (MindsetError: a bad parameter, an unknown op, a path outside --root) are 400 with
{"error": sentence}; a failed edit leaves the current model as it was (Workbench.apply).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError
from mindset.ui.agentdb import router as agent_router
from mindset.ui.architecture import architecture_json
from mindset.ui.canaries import Canaries
from mindset.ui.chat import install as install_chat
from mindset.ui.measure import PROBES, PROMPT, Measurer
from mindset.ui.security import guard, new_token
from mindset.ui.workbench import Workbench

ASSETS = Path(__file__).parent / "assets"
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Probing(Strict):
    probes: list[str] = Field(default_factory=lambda: list(PROBES), min_length=1, max_length=16, description="prompts KL(original ‖ current) is averaged over")
    prompt: str = Field(PROMPT, min_length=1, description="the prompt whose next-token top-5 both models show")


class EditRequest(Probing):
    op: str = Field(..., description="an edit: a row of mindset.surgery.edit_steps.EDITS, or ffn_to_memory (GET /api/ops lists them)")
    params: dict[str, Any] = Field(default_factory=dict, description="the edit's parameters, as its recipe step takes them")
    measure: bool = Field(True, description="answer the quick measurement (KL on the probes, next-token top-5)")


class StepRequest(Probing):
    measure: bool = True


class SaveRequest(Strict):
    out: str = Field(..., description="a folder (or .gguf file) name under --root")
    format: Literal["hf", "gguf"] = "hf"
    overwrite: bool = False
    precision: Literal["f32", "f16", "q8_0"] = "f32"


class JobRequest(Strict):
    kind: Literal["heal", "importance", "map"] = Field(..., description="heal: the distill step as a job; importance: a circuits importance map; map: the map of current against original")
    params: dict[str, Any] = Field(default_factory=dict, description="heal: distill's parameters; importance: granularity, suite, limit, estimate, method")


class MeasureRequest(Probing):
    perplexity: bool = True
    max_tokens: int = Field(512, ge=2, le=100_000, description="tokens of the shipped valid text to score")
    context: int = Field(128, ge=2, le=8192, description="window length for perplexity")
    canaries: list[str] = Field(default_factory=list, description="canary suites to score on both models ('canaries': all six; [] : none)")
    canary_limit: int = Field(8, ge=1, le=1000, description="documents per canary suite")


def create_app(workbench: Workbench, token: str | None = None) -> FastAPI:
    """The API over `workbench`; every /api call needs `token` (a new one when None: read app.state.token)."""
    token = token or new_token()
    app = FastAPI(title="mindset ui", description="Examine, edit and measure a model; every change is a recipe step.", version="1")
    app.state.token, app.state.workbench = token, workbench
    app.middleware("http")(guard(token))
    measurer = Measurer(workbench.original)
    canaries = Canaries(workbench.original)

    @app.exception_handler(MindsetError)
    async def user_error(request: Request, err: MindsetError):
        return JSONResponse({"error": str(err)}, status_code=400)

    def state(measure: bool, probing: Probing | None = None) -> dict[str, Any]:
        with workbench.lock:
            out = {"model": {**architecture_json(workbench.current), "version": workbench.version}, "history": workbench.history()}
            if measure and probing is not None:
                out["measurement"] = measurer.quick(workbench.current, probing.probes, probing.prompt)
            return out

    @app.get("/api/model", summary="The current model's architecture: layers, heads, FFN widths, modules, parameters")
    def get_model() -> dict:
        with workbench.lock:
            return {**architecture_json(workbench.current), "version": workbench.version, "original": workbench.original.name}

    @app.get("/api/module", summary="One module's tensors: shapes and weight statistics")
    def get_module(path: str) -> dict:
        from mindset.ui.architecture import module_stats

        with workbench.lock:
            return module_stats(workbench.current, path)

    @app.get("/api/ops", summary="The edits POST /api/edits accepts, with their parameters")
    def get_ops() -> list[dict]:
        from mindset.ui.ops import op_catalog

        return op_catalog()

    @app.post("/api/edits", summary="Apply one edit; answers the new architecture and a quick measurement")
    def post_edit(body: EditRequest) -> dict:
        with workbench.lock:
            start = time.perf_counter()
            step = workbench.apply(body.op, body.params)
            edit_s = time.perf_counter() - start
            out = state(body.measure, body)
            return {**out, "step": {"op": step.op, "result": step.result}, "seconds": {"edit": edit_s, "total": time.perf_counter() - start}}

    @app.post("/api/preview", summary="What an edit would do (parameters, bytes, changed layers, KL), without applying it")
    def post_preview(body: EditRequest) -> dict:
        with workbench.lock:
            edited, result = workbench.preview(body.op, body.params)
            before, after = result.get("parameters", [None, None])
            element = workbench.current.dtype.itemsize
            out = {"op": body.op, "result": result, "parameters": [before, after], "bytes_delta": None if before is None else (after - before) * element}
            if body.measure:
                quick = measurer.quick(edited, body.probes, body.prompt)
                out.update(measurement=quick, preserved=quick["kl"]["mean"] < 1e-6)
            return out

    @app.post("/api/undo", summary="Undo the last edit")
    def post_undo(body: StepRequest) -> dict:
        with workbench.lock:
            step = workbench.undo()
            return {**state(body.measure, body), "undone": step.op}

    @app.post("/api/redo", summary="Redo the last undone edit")
    def post_redo(body: StepRequest) -> dict:
        with workbench.lock:
            step = workbench.redo()
            return {**state(body.measure, body), "redone": step.op}

    @app.get("/api/history", summary="The edits so far, and which are applied")
    def get_history() -> dict:
        return workbench.history()

    @app.get("/api/recipe", summary="A recipe YAML that rebuilds the current model from the loaded one", response_class=PlainTextResponse)
    def get_recipe(save: str = "model", name: str = "ui-edits") -> PlainTextResponse:
        return PlainTextResponse(workbench.recipe(save=save or None, name=name), media_type="application/yaml")

    @app.post("/api/save", summary="Save the current model under --root: an HF folder, or GGUF")
    def post_save(body: SaveRequest) -> dict:
        return workbench.save(body.out, body.format, overwrite=body.overwrite, precision=body.precision)

    @app.post("/api/measure", summary="Perplexity on the shipped valid text, KL(original ‖ current) on probe prompts, canary suite deltas")
    def post_measure(body: MeasureRequest) -> dict:
        with workbench.lock:
            start = time.perf_counter()
            out = measurer.quick(workbench.current, body.probes, body.prompt)
            if body.perplexity:
                out["perplexity"] = measurer.perplexity(workbench.current, body.max_tokens, body.context)
            if body.canaries:
                out["canaries"] = canaries.deltas(workbench.current, body.canaries, body.canary_limit)
            return {**out, "version": workbench.version, "seconds": time.perf_counter() - start}

    _jobs(app, workbench)
    _memory(app, workbench)
    _views(app)
    app.include_router(agent_router(workbench))  # /api/agent: mindset chat's database (--agent-memory), ui/agentdb.py
    _page(app)
    install_chat(app, workbench)  # /v1 (original, current) and the Chat view's /api
    return app


def _jobs(app: FastAPI, workbench: Workbench) -> None:
    """Background jobs (jobs.py) and the overlays they and the weights give."""
    import json

    from mindset.ui import overlays
    from mindset.ui.jobs import Jobs

    jobs = app.state.jobs = Jobs(workbench)

    @app.post("/api/jobs", summary="Start a background job: heal (distill) or importance; answers its id")
    def post_job(body: JobRequest) -> dict:
        return jobs.start(body.kind, body.params).summary()

    @app.get("/api/jobs", summary="Every job of this session, with its state and latest progress")
    def get_jobs() -> list[dict]:
        return jobs.list()

    @app.get("/api/jobs/{job_id}", summary="One job: state, latest progress, result or error")
    def get_job(job_id: str) -> dict:
        return jobs.get(job_id).summary()

    @app.post("/api/jobs/{job_id}/cancel", summary="Stop a job; the model stays as it was")
    def cancel_job(job_id: str) -> dict:
        return jobs.cancel(job_id).summary()

    @app.get("/api/jobs/{job_id}/events", summary="The job's progress as server-sent events, until it finishes")
    def job_events(job_id: str, request: Request, since: int = 0) -> StreamingResponse:
        job = jobs.get(job_id)
        last = request.headers.get("last-event-id", "")
        since = max(since, int(last) + 1) if last.isdigit() else since  # a reconnecting EventSource resumes

        def lines():
            for item in job.stream(since):
                if item is None:
                    yield ": keep-alive\n\n"
                    continue
                number, event = item
                yield f"id: {number}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"

        return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/overlays", summary="Numbers to paint on the architecture: importance (from a job), gate values, weight change")
    def get_overlays() -> dict:
        with workbench.lock:
            current, version = workbench.current, workbench.version
            out = {"version": version, "gates": overlays.gate_values(current), "weight_change": overlays.weight_change(workbench.original, current)}
        latest = jobs.importance
        out["importance"] = latest if latest and latest["version"] == version else None
        out["importance_stale"] = latest if latest and latest["version"] != version else None
        return out


def _memory(app: FastAPI, workbench: Workbench) -> None:
    """The memory view's reads; memorize and forget are edits (POST /api/edits op memorize / forget)."""
    from mindset.ui import memory

    @app.get("/api/memory", summary="The current model's memory stores: per store its kind, layer, fill, capacity and counters")
    def get_memory() -> dict:
        with workbench.lock:
            return {"stores": memory.stores(workbench.current), "version": workbench.version}

    @app.get("/api/memory/{path}/entries", summary="One page of a memory's entries (path: its layer index, or its module path, e.g. lm_head)")
    def get_entries(path: str, offset: int = 0, limit: int = 20, sort: str = "id", descending: bool = True) -> dict:
        with workbench.lock:
            return memory.entries(workbench.current, path, offset, limit, sort, descending)

    @app.get("/api/memory/search", summary="Per store, the entries nearest to the last position of a text")
    def get_search(text: str, k: int = 5) -> dict:
        if not 1 <= k <= 100:
            raise MindsetError(f"k {k}: ask for 1 to 100 entries per store")
        with workbench.lock:
            return {"text": text, "stores": memory.search(workbench.current, text, k)}


def _views(app: FastAPI) -> None:
    """The diff view, the activation overlay and the map view, each an APIRouter of its own module."""
    from mindset.ui import activations, diff, mapview

    app.include_router(diff.router)
    app.include_router(activations.router)
    mapview.register(app.state.jobs)
    app.include_router(mapview.router)


def _page(app: FastAPI) -> None:
    """The page: index.html and its assets, with a policy that lets it load nothing from elsewhere."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(ASSETS / "index.html", headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    app.mount("/assets", StaticFiles(directory=ASSETS), name="assets")
