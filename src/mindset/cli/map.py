"""mindset map."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ListOption,
    ModelArg,
    console,
    err_console,
    load_model,
    options_from,
    out_option,
    params_from_options,
)
from mindset.errors import MindsetError
from mindset.fileio import atomic_folder, check_output

if TYPE_CHECKING:
    from mindset.map.build import MapSettings

MAP_HELP = """Map how a model lays out prompts: each item's last-token hidden state, in 2-D, in a web page.

mindset map MODEL --data capitals,arithmetic,canaries -o runs/NAME/map [--compare MODEL_B] [--serve]

Data: mindset's suites (scored by mindset eval: colour by task, split, correctness), lm-eval task .yaml files, .jsonl files (text, or prompt + completion; other fields become labels) and .txt files (a line each).

Open OUT/index.html from disk, or add --serve to type prompts into the page and watch the model's answers land on the map. With --serve and no --data, an existing map in OUT is served.
"""


@options_from("mindset.map.build:MapSettings", param="settings", exclude=("data",), names={"use_cache": "--use-cache/--no-cache"},
              convert={"limit": lambda v: v or None}, helps={"limit": "documents per task and split (0: all)"})
def map_command(
    model: str = ModelArg,
    data: Optional[list[str]] = ListOption(None, "--data", "-d", help="suites, task .yaml, .jsonl or .txt files"),
    out: Path = out_option(Path("runs/map/map"), "output folder"),
    compare: Optional[str] = typer.Option(None, "--compare", help="a second model over the same items, in the same layout"),
    screenshot: bool = typer.Option(False, "--screenshot", help="save OUT/screenshot.png from headless chromium (needs selenium, chromium)"),
    serve: bool = typer.Option(False, "--serve", help="serve the page with live sampling on localhost"),
    host: str = typer.Option("127.0.0.1", "--host", help="address for --serve (loopback by default)"),
    port: int = typer.Option(8765, "--port", help="port for --serve"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing map in OUT"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    settings: MapSettings,
) -> None:
    if data is None and not serve:
        raise MindsetError("--data is required to build a map (suites such as capitals,arithmetic,canaries, or .jsonl/.txt files)")
    if data is None and compare:
        raise MindsetError("--compare needs --data: both models are mapped over the same items")
    if data is not None:
        from mindset.map.sources import check_sources, split_sources

        settings = params_from_options(type(settings), {"data": "--data"}, **(settings.model_dump() | {"data": check_sources(split_sources(data), settings.limit)}))
        check_output(out, overwrite)
    else:
        settings = None
    if settings is None and not (out / "layout.json").exists():
        raise MindsetError(f"{out} holds no map to serve; build one with --data first")
    if screenshot:  # before the model loads and the map is built, not a minute of work later
        from mindset.map.browser import check_browser

        check_browser()
    loaded = load_model(model, device, dtype)
    if settings is not None:
        from mindset.map.build import build_map

        other = load_model(compare, device, dtype) if compare else None
        with atomic_folder(out, replace=overwrite) as tmp:  # an interrupted build leaves no half map
            summary = build_map(loaded, tmp, settings, compare=other, say=lambda m: console.print(m, highlight=False))
        console.print(f"[bold]{summary['points']}[/] points, {summary['method']} layout, layer {summary['layer']}, "
                      f"{summary['seconds']['total']:.0f} s: open {out / 'index.html'}", highlight=False)
        if compare:
            console.print(f"items that moved most: {out / 'compare.md'}")
    if screenshot:
        from mindset.map.browser import screenshot as take_screenshot

        console.print(f"screenshot: {take_screenshot(out)}")
    if serve:
        _serve(loaded, out, host, port)


def _serve(loaded, out: Path, host: str, port: int) -> None:
    import json

    from mindset.map.cache import model_fingerprint
    from mindset.map.server import create_map_app
    from mindset.serve.net import bind, is_loopback, run

    mapped = json.loads((out / "layout.json").read_text()).get("fingerprints", [])
    if mapped and model_fingerprint(loaded) != mapped[0]:
        err_console.print(f"[yellow]warning:[/] {out} was built with another model than {loaded.name}; new points may land in odd places")
    sock = bind(host, port)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] binding {host}: the model is reachable from the network")
    err_console.print(f"map of [bold]{loaded.name}[/] with live sampling at http://{host}:{port}/  (Ctrl-C stops)")
    run(create_map_app(loaded, out), sock)


def register(app: typer.Typer) -> None:
    app.command("map", help=MAP_HELP)(map_command)
