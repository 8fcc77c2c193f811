"""Recipes: one YAML file chains steps from every capability; the runner is a thin loop over them."""

from mindset.recipes.registry import STEPS, resolve_step
from mindset.recipes.runner import RunResult, run_recipe
from mindset.runcontext import RunContext

__all__ = ["STEPS", "RunContext", "RunResult", "resolve_step", "run_recipe"]
