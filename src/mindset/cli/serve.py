"""mindset serve."""

from __future__ import annotations

from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, err_console, load_model


def serve(
    model: str = ModelArg,
    host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback exposes the model to the network"),
    port: int = typer.Option(8000, help="TCP port"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="MINDSET_API_KEY", help="require 'Authorization: Bearer KEY'"),
    name: Optional[str] = typer.Option(None, help="model name clients send (default: the model spec)"),
    max_pending: int = typer.Option(64, "--max-pending", help="requests in flight before new ones get 429"),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="decode all requests in one forward pass per step (off: round-robin, batch 1)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /metrics)."""
    from mindset.serve import create_app
    from mindset.serve.net import bind, is_loopback, run

    sock = bind(host, port)  # before loading or announcing: a bad or busy port is one line
    loaded = load_model(model, device, dtype)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] binding {host}: the model is reachable from the network" + ("" if api_key else " without an API key"))
    app = create_app(loaded, model_name=name or loaded.name, api_key=api_key, max_pending=max_pending, batching=batching)
    err_console.print(f"serving [bold]{name or loaded.name}[/] at http://{host}:{sock.getsockname()[1]}/v1")
    run(app, sock)


def register(app: typer.Typer) -> None:
    app.command()(serve)
