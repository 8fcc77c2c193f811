"""Causal tracing (ROME, Meng et al. 2022): where does the model recall the fact?

1. Clean run: the prompt as is; every layer's residual-stream output, attention output and MLP output
   is recorded at every position; p_clean = probability of the answer's first token.
2. Corrupted runs: Gaussian noise of standard deviation `noise` (default 3 × the standard deviation of the
   subject tokens' input embeddings, ROME's 3σ) is added to the subject tokens' embeddings, in `samples`
   independent draws; p_corrupted = mean probability of the answer.
3. Restoration: in the corrupted runs, one state is set back to its clean value, and the answer's
   probability measured. `resid`: the residual stream after layer i at position t (one state). `attn` and
   `mlp`: the attention (MLP) outputs at position t of a window of `window` layers centred on i
   (ROME's window: layers max(0, i - w/2) to min(L, i + w/2) - 1; w = 10 by default, as in the paper; a
   single sublayer's effect is small because the residual stream carries the rest).
The grid (layers × positions) of each kind is the answer's probability with that restoration; high cells
are states that carry the fact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mindset.circuits.components import blocks
from mindset.errors import MindsetError
from mindset.fileio import atomic_write_json

KINDS = ("resid", "mlp", "attn")


@dataclass
class CausalTrace:
    model: str
    prompt: str
    subject: str
    answer: str
    tokens: list[str]
    subject_start: int  # token positions [start, end) of the subject
    subject_end: int
    answer_token: str
    p_clean: float
    p_corrupted: float
    noise: float
    samples: int
    window: int
    grids: dict[str, list[list[float]]] = field(default_factory=dict)  # kind -> (layers, positions)

    def strongest(self, kind: str, k: int = 3) -> list[tuple[int, int, float]]:
        """(layer, position, probability) of the k highest cells of a grid."""
        grid = np.asarray(self.grids[kind])
        order = np.argsort(grid, axis=None)[::-1][:k]
        return [(int(i // grid.shape[1]), int(i % grid.shape[1]), float(grid.flat[i])) for i in order]

    def describe(self) -> str:
        lines = [
            f"{self.prompt!r} -> {self.answer!r} on {self.model}: p clean {self.p_clean:.3f}, corrupted {self.p_corrupted:.3f} "
            f"(noise {self.noise:.3f} on the subject {self.subject!r}, tokens {self.subject_start}-{self.subject_end - 1}; {self.samples} samples)"
        ]
        for kind in self.grids:
            cells = ", ".join(f"L{layer} at {self.tokens[t]!r} ({p:.3f})" for layer, t, p in self.strongest(kind))
            lines.append(f"{kind}: strongest restorations: {cells}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: str | Path) -> dict[str, Path]:
        from mindset.circuits.plots import trace_heatmap

        folder = Path(folder)
        paths = {"json": folder / "trace.json", "png": folder / "trace.png"}
        atomic_write_json(paths["json"], self.as_dict())
        trace_heatmap(self, paths["png"])
        return paths


def _subject_span(tokenizer, prompt: str, subject: str) -> tuple[list[int], int, int]:
    start_char = prompt.rfind(subject) if subject else -1
    if not subject or start_char < 0:
        raise MindsetError(f"the subject {subject!r} does not occur in the prompt {prompt!r}; it must be a substring of it")
    end_char = start_char + len(subject)
    encoded = tokenizer(prompt, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    inside = [i for i, (a, b) in enumerate(offsets) if b > a and a < end_char and b > start_char]
    if not inside:
        raise MindsetError(f"the subject {subject!r} covers no token of the prompt")
    return list(ids), inside[0], inside[-1] + 1


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _with_first(output, value):
    return (value, *output[1:]) if isinstance(output, tuple) else value


@torch.inference_mode()
def causal_trace(
    loaded,
    prompt: str,
    subject: str,
    answer: str,
    *,
    kinds: tuple[str, ...] = KINDS,
    samples: int = 10,
    window: int = 10,
    noise: float | None = None,
    seed: int = 0,
) -> CausalTrace:
    """Trace `prompt` -> `answer` with the `subject` tokens corrupted; see the module docstring."""
    from mindset.evaluate.loglikelihood import encode_request

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise MindsetError(f"unknown trace kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    if samples < 1 or window < 1:
        raise MindsetError("samples and window must be at least 1")
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    ids, s0, s1 = _subject_span(tokenizer, prompt, subject)
    answer_ids = encode_request(tokenizer, prompt, answer)[1]
    if not answer_ids:
        raise MindsetError(f"the answer {answer!r} encodes to no tokens")
    target = answer_ids[0]
    device = loaded.device
    all_blocks = blocks(model)
    n_layers, n_tokens = len(all_blocks), len(ids)
    embed = model.get_input_embeddings()
    x = torch.tensor([ids], device=device)
    subject_embeddings = embed(x)[0, s0:s1].float()
    scale = float(noise) if noise is not None else 3 * float(subject_embeddings.std())
    modules = {"resid": [b.layer for b in all_blocks], "attn": [b.attn for b in all_blocks], "mlp": [b.mlp for b in all_blocks]}

    def prob(logits: torch.Tensor) -> torch.Tensor:  # (B, T, V) -> (B,)
        return torch.softmax(logits[:, -1].float(), dim=-1)[:, target]

    # clean run: every state we may restore
    clean: dict[str, list[torch.Tensor]] = {k: [None] * n_layers for k in kinds}  # type: ignore[misc]
    handles = [
        m.register_forward_hook(lambda mod, a, out, k=k, i=i: clean[k].__setitem__(i, _first(out)[0].clone()))
        for k in kinds for i, m in enumerate(modules[k])
    ]
    try:
        p_clean = float(prob(model(input_ids=x).logits)[0])
    finally:
        for h in handles:
            h.remove()

    generator = torch.Generator().manual_seed(seed)
    draws = torch.randn((samples, s1 - s0, subject_embeddings.shape[-1]), generator=generator) * scale

    def corrupt(mod, args, out):
        out = out.clone()
        rows = out.shape[0]
        out[:, s0:s1] += draws.repeat(rows // samples, 1, 1).to(out.dtype).to(out.device)
        return out

    handle = embed.register_forward_hook(corrupt)
    try:
        p_corrupted = float(prob(model(input_ids=x.repeat(samples, 1)).logits).mean())
        grids = {}
        batch = x.repeat(n_tokens * samples, 1)  # block t of `samples` rows restores position t
        rows = torch.arange(n_tokens * samples, device=device)
        position = rows // samples
        for kind in kinds:
            grid = np.zeros((n_layers, n_tokens))
            for layer in range(n_layers):
                chosen = [layer] if kind == "resid" else list(range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2))))

                def restore(mod, args, out, i=None, states=clean[kind]):
                    value = _first(out).clone()
                    value[rows, position] = states[i][position].to(value.dtype)
                    return _with_first(out, value)

                hooks = [modules[kind][i].register_forward_hook(lambda mod, a, out, i=i: restore(mod, a, out, i)) for i in chosen]
                try:
                    p = prob(model(input_ids=batch).logits).view(n_tokens, samples).mean(1)
                finally:
                    for h in hooks:
                        h.remove()
                grid[layer] = p.cpu().numpy()
            grids[kind] = grid.tolist()
    finally:
        handle.remove()
    tokens = [tokenizer.decode([t]) for t in ids]
    return CausalTrace(
        loaded.name, prompt, subject, answer, tokens, s0, s1, tokenizer.decode([target]), p_clean, p_corrupted,
        scale, samples, window, grids,
    )
