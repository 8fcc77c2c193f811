"""The command line as a user meets it: output, exit codes, and one-line errors for bad input."""

import subprocess
import sys

import pytest


def test_inspect_prints_the_tables(cli):
    code, out, _ = cli("inspect", "tiny-gpt2")
    assert code == 0
    assert "Architecture" in out and "Parameters by component" in out and "gpt2" in out


def test_chat_prompt_greedy_is_deterministic(cli):
    first = cli("chat", "tiny-llama", "--prompt", "Hello", "--temperature", "0", "--max-new-tokens", "12")
    second = cli("chat", "tiny-llama", "--prompt", "Hello", "--temperature", "0", "--max-new-tokens", "12")
    assert first[0] == 0 and first[1] == second[1] and first[1].endswith("\n")


def test_chat_reads_the_prompt_from_stdin(cli):
    code, out, _ = cli("chat", "tiny-llama", "-p", "-", "--temperature", "0", "--max-new-tokens", "4", stdin="Hello")
    assert code == 0 and out


def test_interactive_chat_takes_turns_until_exit(cli):
    code, out, _ = cli("chat", "tiny-llama", "--max-new-tokens", "4", stdin="Hello\n/reset\nAgain\n/exit\n")
    assert code == 0
    assert out.count("bot ›") == 2 and "conversation forgotten" in out


def test_ppl_command(cli):
    code, out, _ = cli("ppl", "tiny-llama", "--max-tokens", "200", "--context", "64")
    assert code == 0 and "perplexity" in out and "199 tokens" in out


def test_ppl_of_a_text_file(cli, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("It is a truth universally acknowledged. " * 5)
    code, out, _ = cli("ppl", "tiny-gpt2", "--text", str(path))
    assert code == 0 and str(path) in out


def test_run_command(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: clirun\nmodel: tiny-llama\nsteps:\n  - inspect\n  - generate: {prompts: [Hi], max_new_tokens: 3}\n")
    code, out, _ = cli("run", str(recipe), "-o", str(tmp_path / "runs" / "clirun"))
    assert code == 0 and (tmp_path / "runs" / "clirun" / "report.md").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["inspect", "/no/such/model"], "no such file or folder"),
        (["inspect", "smollm3"], "unknown model 'smollm3'; did you mean 'smollm2-135m'?"),
        (["chat", "tiny-llama", "--prompt", ""], "the prompt is empty"),
        (["chat", "tiny-llama", "--prompt", "x" * 300, "--raw"], "reads at most 256 tokens"),
        (["chat", "tiny-llama", "--prompt", "hi", "--temperature", "-1"], "--temperature: Input should be greater than or equal to 0"),
        (["ppl", "tiny-llama", "--text", "/no/file.txt"], "/no/file.txt: no such file"),
        (["ppl", "tiny-llama", "--split", "test"], "--split: Input should be 'train' or 'valid'"),
        (["run", "/no/recipe.yaml"], "/no/recipe.yaml: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2
    assert err.startswith("error: ") and message in " ".join(err.split())
    assert "Traceback" not in err + out


def test_bad_files_are_one_line_and_exit_code_2(cli, tmp_path):
    pickle = tmp_path / "model.bin"
    pickle.write_bytes(b"\x80\x04.")
    gguf = tmp_path / "bad.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 64)
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model: tiny-llama\nsteps:\n  - inspekt\n")
    for args, message in [
        (["inspect", str(pickle)], "never unpickles"),
        (["inspect", str(gguf)], "not a valid GGUF file"),
        (["run", str(recipe)], "bad.yaml:3: unknown recipe step 'inspekt'; did you mean 'inspect'?"),
    ]:
        code, _, err = cli(*args)
        assert code == 2 and message in " ".join(err.split()), err


def test_debug_shows_the_traceback(monkeypatch, capsys):
    from mindset import cli as cli_module
    from mindset.errors import MindsetError

    monkeypatch.setattr(sys, "argv", ["mindset", "--debug", "inspect", "/no/such/model"])
    with pytest.raises(MindsetError):
        cli_module.main()


def test_the_installed_command_exits_2_without_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "mindset", "inspect", "tiny-lama"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown model 'tiny-lama'; did you mean 'tiny-llama'?")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
