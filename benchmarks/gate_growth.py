"""Head gates at work: a tiny Llama with too few heads saturates its gates, grows heads, and learns better.

The task: a stream of random symbols (alphabet of SYMBOLS); at each position t the target names the ordered
pair (x[t-A], x[t-B]) for the fixed offsets OFFSETS = (A, B), one output token per pair. A head attends by
relative position, so each offset wants its own head; one head must blend the two tokens' values into one
head_dim-wide vector, and the single-head model stays far above the two-head one's loss.

    PYTHONPATH=src python benchmarks/gate_growth.py            # seeds 0 1 2: gates, losses, margin

prints, per seed, the gates after the first phase and the mean loss over the last steps of the second
phase for the grown and the un-grown model (same data, same order, same optimiser settings), and a control:
a model born with two heads, trained like phase one (its gates saturate too; see `control`).
tests/surgery/test_gates.py runs `experiment` once and asserts on it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mindset.surgery import grow_saturated, head_gates
from mindset.surgery.gates import gated_blocks

SYMBOLS = 8
OFFSETS = (1, 3)
SEQ = 16
BATCH = 32
VOCAB = SYMBOLS + SYMBOLS * SYMBOLS  # inputs 0..7, targets 8 + a*8 + b
LR, GATE_LR = 1e-2, 2e-1
FIRST_DECAY, SECOND_DECAY = 1.0, 0.1  # phase one: strong decay on the weights, none on the gates (see train)


@dataclass
class Result:
    gates: list[float]  # g after the first phase, layer 0
    grown_heads: int
    grown_loss: float  # mean training loss over the last `tail` steps of phase two
    plain_loss: float


def tiny_model(seed: int, n_heads: int = 1) -> LlamaForCausalLM:
    """One layer, `n_heads` heads of head_dim 8 (explicit, so added heads keep it), one kv group."""
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=n_heads,
        num_key_value_heads=n_heads, head_dim=8, max_position_embeddings=SEQ, tie_word_embeddings=False,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels): labels are -100 where the earlier offset does not exist yet."""
    x = torch.randint(0, SYMBOLS, (BATCH, SEQ), generator=generator)
    a, b = OFFSETS
    y = torch.full_like(x, -100)
    y[:, b:] = SYMBOLS + x[:, b - a : SEQ - a] * SYMBOLS + x[:, : SEQ - b]
    return x, y


def train(model, steps: int, data_seed: int, weight_decay: float, tail: int = 50) -> float:
    """Plain AdamW: the weights at LR with `weight_decay`, the gates at GATE_LR without decay; returns the
    mean loss of the last `tail` steps. With a strong decay on the weights the head's output scale has to
    live in its gate, so a head the task needs more of pushes its gate to saturation within a few hundred
    steps, in every seed tried; with the usual decay the gates hover at 1.6-1.95 and saturation is seed luck."""
    gates = [p for n, p in model.named_parameters() if n.endswith("gate_logits")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("gate_logits")]
    groups = [{"params": rest, "lr": LR, "weight_decay": weight_decay}] + ([{"params": gates, "lr": GATE_LR, "weight_decay": 0.0}] if gates else [])
    opt = torch.optim.AdamW(groups)
    generator = torch.Generator().manual_seed(data_seed)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = batch(generator)
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return sum(losses[-tail:]) / tail


def experiment(seed: int = 0, first: int = 200, second: int = 200, threshold: float = 0.95) -> Result:
    torch.manual_seed(seed)  # the model's dropout-free forward uses no RNG; this only pins anything left
    model = head_gates(tiny_model(seed))
    train(model, first, data_seed=1000 + seed, weight_decay=FIRST_DECAY)
    gates = gated_blocks(model)[0].attention.o.gates().tolist()
    grown = grow_saturated(model, threshold, init="random", seed=seed)
    grown_heads = gated_blocks(grown)[0].n_heads
    grown_loss = train(grown, second, data_seed=2000 + seed, weight_decay=SECOND_DECAY)
    plain_loss = train(model, second, data_seed=2000 + seed, weight_decay=SECOND_DECAY)
    return Result(gates, grown_heads, grown_loss, plain_loss)


def control(seed: int, n_heads: int = 2, steps: int = 200) -> tuple[list[float], float]:
    """A model born with enough heads, trained like phase one: (gates, loss). Its gates saturate too: under
    this regime a saturated gate says "this head is used at full strength", and growth pays where a layer
    with all heads saturated also has a task it cannot do; the loss gap above is what shows that."""
    model = head_gates(tiny_model(seed, n_heads))
    loss = train(model, steps, data_seed=1000 + seed, weight_decay=FIRST_DECAY)
    return gated_blocks(model)[0].attention.o.gates().tolist(), loss


def main(seeds: list[int]) -> None:
    torch.set_num_threads(1)  # tiny matmuls: one thread is several times faster than many
    for seed in seeds:
        r = experiment(seed)
        print(f"seed {seed}: gates {[round(g, 3) for g in r.gates]}  heads after grow {r.grown_heads}  "
              f"loss grown {r.grown_loss:.3f}  un-grown {r.plain_loss:.3f}  ratio {r.grown_loss / r.plain_loss:.2f}")
        gates, loss = control(seed)
        print(f"  control, born with 2 heads: gates {[round(g, 3) for g in gates]}  loss after phase one {loss:.3f}")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1, 2])
