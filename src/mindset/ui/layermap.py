"""Which original layer each layer of the current model comes from, for the diff view.

Read from the model's own edit record (`mindset_edits`, written by every surgery function through
`note_edit`), not guessed from the weights: the depth edits since the original say exactly where each
block went. insert_layers(after, n) puts n copies of block `after` right after it; drop_layers removes
blocks; duplicate_layers repeats each block right after itself; move_layer(src, dst) takes block src out
and puts it at dst. Every other edit keeps the layer order.

Each current layer gets an Origin: `kept` (the block itself, maybe renumbered), `moved` (kept, but its
order relative to the other kept blocks changed: not in the longest run of kept blocks whose original
indices increase), `inserted` (a copy insert_layers made, identity or copy init) or `duplicate`. An
original layer no current layer keeps is dropped. When the record does not explain the layer count (a
model whose record was lost), layers pair by position and the answer says so (`matched_by: position`).
"""

from __future__ import annotations

from dataclasses import dataclass

DEPTH_OPS = ("insert_layers", "drop_layers", "duplicate_layers", "move_layer")


@dataclass
class Origin:
    source: int | None  # the original layer this block is (or is a copy of); None: no known source
    how: str  # kept, moved, inserted, duplicate, unknown
    init: str | None = None  # insert_layers' init (identity: zero output projections; copy)
    was_moved: bool = False  # move_layer took this block: preferred as the moved one when the order alone is ambiguous


def edits_since(original, current) -> list[dict] | None:
    """The edits recorded on `current` after those already on `original`; None when the records disagree."""
    before = list(getattr(original.model, "mindset_edits", []) or [])
    after = list(getattr(current.model, "mindset_edits", []) or [])
    if after[: len(before)] != before:
        return None
    return after[len(before) :]


def _replay(count: int, edits: list[dict]) -> list[Origin] | None:
    """The origins after replaying the depth edits on `count` blocks; None when an edit does not fit."""
    order = [Origin(i, "kept") for i in range(count)]
    try:
        for e in edits:
            op = e.get("op")
            if op == "insert_layers":
                after, n = int(e["after"]), int(e.get("n", 1))
                source = order[after].source
                order[after + 1 : after + 1] = [Origin(source, "inserted", e.get("init", "identity")) for _ in range(n)]
            elif op == "drop_layers":
                gone = {int(i) for i in e["layers"]}
                order = [o for i, o in enumerate(order) if i not in gone]
            elif op == "duplicate_layers":
                twice = {int(i) for i in e["layers"]}
                order = [x for i, o in enumerate(order) for x in ([o, Origin(o.source, "duplicate")] if i in twice else [o])]
            elif op == "move_layer":
                moved = order.pop(int(e["src"]))
                moved.was_moved = True
                order.insert(int(e["dst"]), moved)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return order


def _mark_moved(order: list[Origin]) -> None:
    """Kept blocks outside the longest increasing run of original indices have moved (the rest only shifted);
    of equally long runs, the one with the fewest blocks move_layer took ([L1, L0]: the block moved is the one named)."""
    kept = [i for i, o in enumerate(order) if o.how == "kept"]

    def rank(run: list[int]) -> tuple[int, int]:
        return len(run), -sum(order[at].was_moved for at in run)

    best: list[list[int]] = []  # best[i]: the best increasing run ending at kept[i]
    for i, at in enumerate(kept):
        prior = [best[j] for j in range(i) if order[kept[j]].source < order[at].source]
        best.append(max(prior, key=rank, default=[]) + [at])
    keep = set(max(best, key=rank, default=[]))
    for at in kept:
        if at not in keep:
            order[at].how = "moved"


def layer_origins(original, current, count_original: int, count_current: int) -> tuple[list[Origin], list[int], str]:
    """(an Origin per current layer, the dropped original layers, how they were matched: 'edit record' or 'position')."""
    edits = edits_since(original, current)
    order = _replay(count_original, edits) if edits is not None else None
    matched = "edit record"
    if order is None or len(order) != count_current:
        matched = "position"
        order = [Origin(i, "kept") if i < count_original else Origin(None, "unknown") for i in range(count_current)]
    _mark_moved(order)
    kept = {o.source for o in order if o.how in ("kept", "moved")}
    dropped = [i for i in range(count_original) if i not in kept]
    return order, dropped, matched
