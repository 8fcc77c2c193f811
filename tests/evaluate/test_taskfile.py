import json
import random
import textwrap

import pytest

from mindset.errors import MindsetError
from mindset.evaluate.runner import evaluate_task
from mindset.evaluate.taskfile import load_task
from mindset.evaluate.tasks import Task

DOCS = [{"q": f"What is {i} plus 1?", "options": [str(i + 1), str(i + 2), str(i)], "gold": 0} for i in range(8)]


def write(tmp_path, body: str, docs=DOCS, name="task.yaml", train=None, change: str = ""):
    """The task file `body`, with the keys in `change` replacing (or joining) its own."""
    if change:
        key = change.split(":")[0]
        body = "".join(line for line in body.splitlines(keepends=True) if not line.startswith(key + ":")) + change + "\n"
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "train.json").write_text(json.dumps(train if train is not None else DOCS[:5]))
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


BASE = """\
task: plus_one
dataset_path: json
dataset_kwargs: {data_files: {test: test.jsonl, train: train.json}}
test_split: test
fewshot_split: train
output_type: multiple_choice
doc_to_text: "Q: {{q}}\\nA:"
doc_to_choice: "{{options}}"
doc_to_target: gold
"""


def test_reads_lm_eval_yaml_with_include_and_function_tags(tmp_path):
    write(tmp_path, BASE, name="base.yaml")
    (tmp_path / "helpers.py").write_text("def shout(doc):\n    return doc['q'].upper() + '\\nA:'\n")
    path = write(tmp_path, "include: base.yaml\ntask: plus_one_loud\ndoc_to_text: !function helpers.shout\ntarget_delimiter: '  '\n")
    spec = load_task(path)
    assert spec.task == "plus_one_loud" and spec.output_type == "multiple_choice" and spec.target_delimiter == "  "
    task = Task(spec)
    assert task.contexts(limit=1) == ["WHAT IS 0 PLUS 1?\nA:"]
    assert [m.metric for m in spec.metrics] == ["acc", "acc_norm"]  # lm-eval's defaults for multiple_choice


def test_fewshot_prompts_are_drawn_like_lm_evals_sampler(tmp_path):
    spec = load_task(write(tmp_path, BASE + "num_fewshot: 2\ndescription: \"Arithmetic.\\n\\n\"\n"))
    task = Task(spec)
    rnd = random.Random(1234)
    expected = []
    for doc in DOCS[:3]:
        shots = rnd.sample(DOCS[:5], 2)  # the few-shot split is not the test split: nothing to leave out
        text = "".join(f"Q: {s['q']}\nA: {s['options'][s['gold']]}\n\n" for s in shots)
        expected.append("Arithmetic.\n\n" + text + f"Q: {doc['q']}\nA:")
    assert task.contexts(limit=3) == expected


def test_scores_a_users_task_file(tmp_path, tiny_llama):
    result = evaluate_task(tiny_llama, Task(load_task(write(tmp_path, BASE))), limit=4)
    assert result.n == 4 and set(result.metrics) == {"acc", "acc_norm"}
    assert all(len(s["loglikelihoods"]) == 3 for s in result.samples)


@pytest.mark.parametrize(
    "change, docs, match",
    [
        ('doc_to_text: "Q: {{question}}"', DOCS, r"doc_to_text fails on document 0 .*'question' is undefined"),
        ("doc_to_target: 5", DOCS, "target index 5 of document 0 of split 'test' is out of range: it has 3 choices"),
        ("", [], "split 'test' has no documents"),
        ("doc_to_choice: null", DOCS, "needs doc_to_choice"),
        ("doc_to_choice: '{{q}}'", DOCS, "doc_to_choice must give a list"),
        ("process_docs: !function helpers.go", DOCS, "process_docs .* is not supported"),
        ("num_fewshtt: 3", DOCS, "unknown field 'num_fewshtt' \\(did you mean 'num_fewshot'\\?\\)"),
        ("dataset_path: hellaswag", DOCS, "dataset_path"),
        ("dataset_kwargs: {data_files: {test: missing.jsonl}}", DOCS, "data file 'missing.jsonl' not found"),
        ("num_fewshot: 9", DOCS, "9-shot prompts need 9 few-shot documents; the pool has 5"),
    ],
)
def test_bad_task_files_give_one_clear_error(tmp_path, change, docs, match):
    path = write(tmp_path, BASE, docs=docs, change=change)
    with pytest.raises(MindsetError, match=match):
        Task(load_task(path)).check()


def test_a_document_missing_a_field_names_the_document(tmp_path):
    docs = DOCS[:3] + [{"options": ["1", "2"], "gold": 0}]
    with pytest.raises(MindsetError, match="document 3 of split 'test'"):
        Task(load_task(write(tmp_path, BASE, docs=docs))).check()


def test_invalid_json_and_missing_files(tmp_path):
    path = write(tmp_path, BASE)
    (tmp_path / "test.jsonl").write_text('{"q": 1}\n{oops\n')
    with pytest.raises(MindsetError, match=r"test.jsonl:2: invalid JSON"):
        Task(load_task(path))
    with pytest.raises(MindsetError, match="no such task file"):
        load_task(tmp_path / "nope.yaml")


MC2 = """\
task: truthy
dataset_path: json
dataset_kwargs: {data_files: {validation: mc2.jsonl}}
validation_split: validation
output_type: multiple_choice
doc_to_text: "Q: {{question}}\\nA:"
doc_to_choice: "{{mc2_targets.choices}}"
doc_to_target: 0
process_results: !function utils.process_results_mc2
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def test_truthfulqa_style_mc2_runs_natively_without_the_utils_module(tmp_path, tiny_llama):
    import math

    docs = [{"question": "Is 3 odd?", "mc2_targets": {"choices": ["Yes.", "It is.", "No."], "labels": [1, 1, 0]}}]
    (tmp_path / "mc2.jsonl").write_text(json.dumps(docs[0]) + "\n")
    (tmp_path / "utils.py").write_text("import lm_eval_is_not_needed_here\n")  # would fail if imported
    (tmp_path / "task.yaml").write_text(MC2)
    result = evaluate_task(tiny_llama, Task(load_task(tmp_path / "task.yaml")))
    lls = result.samples[0]["loglikelihoods"]
    probs = [math.exp(x) for x in lls]
    assert result.metrics["acc"]["value"] == pytest.approx((probs[0] + probs[1]) / sum(probs))


def test_other_process_results_functions_are_imported_and_called(tmp_path, tiny_llama):
    (tmp_path / "scoring.py").write_text("def first_is_best(doc, results):\n    return {'acc': float(results[0][0] == max(r[0] for r in results))}\n")
    path = write(tmp_path, BASE + "process_results: !function scoring.first_is_best\nmetric_list: [{metric: acc}]\n")
    result = evaluate_task(tiny_llama, Task(load_task(path)), limit=3)
    assert [s["scores"]["acc"] for s in result.samples] == [float(s["loglikelihoods"][0] == max(s["loglikelihoods"])) for s in result.samples]
