"""mindset against lm-eval itself, on the same HF folders and task files (lm-eval is in the test extra)."""

import pytest

pytest.importorskip("lm_eval")

from mindset.evaluate.peer import peer_check  # noqa: E402
from mindset.evaluate.suites import write_suites  # noqa: E402
from mindset.models import load, save  # noqa: E402

pytestmark = pytest.mark.slow  # lm-eval's own runs take tens of seconds


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    return write_suites(["capitals", "arithmetic", "canaries"], tmp_path_factory.mktemp("suites"), n_test=20)


def test_tiny_model_scores_equal_lm_evals(tmp_path, suites):
    folder = save(load("tiny-llama", device="cpu", dtype="float32"), tmp_path / "tiny")
    reports = peer_check(folder, suites, limit=4)
    assert len(reports) == 8
    for report in reports:
        assert report.ok, (report.task, report.problems[:3])
        assert report.loglikelihoods or report.generations
        assert report.lm_eval and report.lm_eval.keys() == report.mindset.keys()


def test_smollm2_scores_equal_lm_evals(smollm2, suites):
    folder = smollm2.source.weights  # the HF folder mindset caches the GGUF into
    # one task per kind of scoring: multiple choice (one- and multi-token choices), generation with
    # GSM8K's two filters, mc2; benchmarks/peer_check.py runs every task on more documents
    chosen = [p for p in suites if p.stem in ("capitals", "arithmetic", "negation")]
    reports = peer_check(folder, chosen, limit=3)
    for report in reports:
        assert report.ok, (report.task, report.problems[:3])
    assert max(r.max_ll_diff for r in reports) < 1e-4


def test_lm_eval_runs_mindset_models_through_the_adapter(tmp_path, suites):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from mindset.evaluate.lm_eval_adapter import MindsetLM
    from mindset.evaluate.peer import run_lm_eval

    folder = save(load("tiny-gpt2", device="cpu", dtype="float32"), tmp_path / "tiny")
    chosen = [p for p in suites if p.stem in ("capitals", "copying")]
    manager = TaskManager(include_path=[str(chosen[0].parent.parent)], include_defaults=False)
    ours = lm_eval.simple_evaluate(model=MindsetLM.from_spec(str(folder)), tasks=["mindset_capitals", "mindset_copying"], task_manager=manager, limit=4, log_samples=True)
    hf = run_lm_eval(folder, chosen, limit=4)
    for task in ("mindset_capitals", "mindset_copying"):
        for a, b in zip(ours["samples"][task], hf["samples"][task]):
            assert a["arguments"] == b["arguments"]
            for ra, rb in zip(a["resps"], b["resps"]):
                assert ra[0][0] == pytest.approx(rb[0][0], abs=1e-4) if isinstance(ra[0], tuple) else ra == rb
        assert ours["results"][task] == hf["results"][task]
