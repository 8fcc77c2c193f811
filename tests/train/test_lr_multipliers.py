"""Learning-rate multipliers by parameter-name glob: head gates (c = 0 at start) move in a few steps only
with a larger learning rate than the weights', which is what the gates recipe relies on."""

import pytest
import torch

from mindset.errors import MindsetError
from mindset.models import load
from mindset.surgery import head_gates
from mindset.train import DistillConfig, distill
from mindset.train.module import scaled_groups

SMALL = {"steps": 8, "batch_size": 2, "seq_len": 32, "max_train_tokens": 2000, "warmup_steps": 0, "alpha": 0.0, "beta": 1.0, "gamma": 0.0, "lr": 1e-3}


def test_matching_parameters_form_their_own_group_without_weight_decay():
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = scaled_groups([("x.gate_logits", a), ("x.weight", b), ("y.gate_logits", c)], 0.01, {"*gate_logits": 100.0})
    assert groups[0]["params"] == [b] and "lr" not in groups[0]
    assert groups[1]["params"] == [a, c] and groups[1]["lr"] == pytest.approx(1.0) and groups[1]["weight_decay"] == 0.0


def gate_movement(tmp_path, name, **overrides) -> float:
    student = head_gates(load("tiny-llama", seed=0), inplace=True)
    distill(student, None, DistillConfig(name=name, **{**SMALL, **overrides}), runs_dir=tmp_path, progress=False)
    return max(m.gate_logits.abs().max().item() for m in student.model.modules() if hasattr(m, "gate_logits"))


def test_a_multiplier_moves_the_gates_further(tmp_path):
    plain = gate_movement(tmp_path, "plain")
    scaled = gate_movement(tmp_path, "scaled", lr_multipliers="*gate_logits=100")
    assert scaled > 20 * plain > 0


def test_a_glob_matching_nothing_trainable_is_refused(tmp_path):
    student = load("tiny-llama", seed=0)
    with pytest.raises(MindsetError, match="'\\*gate_logit' matches no trainable parameter"):
        distill(student, None, DistillConfig(name="typo", **SMALL, lr_multipliers={"*gate_logit": 10}), runs_dir=tmp_path, progress=False)
