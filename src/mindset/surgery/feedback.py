"""Layerwise feedback: layer i reads, at position t, a learned projection of layer j's output at t - 1 (j > i).

    layerwise_feedback(model, pairs=[(0, 5), (2, 9)])          # zero-initialised: logits unchanged
    layerwise_feedback(model, pairs=[(0, 5)], rank=16)         # low-rank projection: up @ down, up zero
    feedback_pairs(model)                                      # [(0, 5), (2, 9)]

What a forward computes (training, a full forward and cached generation all follow this one definition):
    pass 1: the model without feedback, under no_grad, up to the highest j of a pair:
            h_j(t), (B, T, d), the output of layer j at every position t. No autograd graph is built, so no
            gradient flows through the fed-back state (the "stop-gradient" of the idea text).
    pass 2: the model again, where the input of layer i at position t becomes
            x_i(t) + rms(x_i(t)) * sum over pairs (i, j) of W_ij u_j(t - 1),    u_j = h_j / rms(h_j),
            rms(v) = sqrt(mean(v^2) + eps) over the hidden dimension; u_j(-1) = 0, and 0 as well where
            position t - 1 is padding (attention_mask 0), so a left-padded row computes what it computes
            unpadded. Its logits (and loss) are the model's output.
Both passes are causal and parallel over positions: training costs one normal forward plus (max j + 1)/L of
one, without grad. W_ij is an nn.Linear(d, d) with zero weights (or up @ down with `up` zero), so at
initialisation pass 2 equals pass 1 and the logits are the original model's; W's gradient, g(t) h_j(t-1)^T,
is non-zero from the first step.

Why u_j and rms(x_i) and not W_ij h_j itself: the fed term is measured in units of layer i's own input,
so its share of that input is set by W alone. Raw, it is not: in a Llama the residual stream grows with
depth (layer 3's output ~30-100x the RMS of the embedding layer 0 reads), W's gradient grows with h_j,
and Adam moves W's entries by ~lr a step whatever the gradient's size. Early in training, while the model
learns byte frequencies, h_j(t - 1) is nearly the same vector at every position, so W h_j is a large
learned bias on layer i's input: within ~20 steps it swamped the token embedding at layers 0 and 1, their
RMS-normalised sublayers no longer saw the current token, and the model froze at the unigram loss (3.04
nats/byte on Austen, the first feedback sweep). Normalising h_j alone does not prevent it (u_j's norm,
sqrt(d), still dwarfs the embedding's); scaling to rms(x_i) does (tests/train/test_pretrain_feedback.py).
Folders saved before this change ("relative" absent from their config) load with the raw definition.

Why pass-1 states and not true recurrence (h_j taken from pass 2 itself, i.e. after feedback at t - 1,
t - 2, ...): that state depends on every earlier position through the feedback, so training would be
sequential over positions, and a two-pass training run would compute something other than generation.
With pass-1 states every position's output depends only on the tokens up to it, through two causal
passes, so running the sequence in chunks (prefill, then one token at a time over a KV cache) computes the
same numbers as running it whole, up to floating-point summation order: cached greedy generation equals
re-running the full sequence each step (tests/surgery/test_feedback.py checks it).

Cached generation: the KV cache object carries a FeedbackState next to it (attribute `mindset_feedback`):
pass 1's own KV cache, and pass 1's h_j at every cached position (a history, not only the last one, so
a cropped cache stays exact). A step runs pass 1 for the new positions over that KV cache, takes
h_j(t - 1) of its first position from the history, then pass 2 over the main cache. The cache's
reorder_cache, crop, batch_repeat_interleave, batch_select_indices and reset are wrapped, on that cache
object only, to do the same to the state: beam search, assisted decoding and mindset's shared-context
scoring stay in sync. A cache that holds positions but no state (filled by the model without its
feedback, or by another model) is refused.

Mechanism: a LayerwiseFeedback module at `model.mindset_feedback` holds the projections (so it saves and
loads as a custom module, see mindset.models.custom) and puts two hooks on `model.base_model`, which every
caller reaches (`model(...)`, `model(..., labels=...)`, `model.generate`, mindset.chat's decode loop,
`model.model(...)`): a pre-hook that runs pass 1 and puts temporary pre-hooks on the layers i, and a hook
that removes them. Limits: one forward at a time per model (the fed states live on the module during a
call); gradient checkpointing is refused (its recomputation would miss the feedback); GGUF cannot express
feedback (mindset_fold is None, export refuses it by name); pairs are layer indices, so a depth edit made
after feedback renumbers the layers they name.
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path

import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.models.anatomy import decoder_layers, n_layers, text_config
from mindset.models.custom import note_edit, set_module
from mindset.surgery.feedback_cache import STATE_ATTR, FeedbackState, bind_state
from mindset.surgery.layers import unwrap, working_copy

MODULE_PATH = "mindset_feedback"  # where the module sits on the HF model
WEIGHTS_FILE = "projections.safetensors"
EPS = 1e-6  # rms() of an all-zero fed state (t = 0, padding) stays finite
NOT_FOR_PASS_1 = ("output_attentions", "output_hidden_states", "return_dict", "past_key_values", "use_cache")


def layerwise_feedback(model, pairs, *, rank: int | None = None, seed: int = 0, inplace: bool = False):
    """Feed layer j's output at t - 1 into layer i's input at t for each (i, j) in `pairs` (j > i).

    Each pair gets its own projection, zero-initialised so the logits are unchanged until it trains.
    rank None: a full d x d matrix; rank r: up (d x r, zero) @ down (r x d, random from `seed`), as LoRA does.
    A model that already has feedback keeps its pairs and gains the new ones."""
    hf, rewrap = unwrap(model)
    count = n_layers(hf)
    hidden = int(text_config(hf.config).hidden_size)
    existing = feedback_pairs(hf)
    wanted = check_pairs(pairs, count, existing)
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= hidden):
        raise MindsetError(f"rank={rank!r}: give None (a full {hidden}x{hidden} projection) or a rank 1-{hidden}")
    out = working_copy(hf, inplace)
    weight = next(out.parameters())
    module = getattr(out, MODULE_PATH, None)
    if module is None:
        module = LayerwiseFeedback(hidden).to(device=weight.device, dtype=weight.dtype)
        set_module(out, MODULE_PATH, module)
        module.attach(out)
    with torch.no_grad():
        for i, j in wanted:
            module.add_pair(i, j, rank, seed, device=weight.device, dtype=weight.dtype)
    note_edit(out, "layerwise_feedback", pairs=[list(p) for p in wanted], rank=rank)
    return rewrap(out)


def feedback_pairs(model) -> list[tuple[int, int]]:
    """The (i, j) pairs a model feeds back, in the order they were added ([] without feedback)."""
    hf, _ = unwrap(model)
    module = getattr(hf, MODULE_PATH, None)
    return list(module.pairs) if isinstance(module, LayerwiseFeedback) else []


def check_pairs(pairs, count: int, existing=()) -> list[tuple[int, int]]:
    """(i, j) pairs as ints, each 0 <= i < j < count, none twice and none the model already has."""
    hint = f"give (i, j) layer pairs with 0 <= i < j <= {count - 1}, e.g. [(0, {count - 1})]"
    if isinstance(pairs, (str, bytes)) or not hasattr(pairs, "__iter__"):
        raise MindsetError(f"pairs={pairs!r}: {hint}")
    out: list[tuple[int, int]] = []
    for pair in pairs:
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2 or not all(_is_int(v) for v in pair):
            raise MindsetError(f"feedback pair {pair!r} is not two layer indices; {hint}")
        i, j = int(pair[0]), int(pair[1])
        for index in (i, j):
            if not 0 <= index < count:
                raise MindsetError(f"feedback pair ({i}, {j}): layer {index} is out of range; this model has {count} layers (0-{count - 1})")
        if j <= i:
            allowed = f"{i + 1}-{count - 1}" if i + 1 < count else "none: it is the last layer"
            raise MindsetError(f"feedback pair ({i}, {j}): j must come after i (layer i reads layer j's previous state); j for i={i}: {allowed}")
        if (i, j) in out:
            raise MindsetError(f"feedback pair ({i}, {j}) is given twice; give each pair once")
        if (i, j) in existing:
            raise MindsetError(f"the model already feeds layer {j} back into layer {i}; its pairs are {list(existing)}")
        out.append((i, j))
    if not out:
        raise MindsetError(f"no feedback pairs given; {hint}")
    return out


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key(i: int, j: int) -> str:
    return f"{i}_{j}"


class _Pass1Done(Exception):
    """Pass 1 has captured every state it needs: the layers above the highest j are skipped."""


class LayerwiseFeedback(nn.Module):
    """The projections W_ij and the two-pass logic around the base model's forward (see the module docstring)."""

    mindset_restorer = "layerwise_feedback"

    def __init__(self, hidden: int, relative: bool = True) -> None:
        super().__init__()
        self.hidden = hidden
        self.relative = relative  # the fed term in units of layer i's input (False: W h_j raw, old folders only)
        self.projections = nn.ModuleDict()
        self.pairs: list[tuple[int, int]] = []
        self.ranks: dict[str, int | None] = {}
        self._fed: dict[int, torch.Tensor] | None = None  # h_j(t - 1) for the call under way, (B, n, d)
        self._handles: list = []  # the temporary layer-i pre-hooks of that call
        self._new_state: FeedbackState | None = None  # a state to hang on a cache the model creates itself
        self._in_pass_1 = False

    def extra_repr(self) -> str:
        return f"pairs={self.pairs}, hidden={self.hidden}"

    def add_pair(self, i: int, j: int, rank: int | None, seed: int, *, device=None, dtype=None) -> None:
        if rank is None:
            proj: nn.Module = nn.Linear(self.hidden, self.hidden, bias=False, device=device, dtype=dtype)
            nn.init.zeros_(proj.weight)
        else:
            down = nn.Linear(self.hidden, rank, bias=False, device=device, dtype=dtype)
            up = nn.Linear(rank, self.hidden, bias=False, device=device, dtype=dtype)
            generator = torch.Generator().manual_seed(seed + 1000 * i + j)
            down.weight.copy_(torch.randn(down.weight.shape, generator=generator) / math.sqrt(self.hidden))
            nn.init.zeros_(up.weight)
            proj = nn.Sequential(down, up)
        self.projections[_key(i, j)] = proj
        self.pairs.append((i, j))
        self.ranks[_key(i, j)] = rank

    def attach(self, model: nn.Module) -> None:
        """Hook the two passes onto the model's base (the decoder every caller runs through)."""
        base = model.base_model
        base.register_forward_pre_hook(self._before, with_kwargs=True)
        base.register_forward_hook(self._after, with_kwargs=True)

    # ---- persistence (see mindset.models.custom) ---------------------------------------------------------
    def mindset_config(self) -> dict:
        pairs, ranks = [list(p) for p in self.pairs], [self.ranks[_key(*p)] for p in self.pairs]
        return {"hidden": self.hidden, "pairs": pairs, "ranks": ranks, "relative": self.relative}

    def mindset_extra_keys(self) -> list[str]:
        return list(self.state_dict())

    def mindset_save_extra(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))

    def mindset_fold(self) -> None:
        """None: no plain module computes a layer's input from another layer's previous-position output."""
        return None

    # ---- the two passes ----------------------------------------------------------------------------------
    def _before(self, base: nn.Module, args: tuple, kwargs: dict):
        if self._in_pass_1:
            return None
        self._clear()  # hooks a failed call left behind
        if getattr(base, "gradient_checkpointing", False) and base.training:
            raise MindsetError("layerwise feedback cannot train with gradient checkpointing (its recomputation would miss the fed-back states); turn it off")
        call = _arguments(base, args, kwargs)
        layers = decoder_layers(base)
        for i, j in self.pairs:
            if j >= len(layers):
                raise MindsetError(f"feedback pair ({i}, {j}) names layer {j}, but the model now has {len(layers)} layers (0-{len(layers) - 1})")
        cache = call.get("past_key_values")
        state, past = self._state_for(base, cache, call)
        new = self._pass_1(base, layers, call, state)  # {j: (B, n, d)}
        self._fed = self._shift(new, state, past, call.get("attention_mask"))
        if state is not None:
            state.push(new)
        sources: dict[int, list[int]] = {}
        for i, j in self.pairs:
            sources.setdefault(i, []).append(j)
        for i, js in sources.items():
            hook = functools.partial(self._inject, js, [self.projections[_key(i, j)] for j in js])
            self._handles.append(layers[i].register_forward_pre_hook(hook, with_kwargs=True))
        return None

    def _after(self, base: nn.Module, args: tuple, kwargs: dict, output):
        if self._in_pass_1:
            return None
        cache = getattr(output, "past_key_values", None)
        if cache is not None and self._new_state is not None and getattr(cache, STATE_ATTR, None) is None:
            bind_state(cache, self._new_state)  # the model made this cache itself: the state goes with it
        self._clear()
        return None

    def _clear(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._fed, self._new_state = [], None, None

    def _state_for(self, base: nn.Module, cache, call: dict) -> tuple[FeedbackState | None, int]:
        """(the feedback state this call extends, or None without a cache; how many positions are cached)."""
        sources = sorted({j for _, j in self.pairs})
        past = cache.get_seq_length() if cache is not None else 0
        state = getattr(cache, STATE_ATTR, None) if cache is not None else None
        if state is None and past:
            raise MindsetError(
                f"this KV cache holds {past} positions computed without the model's layerwise feedback states; "
                "give a model with feedback an empty cache (a new DynamicCache) and let it fill it"
            )
        if state is not None and (state.length() != past or state.sources != sources):
            raise MindsetError(
                f"this KV cache is out of step with its layerwise feedback state ({past} positions cached, {state.length()} "
                f"fed-back states for layers {state.sources}, the model feeds back {sources}); start from an empty cache"
            )
        if state is None and (cache is not None or _uses_cache(base, call)):
            state = FeedbackState(base.config, sources)
            if cache is not None:
                bind_state(cache, state)
            else:
                self._new_state = state
        return state, past

    def _pass_1(self, base: nn.Module, layers, call: dict, state: FeedbackState | None) -> dict[int, torch.Tensor]:
        """Layer j's output at the call's positions for every fed-back j: the model without feedback, no grad."""
        sources = sorted({j for _, j in self.pairs})
        captured: dict[int, torch.Tensor] = {}

        def capture(j: int, module, args, output):
            captured[j] = output[0] if isinstance(output, tuple) else output
            if j == sources[-1]:
                raise _Pass1Done

        handles = [layers[j].register_forward_hook(functools.partial(capture, j)) for j in sources]
        inputs = {k: v for k, v in call.items() if k not in NOT_FOR_PASS_1}
        self._in_pass_1 = True
        try:
            with torch.no_grad():
                base(**inputs, past_key_values=None if state is None else state.kv, use_cache=state is not None)
        except _Pass1Done:
            pass
        finally:
            self._in_pass_1 = False
            for handle in handles:
                handle.remove()
        return captured

    def _shift(self, new: dict[int, torch.Tensor], state: FeedbackState | None, past: int, mask) -> dict[int, torch.Tensor]:
        """h_j(t - 1) at the call's positions t = past .. past + n - 1: the cached last state, then the new ones."""
        fed = {}
        for j, h in new.items():  # (B, n, d)
            first = state.last(j) if past else torch.zeros_like(h[:, :1])  # (B, 1, d)
            fed[j] = torch.cat([first, h[:, :-1]], dim=1)
        n = next(iter(new.values())).shape[1]
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[1] == past + n:
            previous = mask[:, past - 1 : past + n - 1] if past else torch.cat([torch.zeros_like(mask[:, :1]), mask[:, : n - 1]], dim=1)
            fed = {j: h * previous[..., None].to(h.dtype) for j, h in fed.items()}  # padding feeds back nothing
        return fed

    def _inject(self, sources: list[int], projections: list[nn.Module], layer, args: tuple, kwargs: dict):
        """Layer i's pre-hook in pass 2: its input plus the projected fed-back states."""
        fed = self._fed
        if fed is None:
            return None
        x = args[0] if args else kwargs["hidden_states"]
        if not self.relative:
            add = sum(proj(fed[j]) for j, proj in zip(sources, projections))
        else:
            add = sum(proj(fed[j] / _rms(fed[j])) for j, proj in zip(sources, projections)) * _rms(x)
        if args:
            return (args[0] + add, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + add}


def _rms(v: torch.Tensor) -> torch.Tensor:
    """sqrt(mean(v^2) + eps) over the hidden dimension, (..., 1), computed in float32 (0 rows stay 0 once divided)."""
    return v.float().pow(2).mean(-1, keepdim=True).add(EPS).sqrt().to(v.dtype)


def _arguments(base: nn.Module, args: tuple, kwargs: dict) -> dict:
    """The base model's call as keyword arguments (its own signature names the positional ones)."""
    if not args:
        return dict(kwargs)
    bound = inspect.signature(base.forward).bind_partial(*args, **kwargs)
    named = dict(bound.arguments)
    for name, param in inspect.signature(base.forward).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            named.update(named.pop(name, {}))
    return named


def _uses_cache(base: nn.Module, call: dict) -> bool:
    """Whether the base model will build and return a KV cache for this call (HF's rule: the argument, else the config)."""
    use = call.get("use_cache")
    return bool(getattr(base.config, "use_cache", False) if use is None else use)


def restore_feedback(model, path: str, config: dict, folder: Path) -> None:
    """Rebuild the feedback module `load` found in a folder's surgery record, with its trained projections."""
    from safetensors.torch import load_file

    try:
        hidden, pairs, ranks = int(config["hidden"]), [tuple(p) for p in config["pairs"]], list(config["ranks"])
        relative = bool(config.get("relative", False))  # absent: saved before the fed term was scaled
    except (KeyError, TypeError, ValueError) as err:
        raise MindsetError(f"the saved layerwise feedback at {path} has a bad config in mindset-surgery.json ({err})") from None
    check_pairs(pairs, n_layers(model))
    file = folder / WEIGHTS_FILE
    if not file.exists():
        raise MindsetError(f"the saved layerwise feedback at {path} lacks its weights file {file}")
    module = LayerwiseFeedback(hidden, relative)
    with torch.no_grad():
        for (i, j), rank in zip(pairs, ranks):
            module.add_pair(int(i), int(j), rank, 0)
    try:
        module.load_state_dict(load_file(str(file)))
    except RuntimeError as err:
        raise MindsetError(f"{file} does not match the recorded feedback pairs {pairs}: {str(err).splitlines()[0]}") from None
    weight = next(model.parameters())
    set_module(model, path, module.to(device=weight.device, dtype=weight.dtype))
    module.attach(model)


__all__ = ["LayerwiseFeedback", "check_pairs", "feedback_pairs", "layerwise_feedback", "restore_feedback"]
