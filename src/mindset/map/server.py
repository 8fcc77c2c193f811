"""Live sampling (`mindset map --serve`): the map's folder over HTTP, plus /api/sample on the same model.

POST /api/sample {"prompt", "max_new_tokens", "temperature", "chat", "seed"} generates a completion with
mindset.chat (its KV-cache decode loop), then runs one forward pass over prompt + completion to read the
chosen layer's state after every generated token (a causal model's state at position t is its last-token
state for the first t+1 tokens), projects those into the saved layout, and answers the completion, the
new point (x, y: the last state of the path) and the path. One generation runs at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError

MAX_PROMPT_CHARS = 8000


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    max_new_tokens: int = Field(48, ge=1, le=512)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    chat: bool = Field(False, description="wrap the prompt in the chat template (the suites' items are raw text)")
    seed: int = 0


def sample_point(loaded, layout, prompt: str, *, layer: int, max_new_tokens: int = 48, temperature: float = 0.0, top_p: float = 1.0,
                 chat: bool = False, seed: int = 0) -> dict:
    from mindset.chat import SamplingParams, encode_prompt, generate_from_ids
    from mindset.map.encode import hidden_states
    from mindset.map.site import to_frame

    prompt_ids = encode_prompt(loaded.tokenizer, prompt, chat=chat)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    result = generate_from_ids(loaded, prompt_ids, params)
    new = [t for t in result.tokens if t not in set(result.stop_ids)]
    ids = (prompt_ids + new)[-loaded.context_length :]
    start = max(len(ids) - len(new) - 1, 0)
    _, paths = hidden_states(loaded.model, [ids], layer, paths_from=[start])
    path = to_frame(layout.project(paths[0]), layout.settings["frame"])
    return {
        "prompt": prompt,
        "completion": result.text,
        "tokens": len(new),
        "finish_reason": result.finish_reason,
        "x": float(path[-1, 0]),
        "y": float(path[-1, 1]),
        "path": [[round(float(a), 5), round(float(b), 5)] for a, b in path],
    }


def create_map_app(loaded, folder: str | Path) -> FastAPI:
    from starlette.concurrency import run_in_threadpool

    from mindset.map.layout import Layout

    folder = Path(folder)
    layout = Layout.load(folder)
    layer = int(layout.settings.get("layer", -1))
    lock = threading.Lock()
    app = FastAPI(title="mindset map", docs_url=None, redoc_url=None)

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "model": loaded.name, "live": True, "layer": layer, "method": layout.method}

    @app.post("/api/sample")
    async def sample(body: SampleRequest):
        def work() -> dict:
            with lock:
                return sample_point(loaded, layout, body.prompt, layer=layer, max_new_tokens=body.max_new_tokens, temperature=body.temperature,
                                    top_p=body.top_p, chat=body.chat, seed=body.seed)

        try:
            return await run_in_threadpool(work)
        except MindsetError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    app.mount("/", StaticFiles(directory=folder, html=True), name="site")
    return app
