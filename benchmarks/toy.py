"""Toy tasks with a known mechanism, and tiny models trained on them in seconds on a CPU: the ground truth
that tests (and the protection demonstration, benchmarks/protected_training.py) check the circuits tools against.
Demo code, not a capability: it sits above circuits and train (it uses both), so it lives in benchmarks/
(tests import it as `benchmarks.toy`; pyproject puts the repository root on pytest's path).

- previous-token: at every position, predict the token before the current one. A model without MLPs can
  only do it with a head that attends from each position to the one before it and copies that token.
- letter map: after "x=", answer a fixed random letter f(x): a lookup the model stores in its weights.
"""

from __future__ import annotations

import random
import string

import torch
import torch.nn.functional as F

from mindset.circuits.suite import Suite, make_suite

LETTERS = string.ascii_lowercase


def attention_only_llama(seed: int = 0, layers: int = 2, heads: int = 4, hidden: int = 64, init: float = 0.02):
    """A tiny Llama (byte-level tokenizer) whose MLPs are zero and frozen: attention only."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from mindset.models.loading import LoadedModel, ModelSource
    from mindset.models.tiny import byte_tokenizer

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=8, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=64, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager", initializer_range=init,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    for layer in model.model.layers:
        for p in layer.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)
    return LoadedModel(model.eval(), tokenizer, ModelSource(f"toy-attention-only-{layers}x{heads}", "tiny"))


def letters_to_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def restrict_attention_training(loaded, layer: int, head: int) -> None:
    """Let only one head's rows of q/k/v and columns of o_proj learn: every other head stays as initialised
    (random, and still adding its output to the residual stream). Gradient masks, so the model stays a plain HF model."""
    attn = loaded.model.model.layers[layer].self_attn
    d = attn.head_dim
    for i, block in enumerate(loaded.model.model.layers):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            weight = getattr(block.self_attn, name).weight
            mask = torch.zeros_like(weight)
            if i == layer:
                if name == "o_proj":
                    mask[:, head * d : (head + 1) * d] = 1
                else:
                    mask[head * d : (head + 1) * d] = 1
            weight.register_hook(lambda grad, mask=mask: grad * mask)


def train_previous_token(loaded, steps: int = 300, length: int = 16, batch: int = 64, lr: float = 3e-3, seed: int = 0) -> float:
    """Train to predict, at each position t >= 1, the token at t-1. Returns the final accuracy on a fresh batch."""
    model, tok = loaded.model, loaded.tokenizer
    letter_ids = torch.tensor(letters_to_ids(tok, LETTERS))
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    for _ in range(steps):
        ids = letter_ids[torch.randint(len(LETTERS), (batch, length), generator=generator)]
        logits = model(input_ids=ids).logits[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, :-1].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        ids = letter_ids[torch.randint(len(LETTERS), (256, length), generator=generator)]
        predicted = model(input_ids=ids).logits[:, 1:].argmax(-1)
        return float((predicted == ids[:, :-1]).float().mean())


def previous_token_suite(n: int = 40, length: int = 10, seed: int = 1) -> Suite:
    """Context: random letters; answer: the letter before the last one; distractors: the last letter and two others."""
    rnd = random.Random(seed)
    items = []
    for _ in range(n):
        text = "".join(rnd.choice(LETTERS) for _ in range(length))
        gold = text[-2]
        others = [c for c in LETTERS if c not in (gold, text[-1])]
        choices = [gold, text[-1], *rnd.sample(others, 2)] if text[-1] != gold else [gold, *rnd.sample(others, 3)]
        order = list(range(4))
        rnd.shuffle(order)
        items.append((text, [choices[i] for i in order], order.index(0)))
    return make_suite("previous_token", items)


def previous_token_attention(loaded, length: int = 16, seed: int = 2) -> torch.Tensor:
    """(layers, heads): mean attention weight from each position to the one before it, on random letters."""
    model, tok = loaded.model, loaded.tokenizer
    letter_ids = torch.tensor(letters_to_ids(tok, LETTERS))
    ids = letter_ids[torch.randint(len(LETTERS), (64, length), generator=torch.Generator().manual_seed(seed))]
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions  # per layer (B, H, T, T)
    t = torch.arange(1, length)
    return torch.stack([a[:, :, t, t - 1].mean(dim=(0, 2)) for a in attentions])


# --- a lookup task: "x=" -> f(x) ---------------------------------------------------------------------

def letter_map(seed: int = 0) -> dict[str, str]:
    rnd = random.Random(seed)
    targets = list(LETTERS)
    rnd.shuffle(targets)
    return dict(zip(LETTERS, targets))


def letter_map_suite(mapping: dict[str, str], seed: int = 3) -> Suite:
    """One document per letter: context "x=", four choices, the mapped letter correct."""
    rnd = random.Random(seed)
    items = []
    for source, target in mapping.items():
        choices = [target, *rnd.sample([c for c in LETTERS if c != target], 3)]
        rnd.shuffle(choices)
        items.append((f"{source}=", choices, choices.index(target)))
    return make_suite("letter_map", items)


def letter_map_text(mapping: dict[str, str], repeats: int = 40, seed: int = 0) -> str:
    """Training text: the pairs "x=y" separated by spaces, in random orders."""
    rnd = random.Random(seed)
    pairs = [f"{k}={v}" for k, v in mapping.items()]
    lines = []
    for _ in range(repeats):
        rnd.shuffle(pairs)
        lines.append(" ".join(pairs))
    return "\n".join(lines)


def train_on_text(loaded, text: str, steps: int, lr: float, seq_len: int = 32, batch: int = 16, seed: int = 0) -> None:
    """Plain next-token training (AdamW) on random windows of `text`: for building toy models quickly."""
    model = loaded.model
    ids = torch.tensor(letters_to_ids(loaded.tokenizer, text))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(len(ids) - seq_len, (batch,), generator=generator)
        x = torch.stack([ids[s : s + seq_len] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


# --- the protection demonstration ---------------------------------------------------------------------

def destructive_finetune_demo(folder, *, steps: int = 60, lr: float = 1e-2, check_every: int = 5, max_drop: float = 0.1,
                              threshold: float = 0.5, seed: int = 0) -> dict:
    """tiny-llama learns the letter map (the canary), then is fine-tuned at a high learning rate on random
    letters (which contradict the map), twice from the same weights: unprotected (the monitor only watches)
    and protected (importance-mapped components at ×0.1, rollbacks). Returns both runs' canary histories."""
    import copy
    import warnings
    from pathlib import Path

    from mindset.circuits.importance import importance
    from mindset.circuits.protect import Protection, ProtectionConfig
    from mindset.models import load
    from mindset.train import DistillConfig, distill

    folder = Path(folder)
    loaded = load("tiny-llama", device="cpu", dtype="float32")
    mapping = letter_map(seed)
    suite = letter_map_suite(mapping)
    train_on_text(loaded, letter_map_text(mapping), steps=300, lr=3e-3, seed=seed)
    rnd = random.Random(seed)
    noise = folder / "random_letters.txt"
    noise.parent.mkdir(parents=True, exist_ok=True)
    noise.write_text("".join(rnd.choice(LETTERS + " =") for _ in range(40000)))
    config = dict(steps=steps, batch_size=8, seq_len=32, lr=lr, alpha=0, beta=1, warmup_steps=0, min_lr_ratio=1.0,
                  data=str(noise), checkpoint_every=10**6, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = [importance(loaded, suite, "mlp"), importance(loaded, suite, "attn")]
        watch = Protection(ProtectionConfig(check_every=check_every, max_drop=max_drop, rollback=False), canaries=[suite])
        distill(copy.deepcopy(loaded), None, DistillConfig(name="unprotected", **config), runs_dir=folder, progress=False, protection=watch)
        guard = Protection(ProtectionConfig(threshold=threshold, check_every=check_every, max_drop=max_drop), importances=maps, canaries=[suite])
        distill(copy.deepcopy(loaded), None, DistillConfig(name="protected", **config), runs_dir=folder, progress=False, protection=guard)
    return {"suite": suite.name, "max_drop": max_drop, "protected_components": guard.protected,
            "unprotected": watch.history, "protected": guard.history, "rollbacks": guard.events}
