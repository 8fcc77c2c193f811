"""Measuring models: perplexity; log-likelihoods, generation and metrics scored as lm-eval scores them;
lm-eval task files; mindset's own suites; one table comparing runs."""

from mindset.evaluate.compare import comparison
from mindset.evaluate.evaluation import EvalRun, evaluate_model, load_run, resolve_tasks, save_run
from mindset.evaluate.generation import generate_until
from mindset.evaluate.loglikelihood import Request, Scored, loglikelihoods
from mindset.evaluate.perplexity import Perplexity, perplexity, perplexity_of_ids, plan_windows
from mindset.evaluate.runner import TaskResult, evaluate_task
from mindset.evaluate.suites import write_suites
from mindset.evaluate.taskfile import load_task
from mindset.evaluate.tasks import Task

__all__ = [
    "EvalRun", "Perplexity", "Request", "Scored", "Task", "TaskResult",
    "comparison", "evaluate_model", "evaluate_task", "generate_until", "load_run", "load_task", "loglikelihoods",
    "perplexity", "perplexity_of_ids", "plan_windows", "resolve_tasks", "save_run", "write_suites",
]
