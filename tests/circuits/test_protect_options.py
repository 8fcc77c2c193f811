"""Protected training from options: `mindset distill --protect-*` and the recipe step's `protect:`."""

import json
import warnings

import pytest

from mindset.circuits import ProtectOptions, protection_from_options
from mindset.errors import MindsetError

TINY_RUN = ["tiny-llama", "--teacher", "tiny-llama", "--steps", "4", "--batch-size", "2", "--seq-len", "16",
            "--max-train-tokens", "2000", "--warmup-steps", "0"]


def test_cli_distill_with_protection_writes_its_checks(cli, tmp_path):
    code, out, err = cli("distill", *TINY_RUN, "-o", str(tmp_path / "distill"), "--protect-suite", "capitals", "--protect-suite", "ordering",
                         "--protect-limit", "3", "--protect-check-every", "2", "--protect-threshold", "-1000", "--protect-lr-scale", "0.5")
    assert code == 0, err
    data = json.loads((tmp_path / "distill" / "protection.json").read_text())
    # threshold -1000: every mapped block (attn and mlp of both layers, the default granularities) is protected at x0.5
    assert sorted(data["protected"]) == ["L0.attn", "L0.mlp", "L1.attn", "L1.mlp"]
    assert data["scales"] == {"L0.attn": 0.5, "L0.mlp": 0.5, "L1.attn": 0.5, "L1.mlp": 0.5, "rest": 1.0}
    assert [h["step"] for h in data["history"]] == [0, 2, 4]
    assert data["history"][0]["event"] == "baseline" and set(data["history"][0]["accuracy"]) == {"capitals", "ordering"}
    assert (tmp_path / "distill" / "canaries.png").read_bytes()[:4] == b"\x89PNG"
    assert "Protected components (4 of 5 units)" in out and "at chance" not in out
    assert "not above chance" in err  # the random model knows no capitals: warned, not refused


def test_cli_distill_without_protection_is_unchanged(cli, tmp_path):
    code, out, err = cli("distill", *TINY_RUN, "-o", str(tmp_path / "distill"))
    assert code == 0, err
    assert not (tmp_path / "distill" / "protection.json").exists() and "Protected" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--protect-suite", "no_such_suite"], "unknown task or suite 'no_such_suite'"),
        (["--protect-suite", "capitals", "--protect-granularity", "neuron"], "--protect-granularity"),
        (["--protect-suite", "capitals", "--protect-lr-scale", "2"], "--protect-lr-scale: Input should be less than or equal to 1"),
        (["--protect-threshold", "0.5"], "--protect-threshold needs --protect-suite"),
        (["--protect-suite", "capitals", "--trainable", "*mlp*", "--protect-threshold", "-1000", "--protect-limit", "2"],
         "L0.attn, L1.attn, whose parameters are not trainable"),
    ],
)
def test_cli_protection_errors(cli, tmp_path, args, message):
    code, out, err = cli("distill", *TINY_RUN, "-o", str(tmp_path / "distill"), *args)
    assert code == 2, (out, err)
    assert message in " ".join(err.split()), err


def test_unknown_suite_fails_before_any_mapping(tiny_llama):
    with pytest.raises(MindsetError, match="unknown task or suite 'capitols'"):
        protection_from_options(tiny_llama, ProtectOptions(suites=["capitals", "capitols"], limit=2))


def _recipe(tmp_path, protect: str):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: guarded\nmodel: tiny-llama\nsteps:\n"
        "  - distill:\n      name: guarded\n      steps: 6\n      batch_size: 2\n      seq_len: 16\n      max_train_tokens: 2000\n"
        "      warmup_steps: 0\n      lr: 0.05\n      checkpoint_every: 100\n"
        f"      protect:\n{protect}"
    )
    return recipe


def test_recipe_step_with_protect(tmp_path, monkeypatch):
    from mindset.recipes.runner import run_recipe

    # max_drop 0 and a high LR: any canary dip rolls back, so the report shows rollbacks
    recipe = _recipe(tmp_path, "        suites: [capitals]\n        granularity: [mlp]\n        limit: 8\n        check_every: 1\n"
                               "        max_drop: 0\n        threshold: -1000\n        chance_rollback: true\n")  # a tiny model is at chance
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_recipe(recipe, progress=False)
    step = next(v for k, v in json.loads((result.run_dir / "metrics.json").read_text()).items() if k != "run")
    protection = json.loads((result.run_dir / "guarded" / "protection.json").read_text())
    report = (result.run_dir / "report.md").read_text()
    assert protection["protected"] == ["L0.mlp", "L1.mlp"] and len(protection["history"]) == 7
    assert protection["events"], "max_drop 0 at lr 0.05 should have rolled back at least once"
    assert "## Protected training" in report and "### Protected components" in report and "### Rollbacks" in report
    assert "| L0.mlp | L0.mlp: log-prob drop" in report
    assert "![canary accuracy](guarded/canaries.png)" in report and (result.run_dir / "guarded" / "canaries.png").is_file()
    assert step["protection"]["rollbacks"] == len(protection["events"]) and step["protection"]["protected"] == ["L0.mlp", "L1.mlp"]


def test_recipe_protect_unknown_key_names_file_and_line(tmp_path, monkeypatch):
    from mindset.recipes.runner import run_recipe

    recipe = _recipe(tmp_path, "        suites: [capitals]\n        treshold: 0.2\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MindsetError, match=r"r.yaml:15: steps\[0\].distill.protect: unknown field 'treshold' \(did you mean 'threshold'\?\)"):
        run_recipe(recipe, progress=False)
    with pytest.raises(MindsetError, match=r"r.yaml:14: steps\[0\].distill.protect.suites: .*at least 1 item"):
        run_recipe(_recipe(tmp_path, "        suites: []\n"), progress=False)


def test_recipe_protect_unknown_suite(tmp_path, monkeypatch):
    from mindset.recipes.runner import run_recipe

    monkeypatch.chdir(tmp_path)
    with pytest.raises(MindsetError, match="unknown task or suite 'capitols'"):
        run_recipe(_recipe(tmp_path, "        suites: [capitols]\n"), progress=False)


def test_cli_help_states_the_config_defaults():
    """The --protect-* options default to None (so ProtectOptions' defaults apply); their help repeats those defaults."""
    import inspect
    import re

    from mindset.circuits.protect_options import CLI_OPTIONS
    from mindset.cli.train import distill

    stated = {}
    for param in inspect.signature(distill).parameters.values():
        match = re.search(r"\(default ([-0-9.e]+)\)", param.default.help or "")
        if match:
            stated[param.default.param_decls[0]] = float(match.group(1))
    numeric = [f for f, info in ProtectOptions.model_fields.items() if type(info.default) in (int, float)]  # every one is an option now
    assert {"threshold", "lr_scale", "l2", "check_every", "max_drop", "limit"} <= set(numeric)
    expected = {CLI_OPTIONS[f]: ProtectOptions.model_fields[f].default for f in numeric}
    assert stated == expected
