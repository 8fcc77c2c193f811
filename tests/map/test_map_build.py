"""Building maps end to end on tiny models: sources, correctness from evaluate, the files, compare, the CLI."""

import json

import numpy as np
import pytest
from map_helpers import read_page_data

from mindset.errors import MindsetError
from mindset.map.build import MapSettings, build_map
from mindset.map.sources import load_items, read_file_items


def test_jsonl_and_txt_items(tmp_path, labelled_jsonl):
    items = read_file_items(labelled_jsonl)
    assert len(items) == 18
    assert items[0].prompt == "apples are red" and items[0].completion == " ok" and items[0].text == "apples are red ok"
    assert items[0].labels == {"source": "items.jsonl", "topic": "fruit", "n": "0"}
    txt = tmp_path / "lines.txt"
    txt.write_text("first line\n\n  \nsecond line\n")
    assert [i.prompt for i in read_file_items(txt)] == ["first line", "second line"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "a"}\nnot json\n', r"bad.jsonl:2: not a JSON object"),
        ('["a list"]\n', r"bad.jsonl:1: each line must be a JSON object"),
        ('{"label": 1}\n', r"bad.jsonl:1: needs a non-empty string 'text' or 'prompt'"),
        ('{"prompt": "a", "completion": 3}\n', r"'completion' must be a string"),
    ],
)
def test_bad_jsonl_lines_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(MindsetError, match=message):
        read_file_items(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(MindsetError, match="no such data file"):
        read_file_items(tmp_path / "nope.jsonl")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MindsetError, match="is not UTF-8"):
        read_file_items(tmp_path / "bin.txt")


def test_suite_items_carry_evaluate_s_own_scores(tiny_llama, tmp_path):
    from mindset.evaluate.evaluation import evaluate_model, resolve_tasks

    items = load_items(tiny_llama, ["capitals", "copying"], tmp_path, limit=5)
    run = evaluate_model(tiny_llama, resolve_tasks(["capitals", "copying"], tmp_path / "tasks"), limit=5)
    expected = [s["scores"][next(iter(t.metrics))] for t in run.tasks for s in t.samples]
    assert [i.labels["correct"] for i in items] == ["yes" if s == 1.0 else "no" for s in expected]
    capital = items[0]
    assert capital.prompt.startswith("Question: What is the capital of ") and capital.prompt.endswith("Answer:")
    assert capital.completion == " " + capital.labels["answer"] and not capital.generated
    copying = [i for i in items if i.labels["task"] == "copying"]
    assert len(copying) == 5 and all(i.generated and i.labels["split"] == "test" for i in copying)
    assert copying[0].completion == run.tasks[1].samples[0]["generation"]


def test_train_split_and_unknown_names(tiny_llama, tmp_path):
    items = load_items(tiny_llama, ["capitals"], tmp_path, limit=3, splits=("test", "train"))
    assert [i.labels["split"] for i in items] == ["test"] * 3 + ["train"] * 3
    assert len({i.key for i in items}) == 6
    with pytest.raises(MindsetError, match="unknown task or suite 'capital'; did you mean 'capitals'"):
        load_items(tiny_llama, ["capital"], tmp_path)
    with pytest.raises(MindsetError, match="unknown split 'valid'"):
        load_items(tiny_llama, ["capitals"], tmp_path, splits=("valid",))


def test_build_writes_the_page_the_parquet_and_the_layout(tiny_llama, tmp_path, map_home, labelled_jsonl):
    import pandas as pd

    out = tmp_path / "map"
    summary = build_map(tiny_llama, out, MapSettings(data=[str(labelled_jsonl)], method="pca"), progress=False)
    assert summary["points"] == 18 and summary["method"] == "pca" and summary["encoded_now"] == [18]
    for name in ("index.html", "map.js", "map.css", "data.js", "vendor/regl-scatterplot.js", "vendor/LICENSES.txt", "points.parquet", "layout.safetensors", "map.json"):
        assert (out / name).is_file(), name
    page = read_page_data(out)
    assert len(page["x"]) == 18 and max(map(abs, page["x"] + page["y"])) <= 1.0
    assert page["labels"]["topic"]["values"] == ["code", "fruit", "numbers"]
    frame = pd.read_parquet(out / "points.parquet")
    assert list(frame.columns[:7]) == ["x", "y", "text", "prompt", "completion", "model", "key"]
    assert frame["text"][0] == "apples are red ok" and set(frame["topic"]) == {"fruit", "numbers", "code"}
    assert (frame["model"] == "tiny-llama").all()
    again = build_map(tiny_llama, out, MapSettings(data=[str(labelled_jsonl)], method="pca"), progress=False)
    assert again["encoded_now"] == [0]  # everything came from the cache
    np.testing.assert_allclose(read_page_data(out)["x"], page["x"])


def test_generation_paths_end_at_their_point(tiny_llama, tmp_path, map_home):
    out = tmp_path / "map"
    summary = build_map(tiny_llama, out, MapSettings(data=["copying", "capitals"], limit=4, method="pca", paths=3), progress=False)
    page = read_page_data(out)
    assert summary["paths"] == 3 and len(page["paths"]) == 3
    for point, path in page["paths"].items():
        assert len(path) >= 2
        np.testing.assert_allclose(path[-1], [page["x"][int(point)], page["y"][int(point)]], atol=1e-4)
        assert page["labels"]["task"]["values"][page["labels"]["task"]["codes"][int(point)]] == "copying"


def test_compare_two_checkpoints(tiny_llama, tmp_path, map_home):
    from mindset.models import load

    other = load("tiny-llama@1", device="cpu", dtype="float32")
    out = tmp_path / "cmp"
    summary = build_map(tiny_llama, out, MapSettings(data=["capitals"], limit=6, method="pca"), compare=other, progress=False)
    assert summary["points"] == 12 and summary["models"] == ["tiny-llama", "tiny-llama@1"]
    page = read_page_data(out)
    assert page["pairs"] == [[i, 6 + i] for i in range(6)]
    assert page["model"] == [0] * 6 + [1] * 6 and page["item"] == list(range(6)) * 2
    cosines = [m["cosine"] for m in page["moved"]]
    assert cosines == sorted(cosines, reverse=True) and cosines[0] > 0
    changes = page["labels"]["change"]
    assert set(changes["values"]) <= {"fixed", "broken", "still right", "still wrong"}
    assert "Items that moved most" in (out / "compare.md").read_text()


def test_compare_a_model_with_itself_moves_nothing(tiny_llama, tmp_path, map_home):
    from mindset.models import load

    same = load("tiny-llama", device="cpu", dtype="float32")
    build_map(tiny_llama, tmp_path / "m", MapSettings(data=["capitals"], limit=4, method="pca"), compare=same, progress=False)
    page = read_page_data(tmp_path / "m")
    assert all(abs(m["cosine"]) < 1e-5 and m["arrow"] < 1e-4 for m in page["moved"])
    assert page["labels"]["change"]["values"][0] in ("still right", "still wrong")


def test_cli_builds_a_map_and_explains_bad_input(cli, tmp_path, map_home, labelled_jsonl):
    out = tmp_path / "cli-map"
    code, stdout, stderr = cli("map", "tiny-llama", "--data", str(labelled_jsonl), "-o", str(out), "--method", "pca")
    assert code == 0, stderr
    assert "18 points" in stdout and (out / "index.html").exists()
    assert json.loads((out / "map.json").read_text())["settings"]["method"] == "pca"
    fresh = str(tmp_path / "fresh")  # OUT holds a map now, which only --overwrite replaces
    cases = [
        (["map", "tiny-llama", "-o", fresh], "--data is required"),
        (["map", "tiny-llama", "--data", "capitols", "-o", fresh], "did you mean 'capitals'"),
        (["map", "tiny-llama", "--data", str(labelled_jsonl), "--layer", "9", "-o", fresh], "layer 9 does not exist"),
        (["map", "tiny-llama", "--data", str(labelled_jsonl), "--method", "tsne", "-o", fresh], "--method"),
        (["map", "tiny-llama", "--serve", "-o", str(tmp_path / "empty")], "holds no map to serve"),
        (["map", "tiny-llama", "--data", str(tmp_path / "missing.jsonl"), "-o", fresh], "no such data file"),
        (["map", "tiny-llama", "--data", str(labelled_jsonl), "-o", str(out)], "cli-map exists; choose another output path or pass --overwrite"),
    ]
    for args, message in cases:
        code, _, stderr = cli(*args)
        assert code == 2 and message in stderr, (args, stderr)
    assert not (tmp_path / "fresh").exists()
    code, _, stderr = cli("map", "tiny-llama", "--data", str(labelled_jsonl), "-o", str(out), "--method", "umap", "--overwrite")
    assert code == 0, stderr
    assert json.loads((out / "map.json").read_text())["settings"]["method"] == "umap"


def test_recipe_step_map(tmp_path, map_home, labelled_jsonl, monkeypatch):
    from mindset.recipes.runner import run_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: maprun\nmodel: tiny-llama\nsteps:\n  - map: {{data: ['{labelled_jsonl}'], method: pca}}\n")
    monkeypatch.chdir(tmp_path)
    run_recipe(recipe)
    run = tmp_path / "runs" / "maprun"
    assert (run / "map" / "index.html").exists() and (run / "map" / "points.parquet").exists()
    assert "## Map" in (run / "report.md").read_text()
    assert json.loads((run / "metrics.json").read_text())["map"]["points"] == 18


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_path_vertices_are_rows_of_the_fitted_layout(tiny_llama, tmp_path, map_home, method):
    """Each vertex of a generation path is a position the layout itself fitted (not a state dropped in later by
    its nearest neighbours, which drew straight lines across the map), and the path ends at its item's point."""
    from mindset.map.layout import Layout
    from mindset.map.site import to_frame

    out = tmp_path / "map"
    summary = build_map(tiny_llama, out, MapSettings(data=["copying", "capitals"], limit=4, method=method, paths=3), progress=False)
    page, layout = read_page_data(out), Layout.load(out)
    rows = layout.settings["path_rows"]
    assert summary["points"] == 8 and sorted(rows) == sorted(page["paths"]) and len(rows) == 3
    assert len(layout.coords) == 8 + summary["path_states"] and summary["path_states"] == sum(b - a for a, b in rows.values())
    fitted = to_frame(layout.coords, layout.settings["frame"])
    for point, path in page["paths"].items():
        a, b = rows[point]
        assert len(path) == b - a + 1 >= 2
        np.testing.assert_allclose(path[:-1], fitted[a:b], atol=1e-4)
        np.testing.assert_allclose(path[-1], fitted[int(point)], atol=1e-4)
    assert max(abs(v) for path in page["paths"].values() for xy in path for v in xy) <= 1.0  # paths inside the frame too


@pytest.mark.parametrize("missing", ["chromedriver", "selenium"])
def test_screenshot_prerequisites_are_checked_before_the_model_loads(cli, tmp_path, monkeypatch, missing):
    import sys

    import mindset.map.browser
    import mindset.models

    loads = []
    monkeypatch.setattr(mindset.models, "load", lambda *a, **k: loads.append(a) or pytest.fail("the model was loaded first"))
    if missing == "chromedriver":
        monkeypatch.setattr(mindset.map.browser, "CHROMEDRIVER", tmp_path / "no-chromedriver")
    else:
        monkeypatch.setitem(sys.modules, "selenium", None)  # import selenium raises ImportError
    code, _, stderr = cli("map", "smollm2-135m", "--data", "capitals", "--screenshot", "-o", str(tmp_path / "m"))
    assert code == 2 and loads == []
    assert ("chromium-driver" if missing == "chromedriver" else "need selenium") in stderr and "Traceback" not in stderr
