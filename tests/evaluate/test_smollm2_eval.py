import pytest

from mindset.evaluate.evaluation import evaluate_model, resolve_tasks


@pytest.mark.slow
def test_smollm2_knows_capitals_well_above_chance(smollm2, tmp_path):
    run = evaluate_model(smollm2, resolve_tasks("capitals", tmp_path), limit=12)
    (result,) = run.tasks
    assert result.chance["acc"] == 0.25
    assert result.metrics["acc"]["value"] >= 0.8  # 0.975 on the first 40 test countries; 12 of 12 here
