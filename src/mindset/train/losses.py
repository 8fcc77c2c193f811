"""The distillation loss, term by term."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, mean per token, times T²
    (Hinton et al.: keeps gradient magnitudes comparable across temperatures)."""
    vocab = student_logits.shape[-1]
    log_p_student = F.log_softmax(student_logits.float().view(-1, vocab) / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float().view(-1, vocab) / temperature, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * temperature**2


def next_token_ce(student_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    vocab = student_logits.shape[-1]
    return F.cross_entropy(student_logits[:, :-1].float().reshape(-1, vocab), ids[:, 1:].reshape(-1))


def hidden_cosine(student_hidden: tuple, teacher_hidden: tuple, layers: list[int]) -> torch.Tensor:
    """Mean over the chosen layers and tokens of 1 - cos(student, teacher)."""
    terms = [1 - F.cosine_similarity(student_hidden[i].float(), teacher_hidden[i].float(), dim=-1).mean() for i in layers]
    return torch.stack(terms).mean()


def distill_loss(student_out, teacher_out, ids: torch.Tensor, config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its parts (unweighted), from model outputs on the same token ids."""
    parts: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=ids.device)
    if config.alpha:
        parts["kl"] = kl_to_teacher(student_out.logits, teacher_out.logits, config.temperature)
        total = total + config.alpha * parts["kl"]
    if config.beta:
        parts["ce"] = next_token_ce(student_out.logits, ids)
        total = total + config.beta * parts["ce"]
    if config.gamma:
        parts["cos"] = hidden_cosine(student_out.hidden_states, teacher_out.hidden_states, config.cosine_layers)
        total = total + config.gamma * parts["cos"]
    return total, parts
