"""What every command shares: consoles, the --debug state, model loading with a first-load note, option checks,
and the one vocabulary of options (-o/--out, list options, options generated from pydantic parameter models)."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import typer
from rich.console import Console

from mindset.errors import MindsetError

console = Console()
err_console = Console(stderr=True)
state = {"debug": False}

DEFAULT_MODEL = "smollm2-135m"  # mindset.models.DEFAULT_MODEL, without importing torch for --help
MODEL_HELP = "a name (smollm2-135m, tiny-llama, tiny-gpt2), an HF model folder or a .gguf file"
ModelArg = typer.Argument(DEFAULT_MODEL, help=MODEL_HELP, show_default=True)
DeviceOpt = typer.Option("auto", help="auto, cpu, cuda or cuda:N")
DtypeOpt = typer.Option("auto", help="load dtype: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16, or int8 (int8 weights on the CPU, for chat, serve and eval)")
OUT = ("-o", "--out")  # the one spelling of every output path


def out_option(default: Any, help: str) -> Any:
    """`-o/--out`: where a command writes (a file or a folder); every command spells it this way."""
    return typer.Option(default, *OUT, help=help)


OverwriteOpt = typer.Option(False, "--overwrite", help="replace the output if it exists")


def run_folder(out: Optional[Path], name: Optional[str]) -> tuple[Path, Optional[str]]:
    """(parent, name) of the run folder: -o OUT is the folder itself, --name NAME means runs/NAME."""
    if out is None:
        return Path("runs"), name
    if not out.name:
        raise MindsetError(f"-o {out}: give the run folder's own name, e.g. runs/quickstart")
    if name is not None and name != out.name:
        raise MindsetError(f"-o {out} and --name {name} name two run folders; give one")
    return out.parent, out.name


def quiet_transformers() -> None:
    """Warnings and per-load progress bars from transformers are noise on a command line."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_model(spec: str, device: str, dtype: str):
    """mindset.models.load, saying so when a GGUF file is about to be dequantized (the slow first load)."""
    quiet_transformers()
    from mindset.models import load
    from mindset.models.gguf_cache import is_cached
    from mindset.models.loading import EMBEDDED, locate_embedded

    gguf = locate_embedded(spec) if spec in EMBEDDED else (Path(spec) if spec.lower().endswith(".gguf") and Path(spec).is_file() else None)
    if gguf is not None and not is_cached(gguf):
        err_console.print(f"[dim]dequantizing {gguf.name} into a safetensors cache (first load only; later loads read the cache)[/]")
    return load(spec, device=device, dtype=dtype)


def params_from_options(model_class, option_names: dict[str, str], **values: Any):
    """Build a pydantic params object from CLI options; errors name the option, not the field."""
    from pydantic import ValidationError

    try:
        return model_class(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise MindsetError(f"{option_names.get(field, field)}: {_message(first)}") from None


def _message(error: dict) -> str:
    """pydantic's message, except that a validator's ValueError reads as its own sentence and a choice written as a pattern ^(a|b|c)$ reads like a Literal's: 'a', 'b' or 'c'."""
    if error["type"] == "value_error":  # a validator's own sentence, without pydantic's "Value error, " before it
        return str((error.get("ctx") or {}).get("error", error["msg"]))
    match = re.fullmatch(CHOICE_PATTERN, str((error.get("ctx") or {}).get("pattern", "")))
    if error["type"] != "string_pattern_mismatch" or not match:
        return error["msg"]
    choices = [f"'{c}'" for c in match.group(1).split("|")]
    return f"Input should be {', '.join(choices[:-1])} or {choices[-1]}, not {error['input']!r}"


# ---------------------------------------------------------------- list options: `a,b` and repeated flags alike

LIST_NOTE = "; comma-separated or repeated"


def split_list(values: Any) -> list[str] | None:
    """`--x a,b --x c` and `--x a --x b,c` both give [a, b, c]: every list option reads both ways."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def _split_callback(value):
    return split_list(value) if value else None


def ListOption(default: Any, *decls: str, help: str, **kwargs: Any) -> Any:
    """A repeatable option whose values may also be comma-separated; declare its parameter as Optional[list[str]]."""
    return typer.Option(default, *decls, help=help + LIST_NOTE, callback=_split_callback, **kwargs)


# ---------------------------------------------------------------- options generated from pydantic models


@dataclass(frozen=True)
class _Option:
    """One generated option: the model field it fills, its Python parameter name and the flag errors name."""

    field: str
    param: str
    flag: str
    annotation: Any
    info: Any  # the typer.Option
    joined: bool  # a list the model reads as one comma-separated string (e.g. layers '0-3,7')


@dataclass(frozen=True)
class _Spec:
    model: Any  # a class, or "module:Class" imported only when the command is built
    param: str
    exclude: tuple[str, ...] = ()
    names: dict[str, str] = dataclasses.field(default_factory=dict)
    shorts: dict[str, str] = dataclasses.field(default_factory=dict)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    helps: dict[str, str] = dataclasses.field(default_factory=dict)
    convert: dict[str, Any] = dataclasses.field(default_factory=dict)
    prefix: str = ""
    panel: str | None = None
    optional: bool = False
    requires: str | None = None
    shared: tuple[str, ...] = ()

    def resolve(self):
        if isinstance(self.model, str):
            module, name = self.model.split(":")
            return getattr(importlib.import_module(module), name)
        return self.model


def options_from(model: Any, *, param: str = "params", exclude: tuple[str, ...] = (), names: dict[str, str] | None = None,
                 shorts: dict[str, str] | None = None, defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None,
                 convert: dict[str, Any] | None = None, prefix: str = "", panel: str | None = None, optional: bool = False,
                 requires: str | None = None, shared: tuple[str, ...] = ()):
    """Give a command one option per field of a pydantic model, and pass it the validated model as `param`.

    The model is the one source of truth: each option takes the field's description as help (with its range),
    its default and its type; lists take `a,b` or repeated flags, bools are --x/--no-x, Literals show their
    choices; a validation error names the option the user typed. `model` may be "module:Class", imported only
    when typer builds the command, so `mindset --help` imports no capability. `names` gives a field another
    flag (a bool may give "--on/--off"), `shorts` a short flag, `defaults`/`helps`/`convert` the command's own
    default, help or reading of a value (e.g. 0 → None for "all"). `exclude` drops fields (nested models must be).
    With `optional`, every option defaults to None and the command gets None unless one was given; `requires`
    names the field that must then be among them. `shared` fields take the value of the command's own parameter
    of the same name (e.g. merge's CONFIG argument), which the command still gets. Decorators stack.
    """
    spec = _Spec(model, param, tuple(exclude), names or {}, shorts or {}, defaults or {}, helps or {}, convert or {}, prefix, panel, optional,
                 requires, tuple(shared))
    return lambda command: _OptionsCommand(command, spec)


class _OptionsCommand:
    """A command whose signature (what typer reads) is its own parameters plus the generated options."""

    def __init__(self, command, spec: _Spec) -> None:
        self._command, self._spec = command, spec
        self.__name__, self.__qualname__, self.__doc__ = command.__name__, command.__qualname__, command.__doc__
        self.__module__, self.__wrapped__ = command.__module__, command

    @functools.cached_property
    def _parts(self) -> tuple[list[inspect.Parameter], list[_Option]]:
        own = _resolved_parameters(self._command, skip=self._spec.param)
        skip = (*self._spec.exclude, *self._spec.shared)
        options = [_option(self._spec, name, info) for name, info in self._spec.resolve().model_fields.items() if name not in skip]
        clash = {o.param for o in options} & {p.name for p in own}
        if clash:
            raise TypeError(f"{self.__name__}: generated options clash with its parameters {sorted(clash)}; use a prefix")
        return own, options

    @property
    def __signature__(self) -> inspect.Signature:
        own, options = self._parts
        keyword = inspect.Parameter.KEYWORD_ONLY
        generated = [inspect.Parameter(o.param, keyword, default=o.info, annotation=o.annotation) for o in options]
        arguments = [p.replace(kind=keyword) for p in own if isinstance(p.default, typer.models.ArgumentInfo)]
        rest = [p.replace(kind=keyword) for p in own if not isinstance(p.default, typer.models.ArgumentInfo)]
        return inspect.Signature([*arguments, *generated, *rest])  # typer passes keywords; the help lists arguments, the model's options, the rest

    @property
    def __annotations__(self) -> dict[str, Any]:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs: Any) -> Any:
        options = self._parts[1]
        values = {o.field: kwargs.pop(o.param) for o in options}
        kwargs[self._spec.param] = _build(self._spec, options, values, {name: kwargs[name] for name in self._spec.shared})
        return self._command(**kwargs)


def _resolved_parameters(command, skip: str) -> list[inspect.Parameter]:
    """The command's parameters with string annotations evaluated (as inspect's eval_str does), except `skip`'s.
    The model parameters a stack of decorators injects may name classes only imported for type checking: those
    stay strings here, and the decorator that injects each one drops it."""
    namespace = getattr(inspect.unwrap(command), "__globals__", {})
    params = []
    for p in inspect.signature(command).parameters.values():
        if p.name == skip:
            continue
        params.append(p.replace(annotation=_evaluated(p.annotation, namespace)))
    return params


def _evaluated(annotation: Any, namespace: dict) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, namespace)  # the module's own annotation, as inspect.signature(eval_str=True) evaluates it
    except NameError:
        return annotation


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return any(isinstance(a, type) and issubclass(a, BaseModel) for a in _members(annotation)) or any(
        typing.get_origin(a) is typing.Annotated and _is_model(typing.get_args(a)[0]) for a in _members(annotation))


CHOICE_PATTERN = r"\^\(([\w.-]+(?:\|[\w.-]+)+)\)\$"  # a str field constrained to ^(a|b|c)$ is a choice, like a Literal


def _choices(annotation: Any, info=None) -> str | None:
    if typing.get_origin(annotation) is Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    for constraint in info.metadata if info is not None else ():
        match = re.fullmatch(CHOICE_PATTERN, str(getattr(constraint, "pattern", None) or ""))
        if match:
            return match.group(1)
    return None


def _range_note(info) -> str:
    """'≥ 1', '0 ≤ x ≤ 1'…, from the field's annotated-types constraints, so a user sees the range before an error."""
    bounds = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in info.metadata if type(m).__name__ in ("Ge", "Gt", "Le", "Lt")}
    low = f"≥ {bounds['Ge']}" if "Ge" in bounds else (f"> {bounds['Gt']}" if "Gt" in bounds else "")
    high = f"≤ {bounds['Le']}" if "Le" in bounds else (f"< {bounds['Lt']}" if "Lt" in bounds else "")
    return f" ({low}{', ' if low and high else ''}{high})" if low or high else ""


def _reads_text(info) -> bool:
    """A field with its own before/plain validator reads the text the user typed (e.g. a size '5GB')."""
    return any(type(m).__name__ in ("BeforeValidator", "PlainValidator", "WrapValidator") for m in info.metadata)


def _option(spec: _Spec, name: str, info) -> _Option:
    """The typer option of one field: its flag(s), default, help and the type typer parses it as."""
    annotation = _strip_optional(info.annotation)
    if _is_model(annotation) or typing.get_origin(annotation) is dict:
        raise TypeError(f"{spec.model}: field {name!r} ({annotation}) has no option form; exclude it and give it its own options")
    flag = spec.names.get(name) or f"--{spec.prefix}{name.replace('_', '-')}"
    decls = [flag] + ([spec.shorts[name]] if name in spec.shorts else [])
    default, help_text = _default_and_help(spec, name, info)
    settings = {"help": help_text, "rich_help_panel": spec.panel, "show_default": not spec.optional}
    python_name = spec.prefix.replace("-", "_") + name
    members = _members(annotation)
    lists = [a for a in members if typing.get_origin(a) is list]
    if lists:  # list[X] (or list[X] | str, read as one comma-separated string): strings, which pydantic converts
        choices = _choices(typing.get_args(lists[0])[0] if typing.get_args(lists[0]) else str)
        shown = [str(v) for v in default] if isinstance(default, (list, tuple)) else default
        option = ListOption(shown, *decls, metavar=f"{choices}[,...]" if choices else None, **settings)
        return _Option(name, python_name, flag, Optional[list[str]], option, joined=str in members)
    if annotation is bool:
        decls[0] = flag if "/" in flag else f"{flag}/--no-{flag.removeprefix('--')}"
        return _Option(name, python_name, flag.split("/")[0], Optional[bool], typer.Option(default, *decls, **settings), False)
    choices = _choices(annotation, info)
    kind = annotation if annotation in (int, float, str, Path) and not _reads_text(info) else str
    option = typer.Option(default, *decls, metavar=f"[{choices}]" if choices else None, **settings)
    return _Option(name, python_name, flag, Optional[kind], option, False)


def _default_and_help(spec: _Spec, name: str, info) -> tuple[Any, str]:
    """The command's default (its own, or the field's) and help (the description and range); an optional group's
    options default to None, so their help states the field's default instead."""
    from pydantic_core import PydanticUndefined

    if name in spec.defaults:
        default = spec.defaults[name]
    elif info.default_factory is not None:
        default = info.default_factory()
    else:
        default = ... if info.default is PydanticUndefined else info.default
    help_text = spec.helps[name] if name in spec.helps else (info.description or "") + _range_note(info)
    if spec.optional:
        return None, help_text + ("" if default in (None, ...) else f" (default {_shown(default)})")
    return default, help_text


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _build(spec: _Spec, options: list[_Option], values: dict[str, Any], shared: dict[str, Any]):
    """The validated model (or None for an optional group nobody used); errors name the option."""
    for o in options:
        if o.field in spec.convert:
            values[o.field] = spec.convert[o.field](values[o.field])
        if o.joined and isinstance(values[o.field], list):
            values[o.field] = ",".join(values[o.field])
    flags = {o.field: o.flag for o in options}
    if spec.optional:
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return None
        if spec.requires and spec.requires not in values:
            raise MindsetError(f"{flags[next(iter(values))]} needs {flags[spec.requires]}")
    return params_from_options(spec.resolve(), flags, **values, **shared)
