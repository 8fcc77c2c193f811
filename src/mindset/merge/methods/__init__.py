"""Merge methods by name: passthrough, linear, slerp, task_arithmetic, ties, dare_ties, dare_linear, model_stock."""

from mindset.merge.methods import basic, model_stock, task_arithmetic  # noqa: F401  (each module registers its methods)
from mindset.merge.methods.registry import METHODS, MergeInputs, MergeMethod, Param, get_method, merge_method, register

__all__ = ["METHODS", "MergeInputs", "MergeMethod", "Param", "get_method", "merge_method", "register"]
