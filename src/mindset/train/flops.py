"""Training FLOPs per token and model FLOPs utilization (MFU), the estimate of Kaplan et al. / PaLM / nanoGPT.

    flops_per_token = 6 * N + 12 * L * d_attn * T        (forward + backward: 2 + 4 FLOPs per weight)

N counts every weight a token multiplies by: all parameters except the input embedding (a lookup), plus
the LM head (vocab x hidden, counted once more when it is tied to the embedding). The attention term is
PaLM's (appendix B): QK^T and attention-times-V at sequence length T for L layers of width d_attn =
heads x head_dim, counting the full T x T score matrix as PaLM and nanoGPT do, so MFU figures compare with
theirs. Layerwise feedback adds its pass 1, a forward without grad up to the highest source layer j:
2 x (j + 1) / L of the blocks' 6N + attention share / 3. Featural memory layers are counted at their dense
cost: training runs their masked path, which does the dense block's matmuls (the top-k saves FLOPs only
when decoding a few tokens, see mindset.memory.featural).

MFU = flops_per_token x tokens/s / the device's peak: bf16 dense tensor-core peaks from the vendors'
data sheets, by GPU name (or the config's peak_flops); none on CPU.
"""

from __future__ import annotations

import torch

# bf16 dense (no sparsity) peak FLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12, "4090": 165e12, "3090": 71e12, "V100": 125e12}


def matmul_parameters(model: torch.nn.Module) -> int:
    """Weights a token multiplies by: all but the input embedding, plus the LM head when tied to it."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    counted = sum(p.numel() for p in model.parameters() if p is not embedding)
    tied = head is not None and head.weight is embedding
    return counted + (embedding.numel() if tied else 0)


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Training FLOPs per token (forward and backward), as the module docstring derives."""
    config = model.config
    layers = config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 12 * layers * config.num_attention_heads * head_dim * seq_len
    total = 6 * matmul_parameters(model) + attention
    feedback = getattr(model, "mindset_feedback", None)
    if feedback is not None:
        from mindset.models.anatomy import decoder_layers

        blocks = sum(p.numel() for p in decoder_layers(model).parameters())
        top = max(j for _, j in feedback.pairs) + 1
        total += 2 * top / layers * (blocks + attention / 6)
    return float(total)


def peak_flops(device: torch.device, configured: float | None = None) -> float | None:
    """The device's peak FLOP/s for MFU: the configured value, the bf16 peak of a known GPU, else None."""
    if configured is not None:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)
