"""Activation patching (the counterfactual workflow of IOI and its successors; Heimersheim & Nanda 2024):
which states carry the difference between a clean prompt and a corrupted one?

Two prompts of the same token length, `clean` ("The capital of France is") and `corrupted` ("The capital
of Italy is"), and two answers: `answer` (" Paris", right for clean) and `wrong` (" Rome", right for
corrupted). The metric is the logit difference LD = logit(answer) − logit(wrong) at the last position
(each answer's first token, as `encode_request` splits it).

- denoising: the corrupted prompt runs with one state taken from the clean run; a state that restores LD
  carries what the clean prompt adds (sufficiency).
- noising: the clean prompt runs with one state taken from the corrupted run; a state that destroys LD is
  one the clean answer needs (necessity).
Both are normalized the same way, score = (LD_patched − LD_corrupted) / (LD_clean − LD_corrupted): 0 is the
corrupted run's logit difference, 1 the clean run's. Denoising: high cells matter; noising: low cells do.

States (`what`), the activations `circuits.ablation` hooks, with TransformerLens's names in brackets:
- `resid`: the residual stream entering layer i at position t [blocks.i.hook_resid_pre]; layer 0's input at
  every position is the whole embedding, so patching all of it gives exactly the source run;
- `attn` / `mlp`: the attention block's / MLP's output at (i, t) [hook_attn_out / hook_mlp_out];
- `heads`: head h of layer i at every position: its slice of the attention output projection's input
  [blocks.i.attn.hook_z, head h, all positions].
Batched as ablation is: `batch` patches per forward pass, one per batch row (the hooks index the batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mindset.circuits.ablation import _first, _hook_module, _layer_input, _replace_first
from mindset.circuits.components import Block, blocks
from mindset.errors import MindsetError
from mindset.fileio import atomic_write_json

KINDS = ("resid", "attn", "mlp", "heads")
DIRECTIONS = ("denoise", "noise")


@dataclass(frozen=True)
class Patch:
    """One state taken from the source run: `index` is a token position (resid, attn, mlp) or a head (heads)."""

    kind: str
    layer: int
    index: int


@dataclass
class Patching:
    model: str
    clean: str
    corrupted: str
    answer: str
    wrong: str
    answer_token: str
    wrong_token: str
    direction: str
    tokens: list[str]  # the clean prompt's tokens; `changed` marks where the corrupted one differs
    changed: list[int]
    logit_diff_clean: float
    logit_diff_corrupted: float
    n_layers: int
    n_heads: int
    grids: dict[str, list[list[float]]] = field(default_factory=dict)  # kind -> normalized (layers, positions | heads)
    logit_diffs: dict[str, list[list[float]]] = field(default_factory=dict)  # kind -> raw LD of the patched run

    def strongest(self, kind: str, k: int = 3) -> list[tuple[int, int, float]]:
        """(layer, position or head, score) of the k cells that matter most: highest when denoising, lowest when noising."""
        grid = np.asarray(self.grids[kind])
        order = np.argsort(grid, axis=None)
        order = (order[::-1] if self.direction == "denoise" else order)[:k]
        return [(int(i // grid.shape[1]), int(i % grid.shape[1]), float(grid.flat[i])) for i in order]

    def describe(self) -> str:
        lines = [
            f"{self.direction} {self.clean!r} / {self.corrupted!r} on {self.model}: logit difference {self.answer_token!r} − "
            f"{self.wrong_token!r} clean {self.logit_diff_clean:+.3f}, corrupted {self.logit_diff_corrupted:+.3f}; "
            f"scores 0 = corrupted, 1 = clean"
        ]
        for kind in self.grids:
            if kind == "heads":
                cells = ", ".join(f"L{i}.H{h} ({s:.3f})" for i, h, s in self.strongest(kind))
            else:
                cells = ", ".join(f"L{i} at {self.tokens[t]!r} ({s:.3f})" for i, t, s in self.strongest(kind))
            lines.append(f"{kind}: {cells}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: str | Path) -> dict[str, Path]:
        from mindset.circuits.plots import patch_heatmap

        folder = Path(folder)
        paths = {"json": folder / "patch.json", "png": folder / "patch.png"}
        atomic_write_json(paths["json"], self.as_dict())
        patch_heatmap(self, paths["png"])
        return paths


# --- hooks ---------------------------------------------------------------------------------------------

def _point(p: Patch) -> tuple[int, str]:
    return p.layer, p.kind


def _register(b: Block, kind: str, edit) -> torch.utils.hooks.RemovableHandle:
    """Hook the activation of (layer, kind); `edit(value) -> value or None` sees it (B, T, D) and may replace it."""
    if kind == "resid":
        def pre(m, args, kwargs):
            new = edit(_layer_input(args, kwargs))
            if new is None:
                return None
            return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

        return b.layer.register_forward_pre_hook(pre, with_kwargs=True)
    if kind == "heads":
        def pre_heads(m, args):
            new = edit(args[0])
            return None if new is None else (new, *args[1:])

        return b.out_proj.register_forward_pre_hook(pre_heads)

    def post(m, args, out):
        new = edit(_first(out))
        return None if new is None else _replace_first(out, new)

    return _hook_module(b, kind).register_forward_hook(post)


@torch.inference_mode()
def record(model, ids: torch.Tensor, kinds: Sequence[str]) -> tuple[torch.Tensor, dict[tuple[int, str], torch.Tensor]]:
    """One run of ids (1, T): its last-position logits (V,) and every (layer, kind) activation (T, D)."""
    cache: dict[tuple[int, str], torch.Tensor] = {}
    handles = [
        _register(b, kind, lambda value, p=(b.index, kind): cache.__setitem__(p, value[0].detach().clone()))
        for b in blocks(model) for kind in kinds
    ]
    try:
        logits = model(input_ids=ids).logits[0, -1].float()
    finally:
        for h in handles:
            h.remove()
    return logits, cache


def _mask(b: Block, kind: str, rows: dict[int, list[int]], shape: torch.Size, device) -> torch.Tensor:
    """(B, T, D) True where the source run's value replaces the target's: a position's row, or a head's slice."""
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    for r, indices in rows.items():
        for i in indices:
            if kind == "heads":
                mask[r, :, i * b.head_dim : (i + 1) * b.head_dim] = True
            else:
                mask[r, i] = True
    return mask


@contextmanager
def patched_rows(model, groups: Sequence[Sequence[Patch]], source: dict[tuple[int, str], torch.Tensor]) -> Iterator[None]:
    """Within the block, row r of every forward pass has the states `groups[r]` taken from `source`
    (activations `record` kept, (T, D) each); a row with an empty group runs untouched."""
    all_blocks = blocks(model)
    by_point: dict[tuple[int, str], dict[int, list[int]]] = {}
    for r, group in enumerate(groups):
        for p in group:
            by_point.setdefault(_point(p), {}).setdefault(r, []).append(p.index)
    handles = []
    for (layer, kind), rows in by_point.items():
        b = all_blocks[layer]

        def edit(value, b=b, kind=kind, rows=rows, src=source[(layer, kind)]):
            mask = _mask(b, kind, rows, value.shape, value.device)
            return torch.where(mask, src.to(value.dtype).expand_as(value), value)

        handles.append(_register(b, kind, edit))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.inference_mode()
def run_patches(model, target: torch.Tensor, source: dict, groups: Sequence[Sequence[Patch]], answer: int, wrong: int) -> torch.Tensor:
    """(len(groups),) logit differences of the target prompt (1, T) run with each group of states patched in, one row each."""
    with patched_rows(model, groups, source):
        logits = model(input_ids=target.repeat(len(groups), 1)).logits[:, -1].float()
    return (logits[:, answer] - logits[:, wrong]).cpu()


# --- the experiment ------------------------------------------------------------------------------------

def _tokens(loaded, clean: str, corrupted: str, answer: str, wrong: str) -> tuple[list[int], list[int], int, int]:
    from mindset.evaluate.loglikelihood import encode_request

    tok = loaded.tokenizer
    clean_ids, answer_ids = encode_request(tok, clean, answer)
    corrupted_ids, wrong_ids = encode_request(tok, corrupted, wrong)
    if len(clean_ids) != len(corrupted_ids):
        raise MindsetError(
            f"the clean prompt is {len(clean_ids)} tokens and the corrupted one {len(corrupted_ids)}; activation patching "
            f"pairs positions, so they must tokenize to the same length (swap in a word of the same token count)"
        )
    if clean_ids == corrupted_ids:
        raise MindsetError("the clean and corrupted prompts are the same tokens; change the part whose role you want to find")
    if not answer_ids or not wrong_ids:
        raise MindsetError(f"the answer {answer!r} and the wrong answer {wrong!r} must each encode to at least one token")
    if answer_ids[0] == wrong_ids[0]:
        raise MindsetError(f"{answer!r} and {wrong!r} begin with the same token {tok.decode(answer_ids[:1])!r}; the logit difference compares first tokens")
    return clean_ids, corrupted_ids, answer_ids[0], wrong_ids[0]


def _check(what: Sequence[str], direction: str, batch: int) -> None:
    unknown = [k for k in what if k not in KINDS]
    if unknown or not what:
        raise MindsetError(f"unknown patching state {unknown[0] if unknown else what!r}; choose from {', '.join(KINDS)}")
    if direction not in DIRECTIONS:
        raise MindsetError(f"unknown direction {direction!r}; choose denoise (clean states into the corrupted run) or noise (the reverse)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise MindsetError(f"batch must be a whole number of at least 1, not {batch!r}")


def all_patches(model, kind: str, n_tokens: int) -> list[Patch]:
    """Every cell of a kind's grid, row-major: (layer, position) or (layer, head)."""
    return [Patch(kind, b.index, i) for b in blocks(model) for i in range(b.n_heads if kind == "heads" else n_tokens)]


def _grid(cells: Sequence[Patch], values: np.ndarray, n_layers: int) -> np.ndarray:
    """(layers, positions | heads) of per-cell values; NaN where a layer has fewer heads than the widest."""
    grid = np.full((n_layers, max(p.index for p in cells) + 1), np.nan)
    for p, v in zip(cells, values):
        grid[p.layer, p.index] = v
    return grid


def patch(
    loaded,
    clean: str,
    corrupted: str,
    answer: str,
    wrong: str,
    *,
    direction: str = "denoise",
    what: Sequence[str] = ("resid", "heads"),
    batch: int = 32,
) -> Patching:
    """Patch each state of `what` from one run into the other; see the module docstring."""
    what = tuple(what)
    _check(what, direction, batch)
    model = loaded.model
    was_training = model.training
    model.eval()
    try:
        clean_ids, corrupted_ids, a, w = _tokens(loaded, clean, corrupted, answer, wrong)
        device = loaded.device
        x_clean, x_corrupted = torch.tensor([clean_ids], device=device), torch.tensor([corrupted_ids], device=device)
        logits_clean, cache_clean = record(model, x_clean, what)
        logits_corrupted, cache_corrupted = record(model, x_corrupted, what)
        ld_clean, ld_corrupted = float(logits_clean[a] - logits_clean[w]), float(logits_corrupted[a] - logits_corrupted[w])
        if abs(ld_clean - ld_corrupted) < 1e-6:
            raise MindsetError(f"the clean and corrupted runs give the same logit difference ({ld_clean:+.3g}); there is nothing to patch back")
        target, source = (x_corrupted, cache_clean) if direction == "denoise" else (x_clean, cache_corrupted)
        all_blocks = blocks(model)
        result = Patching(
            loaded.name, clean, corrupted, answer, wrong, loaded.tokenizer.decode([a]), loaded.tokenizer.decode([w]), direction,
            [loaded.tokenizer.decode([t]) for t in clean_ids], [i for i, (c, k) in enumerate(zip(clean_ids, corrupted_ids)) if c != k],
            ld_clean, ld_corrupted, len(all_blocks), max(b.n_heads for b in all_blocks),
        )
        for kind in what:
            cells = all_patches(model, kind, len(clean_ids))
            lds = torch.cat([run_patches(model, target, source, [[p] for p in cells[i : i + batch]], a, w) for i in range(0, len(cells), batch)])
            raw = _grid(cells, lds.numpy(), len(all_blocks))
            result.logit_diffs[kind] = raw.tolist()
            result.grids[kind] = ((raw - ld_corrupted) / (ld_clean - ld_corrupted)).tolist()
    finally:
        model.train(was_training)
    return result
