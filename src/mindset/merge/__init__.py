"""Model merging from mergekit-compatible YAML: exact mergekit arithmetic, streamed to sharded safetensors.

    plan = plan_merge("merge.yaml")          # everything checked; only headers read
    result = merge("merge.yaml", "out/")     # one tensor at a time, atomically written HF folder
"""

from __future__ import annotations

from pathlib import Path

from mindset.merge.config import LoadedConfig, MergeConfig, load_merge_config, parse_merge_config
from mindset.merge.execute import DEFAULT_SHARD_BYTES, MergeResult, execute_plan
from mindset.merge.methods import METHODS, MergeInputs, MergeMethod
from mindset.merge.plan import MergePlan, build_plan


def plan_merge(config: str | Path | LoadedConfig, *, search: list[Path] | None = None, seed: int = 0) -> MergePlan:
    """Read and check a merge config (and every model header it names) without touching weights."""
    loaded = config if isinstance(config, LoadedConfig) else load_merge_config(config)
    return build_plan(loaded, search=search, seed=seed)


def merge(
    config: str | Path | LoadedConfig,
    out: str | Path,
    *,
    seed: int = 0,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    lazy: bool = True,
    progress: bool = False,
    overwrite: bool = False,
    search: list[Path] | None = None,
) -> MergeResult:
    """Merge as the config says into the HF folder `out`; returns what was written."""
    plan = plan_merge(config, search=search, seed=seed)
    return execute_plan(plan, out, shard_bytes=shard_bytes, lazy=lazy, progress=progress, overwrite=overwrite)


__all__ = [
    "DEFAULT_SHARD_BYTES", "METHODS", "LoadedConfig", "MergeConfig", "MergeInputs", "MergeMethod", "MergePlan", "MergeResult",
    "build_plan", "execute_plan", "load_merge_config", "merge", "parse_merge_config", "plan_merge",
]  # fmt: skip
