"""Measuring models: perplexity now; log-likelihood tasks, metrics and comparison tables to come."""

from mindset.evaluate.perplexity import Perplexity, perplexity, perplexity_of_ids, plan_windows

__all__ = ["Perplexity", "perplexity", "perplexity_of_ids", "plan_windows"]
