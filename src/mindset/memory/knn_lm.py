"""kNN-LM (Khandelwal et al., 2020): next-token distribution interpolated with a nearest-neighbour one.

The datastore maps the final hidden state at each position (the input of the LM head) to the token
that followed. At inference the k nearest entries (squared L2 distance d_j) vote for their tokens:
    p_kNN(y) = sum_{j: y_j = y} softmax_j(-d_j / T)
    p(y)     = (1 - lam) p_LM(y) + lam p_kNN(y)
`KnnLMHead` replaces the LM head (sharing its weight, so tied embeddings stay tied) and returns log p as
its logits, so perplexity, generation and everything else use the interpolated model unchanged.

With `fallback` set, the vote includes a virtual neighbour at squared distance `fallback` whose vote
is the model's own distribution: when every stored entry is far away (an unrelated text, or a store
that only holds one memorised document) p_kNN becomes p_LM and the model is left as it was; near
entries still take over. fallback=None is the paper's plain interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mindset.errors import MindsetError

SOURCE_TOKENS = 12  # tokens of context kept as each entry's source text


class KnnLMHead(nn.Linear):
    mindset_restorer = "knn_lm"

    def __init__(self, head: nn.Linear, store, *, k: int = 16, lam: float = 0.25, temperature: float = 20.0, fallback: float | None = 100.0) -> None:
        nn.Module.__init__(self)
        if not isinstance(head, nn.Linear):
            raise MindsetError(f"kNN-LM needs a linear LM head, this model's is {type(head).__name__}")
        if store.dim != head.in_features:
            raise MindsetError(f"the store holds {store.dim}-dimensional keys; this model's final hidden state has {head.in_features}")
        if store.metric != "l2" or tuple(store.value_shape) != () or store.values.dtype != torch.long:
            raise MindsetError("a kNN-LM store needs the l2 metric and one token id (int64) per entry")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= store.capacity:
            raise MindsetError(f"k must be between 1 and the store's {store.capacity} slots, got {k!r}")
        if not 0.0 <= lam <= 1.0 or temperature <= 0 or (fallback is not None and fallback < 0):
            raise MindsetError(f"need 0 <= lambda <= 1, temperature > 0 and fallback >= 0; got {lam}, {temperature}, {fallback}")
        self.in_features, self.out_features = head.in_features, head.out_features
        self.weight = head.weight  # the same Parameter: a tied head stays tied
        self.bias = head.bias
        self.store = store
        self.k, self.lam, self.temperature, self.fallback = k, float(lam), float(temperature), fallback
        self.enabled = True

    def extra_repr(self) -> str:
        return f"k={self.k}, lam={self.lam}, temperature={self.temperature}, fallback={self.fallback}, entries={len(self.store)}"

    def mindset_config(self) -> dict:
        return {"k": self.k, "lam": self.lam, "temperature": self.temperature, "fallback": self.fallback}

    def mindset_extra_keys(self) -> list[str]:
        return []

    def mindset_save_extra(self, folder) -> None:
        self.store.save(folder / "store")

    def to_linear(self) -> nn.Linear:
        head = nn.Linear.__new__(nn.Linear)
        nn.Module.__init__(head)
        head.in_features, head.out_features, head.weight, head.bias = self.in_features, self.out_features, self.weight, self.bias
        return head

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = F.linear(hidden, self.weight, self.bias)
        if not self.enabled or len(self.store) == 0 or self.lam == 0.0:
            return logits
        flat = hidden.reshape(-1, hidden.shape[-1])
        log_p = self.mix(logits.reshape(flat.shape[0], -1).float(), self.neighbours(flat))
        return log_p.reshape(*logits.shape[:-1], -1)

    def neighbours(self, flat_hidden: torch.Tensor):
        return self.store.query(flat_hidden.detach(), min(self.k, len(self.store)))

    def mix(self, logits: torch.Tensor, hits, lam: float | None = None) -> torch.Tensor:
        """log((1 - lam) p_LM + lam p_kNN) for (N, V) logits and the hits of the same N positions."""
        lam = self.lam if lam is None else lam
        p_lm = torch.softmax(logits, dim=-1)
        knn_logits = hits.scores.to(logits.device) / self.temperature  # scores are -squared distances
        if self.fallback is not None:
            knn_logits = torch.cat([knn_logits, torch.full_like(knn_logits[:, :1], -self.fallback / self.temperature)], 1)
        weights = torch.softmax(knn_logits, dim=-1).nan_to_num(0.0)
        tokens = self.store.values[hits.slots.clamp(min=0).to(self.store.values.device)].to(logits.device)
        vote = weights[:, : hits.slots.shape[1]] * hits.valid.to(logits.device)
        own = weights[:, -1:] if self.fallback is not None else torch.zeros_like(weights[:, :1])
        p = ((1 - lam) + lam * own) * p_lm
        p = p.scatter_add(1, tokens, lam * vote)
        missing = 1.0 - (own + vote.sum(1, keepdim=True))  # a row with no entry at all: its kNN mass goes back to p_LM
        p = p + lam * missing.clamp(min=0) * p_lm
        return torch.log(p.clamp_min(1e-30))


def final_hidden_states(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The LM head's input at every position: (B, T, d)."""
    return model.base_model(input_ids=input_ids).last_hidden_state


@torch.inference_mode()
def add_text(
    model, tokenizer, store, text: str, *, context: int = 512, stride: int | None = None, max_tokens: int | None = None,
    label: str | None = None, progress: bool = False,
) -> int:
    """Write (final hidden state, next token) for every scored position of `text`; returns entries added.

    Windows as in perplexity (mindset.evaluate.plan_windows): each token is predicted once, with at least
    context - stride tokens of history. Each entry's source text is the context tail before its token.
    """
    from mindset.evaluate.perplexity import plan_windows
    from mindset.progress import track

    if max_tokens is not None:
        text = text[: max_tokens * 16]  # no token is longer than 16 characters here; spares tokenizing a whole book
    ids = torch.tensor(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"][:max_tokens], dtype=torch.long)
    if ids.numel() < 2:
        raise MindsetError("the text to memorize has fewer than 2 tokens")
    windows = plan_windows(ids.numel(), context, stride or max(1, context // 2))
    device = next(model.parameters()).device
    added = 0
    for w in track(windows, len(windows), "memorize", enabled=progress, unit="windows"):
        hidden = final_hidden_states(model, ids[w.begin : w.end][None].to(device))[0]  # (T, d)
        targets = torch.arange(w.first_target, w.end)
        keys = hidden[targets - 1 - w.begin]
        tails = tokenizer.batch_decode([ids[max(0, t - SOURCE_TOKENS) : t].tolist() for t in targets.tolist()])
        prefix = f"[{label}] " if label else ""
        store.insert(keys.float(), ids[targets].to(store.values.device), [prefix + tail for tail in tails])
        added += targets.numel()
    return added


def knn_head(model) -> KnnLMHead:
    head = model.get_output_embeddings()
    if not isinstance(head, KnnLMHead):
        raise MindsetError("this model has no kNN-LM store; attach one first (mindset surgery knn-lm)")
    return head


def memorize(loaded, text: str, *, label: str | None = None, context: int = 512, progress: bool = False) -> dict:
    """Write a document into the model's memory stores: its kNN-LM datastore and any associative layers."""
    from mindset.memory.associative import AssociativeMemory

    model, tokenizer = loaded.model, loaded.tokenizer
    head = model.get_output_embeddings()
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, AssociativeMemory)]
    if not isinstance(head, KnnLMHead) and not layers:
        raise MindsetError("this model has no memory store to write into: attach a kNN-LM store or associative layers first")
    report: dict = {}
    if isinstance(head, KnnLMHead):
        report["knn_lm"] = {"added": add_text(model, tokenizer, head.store, text, context=context, label=label, progress=progress), "entries": len(head.store)}
    if layers:
        report.update(_memorize_associative(model, tokenizer, layers, text, context))
    return report


@torch.inference_mode()
def _memorize_associative(model, tokenizer, layers, text: str, context: int) -> dict:
    """Each associative layer stores (its input, its FFN's output) at every position of the text."""
    ids = torch.tensor(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=torch.long)
    device = next(model.parameters()).device
    captured: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: captured.__setitem__(name, (args[0], mod.dense_forward(args[0])))) for name, m in layers]
    report = {}
    try:
        for begin in range(0, ids.numel(), context):
            chunk = ids[begin : begin + context]
            model(input_ids=chunk[None].to(device), logits_to_keep=1)
            sources = tokenizer.batch_decode([chunk[max(0, t - SOURCE_TOKENS) : t + 1].tolist() for t in range(chunk.numel())])
            for name, layer in layers:
                x, out = captured[name]
                counts = layer.write(x.reshape(-1, x.shape[-1]).float(), out.reshape(-1, out.shape[-1]).float(), sources)
                entry = report.setdefault(name, {"inserted": 0, "merged": 0})
                entry["inserted"] += counts["inserted"]
                entry["merged"] += counts["merged"]
    finally:
        for hook in hooks:
            hook.remove()
    for name, layer in layers:
        report[name]["entries"] = len(layer.store)
    return report
