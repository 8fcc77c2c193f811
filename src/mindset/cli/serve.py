"""mindset serve."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DEFAULT_MODEL, MODEL_HELP, DeviceOpt, DtypeOpt, err_console, load_model
from mindset.errors import MindsetError


def serve(
    models: Optional[list[str]] = typer.Argument(
        None, help=f"models to serve, each SPEC or NAME=SPEC (SPEC: {MODEL_HELP}); the first loads now, the others on their first request "
        f"(default: {DEFAULT_MODEL})", show_default=False),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback exposes the model to the network"),
    port: int = typer.Option(8000, help="TCP port"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="MINDSET_API_KEY", help="require 'Authorization: Bearer KEY'"),
    name: Optional[str] = typer.Option(None, help="model name clients send (default: the model spec); one model only, else NAME=SPEC"),
    max_pending: int = typer.Option(64, "--max-pending", help="requests in flight per model before new ones get 429"),
    memory_budget: Optional[str] = typer.Option(
        None, "--memory-budget", help="memory all loaded models may take, e.g. 2GB or 1.5GiB; the least recently used idle one is "
        "unloaded to make room, and reloaded on its next request (default: no limit)", show_default=False),
    idle_ttl: Optional[float] = typer.Option(None, "--idle-ttl", help="unload a model after this many seconds without requests (default: never)",
                                             show_default=False),
    load_wait: float = typer.Option(10.0, "--load-wait", help="seconds a request waits for its model to load before a 503 with Retry-After"),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="decode all requests in one forward pass per step (off: round-robin, batch 1)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Serve models over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /metrics).

    Several models (`mindset serve base=smollm2-135m edited=runs/x/model`) share one server: each request's `model` picks one, and /v1/models lists them all with which are loaded."""
    from mindset.serve import create_app
    from mindset.serve.net import bind, is_loopback, run
    from mindset.serve.pool import ModelPool
    from mindset.serve.sizes import format_bytes, parse_budget

    specs = model_specs(models or [DEFAULT_MODEL], name)
    budget = parse_budget(memory_budget) if memory_budget is not None else None
    check_seconds(idle_ttl, "--idle-ttl", low=0.0, exclusive=True)
    check_seconds(load_wait, "--load-wait", low=0.0)
    sock = bind(host, port)  # before loading or announcing: a bad or busy port is one line
    first = next(iter(specs))
    for spec in list(specs.values())[1:]:
        check_spec(spec)  # a typo is one line now, not a 503 on the first request
    loaded = load_model(specs[first], device, dtype)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] binding {host}: the model is reachable from the network" + ("" if api_key else " without an API key"))
    pool = ModelPool(specs, preloaded={first: loaded}, load=lambda spec: load_model(spec, device, dtype), budget=budget, idle_ttl=idle_ttl,
                     load_wait=load_wait)
    del loaded  # the pool holds it now: once unloaded, nothing here may keep its memory
    app = create_app(pool, api_key=api_key, max_pending=max_pending, batching=batching)
    _log_model_changes()
    within = f" within {format_bytes(budget)}" if budget is not None else ""
    err_console.print(f"serving [bold]{', '.join(specs)}[/]{within} at http://{host}:{sock.getsockname()[1]}/v1")
    run(app, sock)


def _log_model_changes() -> None:
    """The pool's loads and unloads ("loaded b (538.1 MB) in 2.1 s") on stderr, where the server's own lines go."""
    import logging

    logger = logging.getLogger("mindset.serve")
    if not any(getattr(h, "mindset_serve", False) for h in logger.handlers):  # once per process
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.mindset_serve = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def model_specs(args: list[str], name: str | None = None) -> dict[str, str]:
    """{name clients send: spec} from `SPEC` or `NAME=SPEC` arguments, in order; --name renames a single model."""
    specs: dict[str, str] = {}
    for arg in args:
        label, spec = _split(arg)
        if label in specs:
            raise MindsetError(f"two models are named {label!r}; name each one: NAME=SPEC (e.g. base={specs[label]} edited={spec})")
        specs[label] = spec
    if name is not None:
        if len(specs) > 1:
            raise MindsetError(f"--name {name} names one model, and {len(specs)} are given; name each one as NAME=SPEC instead")
        specs = {name: next(iter(specs.values()))}
    return specs


def _split(arg: str) -> tuple[str, str]:
    """NAME=SPEC, or SPEC named by itself; an '=' inside a path (after a '/') is part of the spec."""
    label, eq, spec = arg.partition("=")
    if not eq or "/" in label or "\\" in label:
        return arg.strip(), arg.strip()
    label, spec = label.strip(), spec.strip()
    if not label or not spec:
        raise MindsetError(f"{arg!r}: write NAME=SPEC with both parts, e.g. base=smollm2-135m")
    return label, spec


def check_spec(spec: str) -> None:
    """A spec the server could load later: a known name (tiny-llama@SEED included) or an existing file or folder."""
    from mindset.models.loading import known_names

    if spec.partition("@")[0] in known_names() or Path(spec).expanduser().exists():
        return
    raise MindsetError(f"unknown model {spec!r}; give one of {', '.join(known_names())}, or a model folder or .gguf file that exists")


def check_seconds(value: float | None, option: str, low: float, exclusive: bool = False) -> None:
    if value is not None and (value <= low if exclusive else value < low):
        raise MindsetError(f"{option} {value:g}: give seconds {'above' if exclusive else 'of at least'} {low:g}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
