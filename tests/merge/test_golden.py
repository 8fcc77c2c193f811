"""Tensor identity with mergekit 0.1.5, checked without mergekit: `golden/` holds micro inputs and what
mergekit wrote for each config (made by `benchmarks/merge_peer_check.py --golden-only --write-golden`).

Every method both tools have is covered: passthrough, linear (fp32, fp16, bf16 out, gradients, filters),
slerp, task_arithmetic, ties (fp32, fp16), dare_ties and dare_linear (mergekit reseeded per tensor as
mindset seeds it), model_stock (plain, filter_wise), and the union and model tokenizer sources.
Bitwise equality is expected; 1e-6 is allowed only for a CPU whose reductions round differently.
"""

import json
from pathlib import Path

import pytest
import torch

from mindset.merge import merge

GOLDEN = Path(__file__).parent / "golden"
CASES = json.loads((GOLDEN / "cases.json").read_text())


@pytest.mark.parametrize("case", sorted(CASES["cases"]), ids=lambda c: CASES["cases"][c]["name"])
def test_same_tensors_as_mergekit(case, tmp_path, tensors_in):
    merge(GOLDEN / f"{case}.yaml", tmp_path / "out", seed=CASES["seed"])
    ours, theirs = tensors_in(tmp_path / "out"), tensors_in(GOLDEN / f"{case}-mergekit")
    assert ours.keys() == theirs.keys()
    for name, expected in theirs.items():
        got = ours[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        if not torch.equal(got, expected):
            assert (got.double() - expected.double()).abs().max().item() <= 1e-6, name
    if (GOLDEN / f"{case}-mergekit" / "tokenizer.json").exists() and "tokenizer" in CASES["cases"][case]["name"]:
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer

        expected = Tokenizer.from_file(str(GOLDEN / f"{case}-mergekit" / "tokenizer.json")).get_vocab(with_added_tokens=True)
        assert AutoTokenizer.from_pretrained(tmp_path / "out").get_vocab() == expected


def test_every_shared_method_has_a_golden_case():
    methods = {(GOLDEN / f"{case}.yaml").read_text().split("\n")[0].split(": ")[1] for case in CASES["cases"]}
    assert methods == {"passthrough", "linear", "slerp", "task_arithmetic", "ties", "dare_ties", "dare_linear", "model_stock"}
