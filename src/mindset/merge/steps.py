"""Recipe steps `merge` (a mergekit-compatible merge; the result becomes the current model) and
`merge_fixtures` (the four miniature models the published frankenmerge config runs on)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationInfo, field_validator, model_validator

from mindset.configfile import YamlDocument
from mindset.errors import MindsetError
from mindset.merge.config import LoadedConfig, MergeConfig, load_merge_config
from mindset.merge.execute import DEFAULT_SHARD_BYTES
from mindset.merge.sizes import ByteSize
from mindset.runcontext import RunContext


class MergeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: Annotated[
        Union[Annotated[Path, Tag("file")], Annotated[MergeConfig, Tag("inline")]],
        Discriminator(lambda value: "inline" if isinstance(value, (dict, MergeConfig)) else "file"),
    ] = Field(description="a merge YAML file, or the merge config written inline")
    output: Path = Field(Path("merged"), description="the merged model's folder (relative: inside the run folder)")
    seed: int = Field(0, description="seed for random masks (dare_ties, dare_linear)")
    shard_size: ByteSize = Field(DEFAULT_SHARD_BYTES, description="largest output shard: bytes, or text such as 5GB, 500MB, 2GiB")
    lazy: bool = Field(True, description="map each input file only while its tensor is merged (low memory); off keeps them mapped")
    load: bool = Field(True, description="make the merged model the current one")

    _doc: YamlDocument | None = PrivateAttr(None)  # where an inline config sits in the recipe, for plan errors

    @field_validator("config")
    @classmethod
    def _readable(cls, value: Path | MergeConfig) -> Path | MergeConfig:
        """A config file is read and checked with the recipe, before any step runs."""
        if isinstance(value, Path):
            try:
                load_merge_config(value)
            except MindsetError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _locate(self, info: ValidationInfo) -> MergeParams:
        context = info.context or {}
        if isinstance(self.config, MergeConfig) and context.get("doc") is not None:
            self._doc = context["doc"].within(context["loc"] + ("config",), self.config.model_dump())
        return self


def merge_step(ctx: RunContext, params: MergeParams) -> dict:
    from mindset.merge import build_plan, execute_plan
    from mindset.merge.report import LAYER_HEADERS, layer_rows, summary_rows
    from mindset.models import load
    from mindset.tables import rich_table

    if isinstance(params.config, MergeConfig):
        text = yaml.safe_dump(params.config.model_dump(exclude_none=True, mode="json"), sort_keys=False)
        loaded = LoadedConfig(params.config, params._doc or YamlDocument(params.config.model_dump(), None), text)
        where = "inline config"
    else:
        loaded = load_merge_config(params.config)
        where = str(params.config)
    # relative model paths: the working directory, the config's folder, then the run folder
    search = [Path.cwd()] + ([loaded.folder] if loaded.folder else []) + [ctx.run_dir]
    plan = build_plan(loaded, search=search, seed=params.seed)
    output = params.output if params.output.is_absolute() else ctx.run_dir / params.output
    summary = summary_rows(plan)
    ctx.console.print(rich_table(f"Merge plan ({where})", ["", ""], summary))
    result = execute_plan(plan, output, shard_bytes=params.shard_size, lazy=params.lazy, progress=ctx.progress, overwrite=True)
    ctx.console.print(f"merged {result.folder}: {result.parameters:,} parameters in {result.seconds:.1f} s")
    ctx.add_section(f"Merge: {plan.method.name}", f"`{where}` → `{output}`, {result.seconds:.1f} s.")
    ctx.add_table("Merge plan", ["", ""], summary)
    ctx.add_table("Output layers", LAYER_HEADERS, layer_rows(plan))
    if params.load:
        ctx.set_model(load(output, device=ctx.device, dtype=ctx.dtype))
    return {
        "method": plan.method.name,
        "output": str(output),
        "layers": plan.num_layers,
        "tensors": result.tensors,
        "parameters": result.parameters,
        "bytes": result.bytes,
        "merge_seconds": round(result.seconds, 2),
    }


class FixtureParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(Path("models"), description="where the models go (relative: inside the run folder)")
    layers: int = Field(80, ge=1, description="layers per model (the published config needs 80)")
    hidden: int = Field(32, ge=8, description="hidden size")
    seed: int = Field(0, description="seed of the random weights")


def merge_fixtures_step(ctx: RunContext, params: FixtureParams) -> dict:
    """dolphin-mini, synthia-mini, wizardmath-mini, meditron-mini: random Llamas built in code."""
    from mindset.merge.fixtures import write_professor_models

    folder = params.folder if params.folder.is_absolute() else ctx.run_dir / params.folder
    paths = write_professor_models(folder, layers=params.layers, hidden=params.hidden, seed=params.seed)
    ctx.add_section("Merge inputs", "Random tiny Llamas written in code: " + ", ".join(f"`{p}`" for p in paths.values()) + ".")
    return {"models": {name: str(path) for name, path in paths.items()}}
