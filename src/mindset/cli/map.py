"""mindset map."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, console, err_console, load_model, params_from_options
from mindset.errors import MindsetError

MAP_HELP = """Map how a model lays out prompts: each item's last-token hidden state, in 2-D, in a web page.

mindset map MODEL --data capitals,arithmetic,canaries -o runs/NAME/map [--compare MODEL_B] [--serve]

Data: mindset's suites (scored by mindset eval: colour by task, split, correctness), lm-eval task .yaml files, .jsonl files (text, or prompt + completion; other fields become labels) and .txt files (a line each).

Open OUT/index.html from disk, or add --serve to type prompts into the page and watch the model's answers land on the map. With --serve and no --data, an existing map in OUT is served.
"""


def map_command(
    model: str = ModelArg,
    data: Optional[str] = typer.Option(None, "--data", "-d", help="comma-separated suites, task .yaml, .jsonl or .txt files"),
    out: Path = typer.Option(Path("runs/map/map"), "--out", "-o", help="output folder"),
    compare: Optional[str] = typer.Option(None, "--compare", help="a second model over the same items, in the same layout"),
    layer: int = typer.Option(-1, "--layer", help="hidden layer: 0 embeddings ... n (or -1) the last"),
    limit: int = typer.Option(40, "--limit", help="documents per task and split (0: all)"),
    splits: str = typer.Option("test", "--splits", help="suite splits: test, train or test,train"),
    method: str = typer.Option("auto", "--method", help="auto (UMAP from 64 points, else PCA), umap or pca"),
    seed: int = typer.Option(0, "--seed", help="seed of the suites and of UMAP"),
    encode: str = typer.Option("pair", "--encode", help="pair (prompt + completion) or prompt"),
    paths: int = typer.Option(200, "--paths", help="generated completions whose generation path is drawn"),
    batch_tokens: int = typer.Option(8192, "--batch-tokens", help="padded tokens per forward pass"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="encoding cache folder (default $MINDSET_HOME/map-cache)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="encode everything again and store nothing"),
    screenshot: bool = typer.Option(False, "--screenshot", help="save OUT/screenshot.png from headless chromium (needs selenium, chromium)"),
    serve: bool = typer.Option(False, "--serve", help="serve the page with live sampling on localhost"),
    host: str = typer.Option("127.0.0.1", "--host", help="address for --serve (loopback by default)"),
    port: int = typer.Option(8765, "--port", help="port for --serve"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    from mindset.map.build import MapSettings

    if data is None and not serve:
        raise MindsetError("--data is required to build a map (suites such as capitals,arithmetic,canaries, or .jsonl/.txt files)")
    if data is None and compare:
        raise MindsetError("--compare needs --data: both models are mapped over the same items")
    settings = None
    if data is not None:
        from mindset.map.sources import split_sources

        names = {"layer": "--layer", "limit": "--limit", "splits": "--splits", "method": "--method", "encode": "--encode", "paths": "--paths",
                 "batch_tokens": "--batch-tokens", "data": "--data"}
        settings = params_from_options(MapSettings, names, data=split_sources(data), layer=layer, limit=limit or None,
                                       splits=[s.strip() for s in splits.split(",") if s.strip()], method=method, seed=seed, encode=encode,
                                       paths=paths, batch_tokens=batch_tokens, cache=cache, use_cache=not no_cache)
    elif not (out / "layout.json").exists():
        raise MindsetError(f"{out} holds no map to serve; build one with --data first")
    if screenshot:  # before the model loads and the map is built, not a minute of work later
        from mindset.map.browser import check_browser

        check_browser()
    loaded = load_model(model, device, dtype)
    if settings is not None:
        from mindset.map.build import build_map

        other = load_model(compare, device, dtype) if compare else None
        summary = build_map(loaded, out, settings, compare=other, say=lambda m: console.print(m, highlight=False))
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

    import uvicorn

    from mindset.cli.serve import _is_loopback
    from mindset.map.cache import model_fingerprint
    from mindset.map.server import create_map_app

    mapped = json.loads((out / "layout.json").read_text()).get("fingerprints", [])
    if mapped and model_fingerprint(loaded) != mapped[0]:
        err_console.print(f"[yellow]warning:[/] {out} was built with another model than {loaded.name}; new points may land in odd places")
    if not _is_loopback(host):
        err_console.print(f"[yellow]warning:[/] binding {host}: the model is reachable from the network")
    err_console.print(f"map of [bold]{loaded.name}[/] with live sampling at http://{host}:{port}/  (Ctrl-C stops)")
    uvicorn.run(create_map_app(loaded, out), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("map", help=MAP_HELP)(map_command)
