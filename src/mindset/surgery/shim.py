"""A learned linear map between the token embeddings and the first block: `embedding_shim`.

    x = S·e                      # e: the token's embedding row (d,), x: what the first block reads
    logits = E·(Sᵀ·h)            # only when the head is tied to the embeddings E (V, d); h: final state

S starts as the identity, so logits are unchanged; training S alone (the `shim` component, see
`shim_parameters`) learns how a changed tokenizer's embeddings map into the space the blocks expect,
with d² (or 2·d·r) parameters instead of the whole model. With `rank=r`, S = I + A·B with A (d, r)
drawn small and B (r, d) zero: still the identity at start, and B gets gradients at once (A ≠ 0).

A tied head must see the same S, or the shared matrix would mean two different things at the two ends:
with tying, the embedding becomes E·Sᵀ at the input (rows e·Sᵀ) and the head computes h·S·Eᵀ =
h·(E·Sᵀ)ᵀ, so both ends fold into the same matrix E' = E·Sᵀ and the folded model stays tied exactly.

Folding: each shimmed module's `mindset_fold()` is exact on its own (the other end keeps its own
reference to E and S); `fold_embedding_shim` folds both ends and ties the head to the new embedding.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mindset.errors import MindsetError
from mindset.models.custom import custom_modules, get_module, note_edit, set_module
from mindset.surgery.layers import unwrap, working_copy

SHIM_FILE = "shim.safetensors"
A_SCALE = 0.01  # std of A's entries relative to 1/sqrt(d): small, so S moves away from I gently


class Shim(nn.Module):
    """S (d, d) as a full matrix (`weight`) or as I + A·B (`a` (d, r), `b` (r, d))."""

    def __init__(self, d: int, rank: int | None = None, *, generator: torch.Generator | None = None, like: torch.Tensor | None = None) -> None:
        super().__init__()
        self.d, self.rank = d, rank
        factory = {"dtype": like.dtype if like is not None else torch.float32, "device": like.device if like is not None else "cpu"}
        if rank is None:
            self.weight = nn.Parameter(torch.eye(d, **factory))
        else:
            drawn = torch.randn(d, rank, generator=generator) * (A_SCALE / d**0.5)
            self.a = nn.Parameter(drawn.to(**factory))
            self.b = nn.Parameter(torch.zeros(rank, d, **factory))

    def extra_repr(self) -> str:
        return f"d={self.d}, rank={'full' if self.rank is None else self.rank}"

    def matrix(self) -> torch.Tensor:
        """S as a (d, d) matrix."""
        if self.rank is None:
            return self.weight
        return torch.eye(self.d, dtype=self.a.dtype, device=self.a.device) + self.a @ self.b

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """S applied to each row vector: e·Sᵀ (..., d)."""
        if self.rank is None:
            return F.linear(e, self.weight)
        return e + (e @ self.b.t()) @ self.a.t()

    def transposed(self, h: torch.Tensor) -> torch.Tensor:
        """Sᵀ applied to each row vector: h·S (..., d)."""
        if self.rank is None:
            return h @ self.weight
        return h + (h @ self.a) @ self.b

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().contiguous().cpu() for name, p in self.named_parameters()}


class ShimmedEmbedding(nn.Embedding):
    """The input embeddings followed by the shim; `weight` is the original Parameter (its name unchanged)."""

    mindset_restorer = "embedding_shim"

    def __init__(self, embedding: nn.Embedding, shim: Shim) -> None:
        nn.Module.__init__(self)
        for name in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"):
            setattr(self, name, getattr(embedding, name))
        self.weight = embedding.weight
        self.shim = shim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.shim(super().forward(ids))  # (B, T, d)

    def mindset_config(self) -> dict:
        return {"rank": self.shim.rank}

    def mindset_extra_keys(self) -> list[str]:
        return [f"shim.{name}" for name, _ in self.shim.named_parameters()]

    def mindset_save_extra(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.shim.tensors(), str(folder / SHIM_FILE))

    def mindset_fold(self) -> nn.Embedding:
        """A plain embedding whose rows are e·Sᵀ: the same output for every id (max_norm aside, which
        renormalizes rows before S; a shimmed embedding with max_norm set cannot be built)."""
        folded = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx, device="meta")
        with torch.no_grad():
            folded.weight = nn.Parameter(self.shim(self.weight.detach()), requires_grad=self.weight.requires_grad)
        return folded


class ShimmedHead(nn.Module):
    """A tied LM head that reads Sᵀ·h: logits = (h·S)·Eᵀ (+ bias). Not an nn.Linear on purpose: code that
    would replace a linear head with its own (kNN-LM) must refuse it rather than drop the shim."""

    mindset_restorer = "embedding_shim_head"

    def __init__(self, head: nn.Linear, shim: Shim) -> None:
        super().__init__()
        self.in_features, self.out_features = head.in_features, head.out_features
        self.weight = head.weight  # the embeddings' Parameter: the head stays tied
        self.bias = head.bias
        self.shim = shim  # the embedding's Shim module, registered here too (named_parameters lists it once)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(self.shim.transposed(h), self.weight, self.bias)  # (B, T, V)

    def mindset_config(self) -> dict:
        return {"rank": self.shim.rank}

    def mindset_extra_keys(self) -> list[str]:
        return [f"shim.{name}" for name, _ in self.shim.named_parameters()]

    def mindset_save_extra(self, folder: Path) -> None:
        pass  # the embedding's record holds the shim; restore_head reuses it

    def mindset_fold(self) -> nn.Linear:
        """A plain linear head with weight E·Sᵀ (the same matrix the embedding folds into)."""
        folded = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        with torch.no_grad():
            folded.weight = nn.Parameter(self.shim(self.weight.detach()), requires_grad=self.weight.requires_grad)
            if self.bias is not None:
                folded.bias = self.bias
        return folded


def _module_path(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)


def _check_plain(model: nn.Module) -> tuple[nn.Embedding, nn.Module | None]:
    """(input embeddings, output head or None); refuses a second shim and modules it cannot wrap."""
    embedding = model.get_input_embeddings()
    if isinstance(embedding, ShimmedEmbedding):
        raise MindsetError(f"this model already has an embedding shim (rank {embedding.shim.rank or 'full'}); fold it (fold_embedding_shim) before adding another")
    if type(embedding) is not nn.Embedding or embedding.max_norm is not None:
        raise MindsetError(f"embedding_shim needs plain nn.Embedding input embeddings without max_norm; this model's are {type(embedding).__name__}")
    head = model.get_output_embeddings()
    tied = head is not None and getattr(head, "weight", None) is embedding.weight
    if tied and type(head) is not nn.Linear:
        raise MindsetError(f"embedding_shim needs a plain linear LM head when it is tied to the embeddings; this model's is {type(head).__name__}")
    return embedding, head if tied else None


def embedding_shim(model, rank: int | None = None, *, seed: int = 0, inplace: bool = False):
    """Put an identity-initialised linear shim S after the token embeddings (and Sᵀ before a tied head).

    rank None: S is a full d×d matrix, starting at I; rank r (1 ≤ r < d): S = I + A·B with B = 0, so
    2·d·r parameters (A drawn from `seed`). Logits are unchanged either way until S trains; train it
    alone with the component name `shim` (`mindset distill --trainable shim`, or `shim_parameters`).
    """
    hf, rewrap = unwrap(model)
    embedding, _ = _check_plain(hf)
    d = embedding.embedding_dim
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank < d):
        raise MindsetError(f"rank={rank!r}: a low-rank shim needs 1 ≤ rank < {d} (the embedding width); leave rank unset for a full matrix")
    out = working_copy(hf, inplace)
    embedding, head = _check_plain(out)
    shim = Shim(d, rank, generator=torch.Generator().manual_seed(seed), like=embedding.weight)
    set_module(out, _module_path(out, embedding), ShimmedEmbedding(embedding, shim))
    if head is not None:
        set_module(out, _module_path(out, head), ShimmedHead(head, shim))
    note_edit(out, "embedding_shim", rank=rank, seed=seed, tied=head is not None, parameters=sum(p.numel() for p in shim.parameters()))
    return rewrap(out)


def shim_parameters(model) -> dict[str, nn.Parameter]:
    """{name: parameter} of the shim, as model.named_parameters() spells them: what trains when it trains alone."""
    hf, _ = unwrap(model)
    embedding = hf.get_input_embeddings()
    if not isinstance(embedding, ShimmedEmbedding):
        raise MindsetError("this model has no embedding shim; add one with embedding_shim (mindset surgery embedding-shim)")
    wanted = {id(p) for p in embedding.shim.parameters()}
    return {name: p for name, p in hf.named_parameters() if id(p) in wanted}


def fold_embedding_shim(model, *, inplace: bool = False):
    """Bake the shim into the embedding matrix (E' = E·Sᵀ) and remove it; a tied head is tied to E' again."""
    hf, rewrap = unwrap(model)
    shim_parameters(hf)  # a MindsetError when there is none
    out = working_copy(hf, inplace)
    tied = isinstance(out.get_output_embeddings(), ShimmedHead)
    for path, module in custom_modules(out):
        if isinstance(module, (ShimmedEmbedding, ShimmedHead)):
            set_module(out, path, module.mindset_fold())
    if tied:  # both ends folded into equal matrices: make them one Parameter again
        out.get_output_embeddings().weight = out.get_input_embeddings().weight
    note_edit(out, "fold_embedding_shim")
    return rewrap(out)


# --- restoring a saved shim (mindset.models.load, via RESTORERS) -----------------------------------------

def restore_embedding(model: nn.Module, path: str, config: dict, folder: Path) -> None:
    from safetensors.torch import load_file

    embedding = get_module(model, path)
    rank = config.get("rank")
    shim = Shim(embedding.embedding_dim, None if rank is None else int(rank), like=embedding.weight)
    file = folder / SHIM_FILE
    if not file.exists():
        raise MindsetError(f"the saved embedding shim at {path} lacks {file}; save the model again")
    try:
        shim.load_state_dict({k: v.to(embedding.weight) for k, v in load_file(str(file)).items()})
    except RuntimeError as err:
        raise MindsetError(f"{file} does not fit a rank-{rank or 'full'} shim of width {embedding.embedding_dim} ({str(err).splitlines()[0]})") from None
    set_module(model, path, ShimmedEmbedding(embedding, shim))


def restore_head(model: nn.Module, path: str, config: dict, folder: Path) -> None:
    """The tied head reuses the shim the embedding's record restored (records are in module order, and
    the embeddings come before the head in every causal LM transformers builds)."""
    embedding = model.get_input_embeddings()
    if not isinstance(embedding, ShimmedEmbedding):
        raise MindsetError(f"the surgery record lists a shimmed head at {path} but no embedding shim before it; save the model again")
    set_module(model, path, ShimmedHead(get_module(model, path), embedding.shim))
