"""mindset ui: the browser workbench over one model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, err_console, load_model
from mindset.errors import MindsetError


def ui(
    model: str = ModelArg,
    host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback lets the network reach the workbench (the token still guards it)"),
    port: int = typer.Option(8766, help="TCP port"),
    token: Optional[str] = typer.Option(None, "--token", envvar="MINDSET_UI_TOKEN", help="the token every API call needs (default: a new random one, printed in the URL)"),
    root: Path = typer.Option(Path("mindset-ui"), "--root", help="the folder saves go into (nothing is written outside it); the edit history autosaves there as a recipe"),
    resume: bool = typer.Option(False, "--resume", help="replay the edit history autosaved in --root (after a crash or a closed server)"),
    snapshots: int = typer.Option(3, "--snapshots", min=1, help="model states kept for instant undo; older ones are rebuilt by replaying the history"),
    agent_memory: Optional[Path] = typer.Option(None, "--agent-memory", help="also show this `mindset chat --memory` folder's database in the Memory view: memories, recall scores, edit, delete"),
    open_browser: bool = typer.Option(False, "--open", help="open the page in the default browser"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Examine, edit and measure a model in the browser; every edit is a recipe step (undo, redo, export the recipe, save)."""
    from mindset.serve.net import bind, is_loopback, run
    from mindset.ui import Workbench
    from mindset.ui.app import create_app
    from mindset.ui.security import new_token

    sock = bind(host, port)  # before loading: a busy port is one line, not a traceback after a long load
    if agent_memory is not None:
        from mindset.ui.agentdb import AgentMemoryView

        AgentMemoryView.check(agent_memory)  # a missing or foreign database is one line before the long load
    loaded = load_model(model, device, dtype)
    bench = Workbench(loaded, root, snapshots=snapshots)
    if resume:
        if not bench.history_path.exists():
            raise MindsetError(f"--resume: no autosaved history at {bench.history_path}; start without --resume")
        err_console.print(f"replayed {bench.replay(bench.history_path)} edit(s) from {bench.history_path}")
    if agent_memory is not None:
        bench.agent_memory = AgentMemoryView(agent_memory, loaded)
        err_console.print(f"agent memory: {bench.agent_memory.path} ({bench.agent_memory.agent.db.count('memories')} memories)")
    token = token or new_token()
    app = create_app(bench, token=token)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] binding {host}: the workbench is reachable from the network; anyone with the token can edit and save")
    shown = "localhost" if is_loopback(host) else host
    url = f"http://{shown}:{sock.getsockname()[1]}/?token={token}"
    err_console.print(f"mindset ui for [bold]{loaded.name}[/] at {url}\nAPI docs at http://{shown}:{sock.getsockname()[1]}/docs; saves go to {bench.root}")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    run(app, sock)


def register(app: typer.Typer) -> None:
    app.command()(ui)
