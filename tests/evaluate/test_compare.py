import json
import math

import pytest

from mindset.evaluate.compare import comparison, delta, table
from mindset.evaluate.metrics import mean_and_stderr


def task(scores, docs_hash="h"):
    value, stderr = mean_and_stderr(scores)
    return {"n": len(scores), "metrics": {"acc": {"value": value, "stderr": stderr}}, "doc_scores": {"acc": scores}, "docs_hash": docs_hash, "chance": {"acc": 0.25}}


def test_delta_is_paired_when_both_runs_scored_the_same_documents():
    base = task([0.0] * 40 + [1.0] * 60)
    better = task([1.0] * 10 + [0.0] * 30 + [1.0] * 60)  # 10 more right, none lost
    d = delta(base, better, "acc")
    assert d["paired"] and d["delta"] == pytest.approx(0.1)
    assert d["stderr"] == pytest.approx(mean_and_stderr([1.0] * 10 + [0.0] * 90)[1])
    assert d["significant"] == "**"  # z = 0.1 / 0.030 = 3.3
    unpaired = delta(base, task(better["doc_scores"]["acc"], docs_hash="other"), "acc")
    assert not unpaired["paired"]
    assert unpaired["stderr"] == pytest.approx(math.hypot(base["metrics"]["acc"]["stderr"], better["metrics"]["acc"]["stderr"]))
    assert unpaired["significant"] == ""  # z = 0.1 / 0.069: not significant without pairing


def test_table_has_models_as_columns_and_a_delta_column_per_later_model():
    runs = [
        {"label": "base", "model": "m", "tasks": {"capitals": task([1.0, 0.0, 1.0, 1.0])}},
        {"label": "pruned", "model": "m", "tasks": {"capitals": task([1.0, 0.0, 0.0, 1.0]), "mindset_negation": task([0.5, 0.7])}},
    ]
    data = comparison(runs)
    headers, rows = table(data)
    assert headers == ["task", "metric", "chance", "n", "base", "pruned", "Δ pruned"]
    assert rows[0][:4] == ["capitals", "acc", "0.25", "4"] and rows[0][6].startswith("-0.250 ± ")
    assert rows[1][0] == "negation" and rows[1][4] == "—"  # the first run lacks the task
    json.dumps(data)  # the JSON twin is plain data
