"""One CLI vocabulary: every option has help, -o/--out is the only output spelling, the model comes first,
list options read `a,b` and repeats, and options come from the pydantic parameter models."""

import subprocess
import sys
from pathlib import Path
from typing import Literal, Optional

import pytest
import typer
from pydantic import BaseModel, Field
from typer.core import TyperArgument, TyperGroup
from typer.testing import CliRunner

from mindset.cli.common import run_folder, split_list
from mindset.errors import MindsetError

MODEL_PARAMS = {"model", "models", "student", "path"}  # the names a model spec (or a model folder) goes by
OLD_OUTPUT_SPELLINGS = {"--output", "--runs-dir", "--json", "--out-dir", "--output-dir"}


def all_commands() -> list[tuple[str, object]]:
    """('surgery ffn-to-memory', command) for every command and sub-command, built as `mindset` builds them."""
    from mindset.cli import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root)

    def walk(group: TyperGroup, prefix: str):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, TyperGroup):
                yield from walk(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    return [("mindset", root), *walk(root, "")]


@pytest.fixture(scope="module")
def commands():
    return all_commands()


def test_the_walk_sees_every_command(commands):
    names = {name for name, _ in commands}
    assert {"eval", "compare", "distill", "surgery ffn-to-memory", "circuits map", "memory stats", "map", "export"} <= names


def test_every_option_and_argument_has_help(commands):
    missing = [f"{name} {param.name}" for name, command in commands for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert not missing, f"no help text: {missing}"


def test_output_options_are_spelled_dash_o_dash_dash_out(commands):
    for name, command in commands:
        for param in command.params:
            spellings = set(param.opts) | set(param.secondary_opts)
            assert not spellings & OLD_OUTPUT_SPELLINGS, (name, param.opts)
            if "--out" in spellings or "-o" in spellings:
                assert sorted(param.opts) == ["--out", "-o"], (name, param.opts)
    writers = {name for name, command in commands if any("--out" in p.opts for p in command.params)}
    assert {"eval", "compare", "run", "distill", "export", "merge", "map", "inspect", "memory stats", "circuits map", "circuits trace",
            "surgery ffn-to-memory", "surgery memory-to-ffn", "surgery knn-lm"} <= writers


def test_the_model_spec_is_the_first_argument(commands):
    for name, command in commands:
        models = [p for p in command.params if isinstance(p, TyperArgument) and p.name in MODEL_PARAMS]
        options = [p.opts for p in command.params if not isinstance(p, TyperArgument) and p.name in MODEL_PARAMS - {"path"}]
        assert not options, f"{name}: the model is an option ({options})"
        if models:
            assert command.params[0] is models[0], f"{name}: the model spec is not the first parameter"
        assert not any(o in ("--model", "--student") for p in command.params for o in p.opts), name


def options_of(commands, name: str) -> set[str]:
    command = dict(commands)[name]
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}


def flags(model, *, prefix: str = "", skip=(), rename=None) -> set[str]:
    rename = rename or {}
    return {rename.get(f, f"--{prefix}{f.replace('_', '-')}") for f in model.model_fields if f not in skip}


def test_every_field_of_the_parameter_models_is_an_option(commands):
    """One source of truth: a field added to a parameter model is reachable from the CLI without editing it."""
    from mindset.chat.sampling import SamplingParams
    from mindset.circuits.protect import ProtectionConfig
    from mindset.circuits.protect_options import ProtectOptions
    from mindset.circuits.steps import CircuitsParams, TraceParams
    from mindset.evaluate.steps import EvalParams, PplParams
    from mindset.export.steps import ExportParams
    from mindset.map.build import MapSettings
    from mindset.merge.steps import MergeParams
    from mindset.surgery.steps import FfnToMemoryParams
    from mindset.train.config import DistillConfig

    expected = {
        "distill": flags(DistillConfig) | flags(ProtectionConfig, prefix="protect-") | flags(ProtectOptions, prefix="protect-", rename={"suites": "--protect-suite"}),
        "map": flags(MapSettings, rename={"use_cache": "--use-cache"}),  # data is --data, read before the model
        "circuits map": flags(CircuitsParams, skip=("trace",), rename={"components": "--component"}),  # a trace is `circuits trace`
        "circuits trace": flags(TraceParams),
        "eval": flags(EvalParams),
        "ppl": flags(PplParams, skip=("label",), rename={"text_file": "--text"}),  # label names a recipe's report section
        "export": flags(ExportParams, skip=("filename",), rename={"dtype": "--out-type"}),  # the file is -o
        "surgery ffn-to-memory": flags(FfnToMemoryParams, skip=("save",)),  # the folder is -o
        "merge": flags(MergeParams, skip=("config", "output", "load")),  # CONFIG argument, -o, and a recipe-only switch
        "chat": flags(SamplingParams),
    }
    for name, wanted in expected.items():
        assert wanted <= options_of(commands, name), (name, wanted - options_of(commands, name))


def test_dtype_is_the_load_dtype_everywhere(commands):
    for name, command in commands:
        for param in command.params:
            if "--dtype" in param.opts:
                assert "load dtype" in param.help, name
    assert "--out-type" in options_of(commands, "export") and "--dtype" not in options_of(commands, "export")


def test_help_lists_commands_without_building_them():
    """`mindset --help` imports no capability (the parameter models import torch): commands are built when used."""
    code = "import sys; sys.argv = ['mindset', '--help']\nfrom mindset.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "distill" in proc.stdout and "compare" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "False"


def test_split_list_reads_commas_and_repeats():
    assert split_list(["a,b", "c"]) == split_list(["a", "b,c"]) == split_list("a, b ,c") == ["a", "b", "c"]
    assert split_list(None) is None and split_list([""]) == []


# ---------------------------------------------------------------- the generator, on a model of its own


class Toy(BaseModel):
    count: int = Field(3, ge=1, description="how many")
    ratio: float | None = Field(None, gt=0, le=1, description="a share")
    mode: Literal["fast", "slow"] = Field("fast", description="the pace")
    tags: list[str] = Field(["x"], min_length=1, description="labels")
    layers: list[int] = Field([-1], description="layer indices")
    loud: bool = Field(False, description="shout")
    kind: str = Field("zero", pattern="^(zero|mean)$", description="a choice written as a pattern")


class Extra(BaseModel):
    suites: list[str] = Field(..., min_length=1, description="what to watch")
    level: float = Field(0.5, description="how hard")


def toy_app():
    from mindset.cli.common import options_from

    seen = {}

    @options_from(Extra, param="extra", prefix="x-", optional=True, requires="suites", names={"suites": "--x-suite"})
    @options_from(Toy, shorts={"count": "-n"})
    def toy(name: str = typer.Argument(..., help="a name"), *, params: Toy, extra: Optional[Extra]) -> None:
        """A toy command."""
        seen.update(name=name, params=params, extra=extra)

    app = typer.Typer()
    app.command()(toy)
    app.command("other", hidden=True)(lambda: None)  # two commands, so `toy` is a sub-command as in mindset
    return app, seen


def run_toy(*args):
    app, seen = toy_app()
    result = CliRunner().invoke(app, ["toy", *args])
    if isinstance(result.exception, MindsetError):
        return str(result.exception), seen
    assert result.exit_code == 0, result.output
    return result.output, seen


def test_generated_options_take_the_models_defaults_types_and_help():
    _, seen = run_toy("alice")
    assert seen["name"] == "alice" and seen["params"] == Toy() and seen["extra"] is None
    _, seen = run_toy("bob", "-n", "5", "--ratio", "0.5", "--mode", "slow", "--tags", "a,b", "--tags", "c", "--layers", "1,2", "--loud")
    assert seen["params"] == Toy(count=5, ratio=0.5, mode="slow", tags=["a", "b", "c"], layers=[1, 2], loud=True)
    app, _ = toy_app()
    shown = " ".join(CliRunner().invoke(app, ["toy", "--help"], terminal_width=200).output.split())
    for text in ("how many (≥ 1)", "a share (> 0, ≤ 1)", "[fast|slow]", "labels; comma-separated or repeated", "--loud --no-loud",
                 "--x-suite", "how hard (default 0.5)", "[default: 3]"):
        assert text in shown, text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count", "0"], "--count: Input should be greater than or equal to 1"),
        (["--mode", "medium"], "--mode: Input should be 'fast' or 'slow'"),
        (["--kind", "max"], "--kind: Input should be 'zero' or 'mean', not 'max'"),
        (["--layers", "one"], "--layers: Input should be a valid integer"),
        (["--x-level", "2"], "--x-level needs --x-suite"),
    ],
)
def test_generated_options_name_themselves_in_errors(args, message):
    error, _ = run_toy("carol", *args)
    assert error.startswith(message), error


def test_an_optional_group_is_built_when_one_of_its_options_is_given():
    _, seen = run_toy("dan", "--x-suite", "a", "--x-suite", "b,c")
    assert seen["extra"] == Extra(suites=["a", "b", "c"])


def test_a_nested_model_must_be_excluded_by_name():
    from mindset.cli.common import options_from

    class Outer(BaseModel):
        inner: Extra | None = None

    command = options_from(Outer)(lambda *, params: None)
    with pytest.raises(TypeError, match="'inner'"):
        command.__signature__  # noqa: B018 (building the signature is the check)


# ---------------------------------------------------------------- spellings that meet real commands


def test_run_folder_is_the_out_folder():
    assert run_folder(None, None) == (Path("runs"), None)
    assert run_folder(None, "x") == (Path("runs"), "x")
    assert run_folder(Path("a/b"), None) == (Path("a"), "b")
    with pytest.raises(MindsetError, match="name two run folders"):
        run_folder(Path("a/b"), "c")


def test_a_model_folder_named_compare_evaluates(cli, tmp_path, monkeypatch):
    """`compare` is a command of its own, so `mindset eval compare` evaluates a folder of that name."""
    from mindset.models import load, save

    save(load("tiny-llama", device="cpu", dtype="float32"), tmp_path / "compare")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("eval", "compare", "--tasks", "counting", "--tasks", "ordering", "--limit", "1", "-o", "ev")
    assert code == 0, err
    assert (tmp_path / "ev" / "compare" / "results.json").is_file()
    assert {p.name for p in (tmp_path / "ev" / "tasks").iterdir()} == {"counting", "ordering"}  # repeated --tasks
    code, out, _ = cli("compare", str(tmp_path / "ev" / "compare"), "-o", str(tmp_path / "table"))  # ev/comparison.md exists: not replaced
    assert code == 0 and "counting" in out


def test_the_old_eval_compare_spelling_points_at_the_new_command(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("eval", "compare", "runs/eval/x")
    assert code == 2 and "mindset compare RUNDIR" in err


def test_distill_takes_its_student_first_and_writes_to_out(cli, tmp_path):
    code, _, err = cli("distill", "tiny-llama", "--teacher", "tiny-llama", "--steps", "1", "--batch-size", "1", "--seq-len", "16",
                       "--max-train-tokens", "200", "--warmup-steps", "0", "--trainable", "*mlp*,*attn*", "-o", str(tmp_path / "mine"))
    assert code == 0, err
    assert (tmp_path / "mine" / "student").is_dir()
    code, _, err = cli("distill", "tiny-llama", "-o", str(tmp_path / "mine"), "--name", "other")
    assert code == 2 and "name two run folders" in err


def test_every_parameter_model_field_has_a_description():
    """The descriptions are the CLI's help text, so every recipe step's parameters carry one."""
    from mindset.circuits.protect import ProtectionConfig
    from mindset.circuits.steps import TraceParams
    from mindset.map.build import MapSettings
    from mindset.recipes.registry import STEPS, resolve_step
    from mindset.train.config import DistillConfig

    models = [resolve_step(name)[1] for name in STEPS] + [DistillConfig, ProtectionConfig, MapSettings, TraceParams]
    missing = [f"{m.__name__}.{name}" for m in models for name, info in m.model_fields.items() if not (info.description or "").strip()]
    assert not missing
