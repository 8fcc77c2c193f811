"""The ground floor every command shares: the existing-output rule and progress when stderr is not a terminal."""

import pytest

from mindset import progress
from mindset.errors import MindsetError
from mindset.fileio import check_output


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    assert check_output(tmp_path / "new") == tmp_path / "new"
    assert check_output(tmp_path) == tmp_path  # an empty folder holds nothing to lose
    (tmp_path / "file.gguf").write_text("x")
    with pytest.raises(MindsetError, match=r"file.gguf exists; choose another output path or pass --overwrite"):
        check_output(tmp_path / "file.gguf")
    with pytest.raises(MindsetError, match="pass --overwrite"):
        check_output(tmp_path)
    assert check_output(tmp_path, overwrite=True) == tmp_path


def test_plain_progress_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    assert list(progress.track(range(4), 4, "perplexity", unit="windows")) == [0, 1, 2, 3]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("perplexity: 1/4 windows (25%) ") and lines[0].endswith(" s")
    assert lines[-1].startswith("perplexity: 4/4 windows (100%) ")


def test_plain_progress_is_modest_and_short_work_is_quiet(capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 3600.0)
    assert list(progress.track(range(50), 50, "ablating", unit="components")) == list(range(50))
    assert capsys.readouterr().err == ""
    assert list(progress.track(range(3), 3, "off", enabled=False)) == [0, 1, 2]
    with progress.Progress(10, "encoding", unit="items") as bar:
        bar.advance(4)
        assert bar.line().startswith("encoding: 4/10 items (40%)")
    assert capsys.readouterr().err == ""


def test_ppl_reports_progress_in_a_pipe(cli, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    code, _, err = cli("ppl", "tiny-llama", "--max-tokens", "200", "--context", "64")
    assert code == 0 and "perplexity: 1/" in err and " windows (" in err


def test_distill_reports_steps_in_a_pipe(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    code, _, err = cli("distill", "tiny-llama@0", "--teacher", "tiny-llama@1", "-o", str(tmp_path / "distill"), "--steps", "3",
                       "--batch-size", "2", "--seq-len", "16", "--max-train-tokens", "2000", "--device", "cpu")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("distill: ")]
    assert [line.split(" (")[0] for line in lines] == ["distill: 1/3 steps", "distill: 2/3 steps", "distill: 3/3 steps"]
    assert ", loss " in lines[-1]


def test_map_reports_encoding_in_a_pipe(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    monkeypatch.setenv("MINDSET_HOME", str(tmp_path / "home"))
    code, _, err = cli("map", "tiny-llama", "--data", "counting", "--limit", "3", "--method", "pca", "-o", str(tmp_path / "map"))
    assert code == 0, err
    assert "encoding 3 items: 1/1 batches (100%)" in err and "\n\n" not in err
