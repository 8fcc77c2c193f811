"""mindset memory stats | search | memorize: view and fill the stores inside a model folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, console, load_model, out_option
from mindset.errors import MindsetError

memory_app = typer.Typer(help="Look inside memory stores, and write documents into them.", no_args_is_help=True)
PathArg = typer.Argument(..., help="a model folder with memory layers (or, for stats, a store folder)")


def store_folders(path: Path) -> dict[str, Path]:
    """{module path: store folder} for a model folder, or {'store': path} for a bare store folder."""
    from mindset.memory.persistence import SETTINGS
    from mindset.models.custom import SURGERY_FILE, SURGERY_FOLDER

    if not path.exists():
        raise MindsetError(f"{path}: no such file or folder")
    if (path / SETTINGS).exists():
        return {"store": path}
    record = path / SURGERY_FILE
    if not record.exists():
        raise MindsetError(f"{path} is neither a store nor a model folder with memory layers (no {SURGERY_FILE})")
    try:
        modules = [m["path"] for m in json.loads(record.read_text())["modules"]]
    except (ValueError, KeyError, TypeError) as err:
        raise MindsetError(f"{record} is not a valid surgery record ({err})") from None
    found = {m: path / SURGERY_FOLDER / m / "store" for m in modules if (path / SURGERY_FOLDER / m / "store").exists()}
    if not found:
        raise MindsetError(f"{path} has memory layers but no stores (featural memory keeps its slots in the weights)")
    return found


@memory_app.command()
def stats(path: Path = PathArg, out: Optional[Path] = out_option(None, "also write the numbers to this JSON file")) -> None:
    """Counts, fill, hit rates and evictions of each store."""
    from mindset.fileio import atomic_write_json
    from mindset.memory.store import open_store
    from mindset.tables import rich_table

    report = {}
    for module, folder in store_folders(path).items():
        report[module] = open_store(folder).stats()
        s = report[module]
        rows = [
            ["backend", s["backend"]], ["entries", f"{s['entries']:,} of {s['capacity']:,} ({100 * s['fill']:.1f}%)"],
            ["key dim / metric", f"{s['dim']} / {s['metric']}"], ["eviction", f"{s['eviction']} (lambda {s['lrfu_lambda']})"],
            ["inserts", f"{s['inserts']:,}"], ["merges (write hits)", f"{s['merges']:,} ({100 * s['write_hit_rate']:.1f}% of writes)"],
            ["evictions", f"{s['evictions']:,}"], ["removals", f"{s['removals']:,}"],
            ["queries (rows)", f"{s['queries']:,} ({s['query_rows']:,})"],
            ["entries ever retrieved", f"{s['entries_retrieved']:,} ({100 * s['retrieved_share']:.1f}%)"],
        ]
        console.print(rich_table(module, ["", "value"], rows))
    if out:
        atomic_write_json(out, report)


@memory_app.command()
def search(
    path: Path = PathArg,
    text: str = typer.Option(..., "--text", "-t", help="the text whose last position is the query"),
    k: int = typer.Option(5, "--k", help="entries to show per store"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """The stored entries nearest to a text's last position, with the text each was written from."""
    from rich.markup import escape

    from mindset.memory.knn_lm import KnnLMHead
    from mindset.memory.queries import store_queries
    from mindset.tables import rich_table

    if not text.strip():
        raise MindsetError("the text is empty")
    loaded = load_model(str(path), device, dtype)
    tokenizer = loaded.tokenizer
    queries = {("lm_head (kNN-LM)" if isinstance(module, KnnLMHead) else name): (store, query)
               for name, (store, query, module) in store_queries(loaded, text).items()}
    if not queries:
        raise MindsetError(f"{path} has no memory store to search")
    for name, (store, query) in queries.items():
        if len(store) == 0:
            console.print(f"{name}: the store is empty")
            continue
        hits = store.query(query.float(), min(k, len(store)), touch=False)
        rows = []
        for score, entry in zip(hits.scores[0].tolist(), store.entries(hits.slots[0])):
            value = store.values[entry["slot"]]
            shown = repr(tokenizer.decode([int(value)])) if value.dim() == 0 else f"vector, norm {float(value.float().norm()):.2f}"
            rows.append([escape(repr(entry["source"] or "")), escape(shown), f"{score:.3f}", entry["id"], entry["access_count"], entry["merges"]])
        title = f"{name}: nearest to the last token of the text ({store.metric} score)"
        console.print(rich_table(title, ["written from", "value", "score", "id", "accesses", "merges"], rows))


@memory_app.command()
def memorize(
    path: Path = PathArg,
    text: Path = typer.Option(..., "--text", help="a UTF-8 text file to memorize ('-' reads stdin)"),
    label: Optional[str] = typer.Option(None, help="a name kept with each entry's source text (default: the file name)"),
    context: int = typer.Option(512, help="window in tokens"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Write a document into the model's kNN-LM datastore and associative stores, saving them in place."""
    from mindset.evaluate.steps import PplParams, read_text
    from mindset.memory.knn_lm import memorize as write_document
    from mindset.models.custom import SURGERY_FOLDER, custom_modules

    body = sys.stdin.read() if str(text) == "-" else read_text(PplParams(text_file=text))[0]
    if not body.strip():
        raise MindsetError("the text to memorize is empty")
    store_folders(path)  # a folder without stores fails here, before the model loads
    loaded = load_model(str(path), device, dtype)
    report = write_document(loaded, body, label=label or (text.name if str(text) != "-" else "stdin"), context=context, progress=True)
    for module_path, module in custom_modules(loaded.model):
        if hasattr(module, "store"):
            module.store.save(path / SURGERY_FOLDER / module_path / "store")
    for name, counts in report.items():
        added = counts.get("added", counts.get("inserted", 0))
        merged = f", {counts['merged']:,} merged into existing entries" if "merged" in counts else ""
        console.print(f"{name}: {added:,} new entries{merged}; {counts['entries']:,} in the store")


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
