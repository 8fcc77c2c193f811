"""Activation patching: batched equals one-at-a-time, the normalization's endpoints hold where they must
(the whole clean input patched in; states before the changed token), errors, the CLI and the recipe step."""

import json

import numpy as np
import pytest
import torch

from mindset.circuits.patching import KINDS, Patch, patch, record, run_patches
from mindset.errors import MindsetError
from mindset.evaluate.loglikelihood import encode_request

CLEAN, CORRUPTED = "The capital of Spain is", "The capital of Italy is"  # same byte length: the tiny tokenizer is byte-level


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_batched_patching_equals_one_at_a_time(tiny, direction):
    one = patch(tiny, CLEAN, CORRUPTED, "x", "y", direction=direction, what=KINDS, batch=1)
    for batch in (7, 200):  # ragged chunks, and a whole grid in one pass
        batched = patch(tiny, CLEAN, CORRUPTED, "x", "y", direction=direction, what=KINDS, batch=batch)
        for kind in KINDS:
            want = np.asarray(one.grids[kind])
            assert np.nanmax(np.abs(want)) > 1e-2  # the patches do something
            np.testing.assert_allclose(batched.grids[kind], want, atol=1e-5, rtol=0)
            np.testing.assert_allclose(batched.logit_diffs[kind], one.logit_diffs[kind], atol=1e-5, rtol=0)


def test_whole_clean_input_patched_in_gives_exactly_one(tiny):
    """Layer 0's input at every position is the whole clean embedding: the patched run is the clean run."""
    model, tok = tiny.model, tiny.tokenizer
    result = patch(tiny, CLEAN, CORRUPTED, "x", "y", what=("resid",))
    (clean_ids, (a,)), (corrupted_ids, (w,)) = encode_request(tok, CLEAN, "x"), encode_request(tok, CORRUPTED, "y")
    clean, corrupted = torch.tensor([clean_ids]), torch.tensor([corrupted_ids])
    _, source = record(model, clean, ("resid",))
    whole = [Patch("resid", 0, t) for t in range(clean.shape[1])]
    ld = run_patches(model, corrupted, source, [whole, []], a, w)
    assert float(ld[0]) == pytest.approx(result.logit_diff_clean, abs=1e-5)
    assert float(ld[1]) == pytest.approx(result.logit_diff_corrupted, abs=1e-5)  # an empty row runs untouched
    normalized = (float(ld[0]) - result.logit_diff_corrupted) / (result.logit_diff_clean - result.logit_diff_corrupted)
    assert normalized == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("direction,untouched", [("denoise", 0.0), ("noise", 1.0)])
def test_states_before_the_change_score_the_unpatched_run(tiny, direction, untouched):
    """Before the first changed token both runs have the same states (causal attention), so patching them
    leaves the target run as it is: 0 when denoising (the corrupted run), 1 when noising (the clean run). The
    last layer's input at the last position decides the prediction in a 2-layer model only through its MLP
    and attention, so it is no endpoint; the changed position is, at layer 0, the only difference there is."""
    result = patch(tiny, CLEAN, CORRUPTED, "x", "y", direction=direction, what=("resid", "attn", "mlp"))
    first = result.changed[0]
    assert result.tokens[first] == "S" and result.changed == [15, 16, 18, 19]  # Sp(a)in, It(a)ly
    for kind in ("resid", "attn", "mlp"):
        grid = np.asarray(result.grids[kind])
        np.testing.assert_allclose(grid[:, :first], untouched, atol=1e-5)
        assert np.abs(grid[:, first:] - untouched).max() > 1e-3


def test_patching_errors(tiny_llama):
    with pytest.raises(MindsetError, match="same length"):
        patch(tiny_llama, "The capital of France is", CORRUPTED, "x", "y")
    with pytest.raises(MindsetError, match="same tokens"):
        patch(tiny_llama, CLEAN, CLEAN, "x", "y")
    with pytest.raises(MindsetError, match="same token"):
        patch(tiny_llama, CLEAN, CORRUPTED, " Madrid", " Rome")  # byte-level: both begin with ' '
    with pytest.raises(MindsetError, match="unknown patching state"):
        patch(tiny_llama, CLEAN, CORRUPTED, "x", "y", what=("residual",))
    with pytest.raises(MindsetError, match="unknown direction"):
        patch(tiny_llama, CLEAN, CORRUPTED, "x", "y", direction="restore")
    with pytest.raises(MindsetError, match="batch must be"):
        patch(tiny_llama, CLEAN, CORRUPTED, "x", "y", batch=0)


def test_result_saves_and_describes(tiny_gpt2, tmp_path):
    result = patch(tiny_gpt2, CLEAN, CORRUPTED, "x", "y", what=("resid", "heads"))
    paths = result.save(tmp_path / "p")
    data = json.loads(paths["json"].read_text())
    assert np.asarray(data["grids"]["resid"]).shape == (2, len(CLEAN)) and np.asarray(data["grids"]["heads"]).shape == (2, 4)
    assert paths["png"].stat().st_size > 1000
    text = result.describe()
    assert "resid:" in text and "heads: L" in text


def test_cli_patch(cli, tmp_path):
    out = tmp_path / "patch"
    code, stdout, err = cli("circuits", "patch", "tiny-llama", "--clean", CLEAN, "--corrupted", CORRUPTED, "--answer", "x", "--wrong", "y",
                            "--what", "resid,mlp", "-o", str(out))
    assert code == 0, err
    data = json.loads((out / "patch.json").read_text())
    assert set(data["grids"]) == {"resid", "mlp"} and data["direction"] == "denoise"
    assert (out / "patch.png").is_file()
    code, stdout, err = cli("circuits", "patch", "tiny-llama", "--clean", "The capital of France is", "--corrupted", CORRUPTED,
                            "--answer", "x", "--wrong", "y", "-o", str(tmp_path / "bad"))
    assert code == 2 and "same length" in err
    code, stdout, err = cli("circuits", "patch", "tiny-llama", "--clean", CLEAN, "--corrupted", CORRUPTED, "--answer", "x", "--wrong", "y",
                            "--direction", "sideways")
    assert code == 2 and "direction" in err


def test_recipe_step(tmp_path, monkeypatch):
    from mindset.recipes.runner import run_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: patch\nmodel: tiny-gpt2\nsteps:\n"
        f"  - circuits_patch: {{clean: '{CLEAN}', corrupted: '{CORRUPTED}', answer: x, wrong: y, direction: noise, what: [heads]}}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = run_recipe(recipe, progress=False)
    report = (result.run_dir / "report.md").read_text()
    assert "Activation patching (noise)" in report and "circuits/patch-noise/patch.png" in report
    assert (result.run_dir / "circuits" / "patch-noise" / "patch.png").is_file()
    assert "heads: L" in report


@pytest.mark.slow
def test_smollm2_france_italy_signal_sits_on_the_subject_early(smollm2):
    """Denoising France→Italy on SmolLM2: in the early and middle layers the residual stream carries the
    answer at the subject's position (clean states elsewhere restore little), and the full clean run scores 1."""
    result = patch(smollm2, "The capital of France is", "The capital of Italy is", " Paris", " Rome", what=("resid",), batch=64)
    assert result.logit_diff_clean > 0 > result.logit_diff_corrupted
    grid = np.asarray(result.grids["resid"])
    subject = result.changed
    assert len(subject) == 1 and result.tokens[subject[0]] == " France"
    for layer in range(result.n_layers // 2):
        assert int(np.argmax(grid[layer])) == subject[0], (layer, grid[layer].round(2))
        assert grid[layer, subject[0]] > 0.5
    assert grid[-1, -1] > 0.5  # by the last layer the answer has moved to the last position
