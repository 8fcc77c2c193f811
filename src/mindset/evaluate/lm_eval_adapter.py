"""lm-eval can evaluate any model mindset loads (modified ones included) through this `LM` subclass.

    pip install 'mindset-lab[lm-eval]'

    import lm_eval
    from mindset.evaluate.lm_eval_adapter import MindsetLM
    lm = MindsetLM.from_spec("smollm2-135m")          # or MindsetLM(loaded) for a model you changed
    lm_eval.simple_evaluate(model=lm, tasks=["my_task"], task_manager=lm_eval.tasks.TaskManager(include_path="tasks/"))

Importing this module also registers the class under lm-eval's model name "mindset"
(`model_args="pretrained=smollm2-135m"`). Requests are scored by mindset's engine: log-likelihoods with
the context shared across a question's choices, greedy generation on mindset's decode loop, rolling
log-likelihoods over lm-eval's own disjoint windows. lm-eval is imported here only: it stays optional.
"""

from __future__ import annotations

from mindset.errors import MindsetError

try:
    # lm-eval fills its registry with its own models only while the registry is empty; registering ours
    # first would hide "hf" and the rest, so load them now
    import lm_eval.models  # noqa: F401
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as err:  # pragma: no cover - depends on the environment
    raise MindsetError("the lm-eval adapter needs lm-eval: pip install 'mindset-lab[lm-eval]'") from err

from mindset.evaluate.generation import generate_until
from mindset.evaluate.loglikelihood import encode_request, model_max_length, prefix_token_id, score_tokens


@register_model("mindset")
class MindsetLM(LM):
    def __init__(self, loaded=None, *, pretrained: str | None = None, max_length: int | None = None, share_context: bool = True, fast_cpu: bool = True, device: str = "auto", dtype: str = "auto", **_ignored):
        super().__init__()
        if loaded is None:
            if not pretrained:
                raise MindsetError("MindsetLM needs a loaded model or pretrained=<model spec>")
            from mindset.models import load

            loaded = load(pretrained, device=device, dtype=dtype)
        self.loaded = loaded
        self.max_length = int(max_length) if max_length else model_max_length(loaded.model, loaded.tokenizer)
        self.share_context = share_context
        self.fast_cpu = fast_cpu

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> MindsetLM:
        return cls(pretrained=spec, **kwargs)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> MindsetLM:
        args = dict(part.split("=", 1) for part in arg_string.split(",") if part)
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k in ("device", "dtype")}
        return cls(**args, **extra)

    def _score(self, pairs):
        return score_tokens(self.loaded.model, pairs, max_length=self.max_length, share_context=self.share_context)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        tokenizer = self.loaded.tokenizer
        pairs = [encode_request(tokenizer, context, continuation) for context, continuation in (r.args for r in requests)]
        return [(s.logprob, s.is_greedy) for s in self._score(pairs)]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        from mindset.evaluate.loglikelihood import encode

        tokenizer = self.loaded.tokenizer
        out = []
        for (text,) in (r.args for r in requests):
            windows = [
                make_disjoint_window(w)
                for w in get_rolling_token_windows(
                    token_list=encode(tokenizer, text), prefix_token=prefix_token_id(tokenizer), max_seq_len=self.max_length, context_len=1
                )
            ]
            out.append(sum(s.logprob for s in self._score(windows)))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        texts = []
        for context, kwargs in (r.args for r in requests):
            kwargs = dict(kwargs or {})
            if kwargs.get("do_sample") or float(kwargs.get("temperature", 0.0) or 0.0) > 0:
                raise MindsetError("MindsetLM generates greedily; the task asks for sampling")
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            budget = int(next((kwargs[k] for k in ("max_gen_toks", "max_new_tokens", "max_tokens") if k in kwargs), 256))
            texts.append(generate_until(self.loaded, context, until, budget, max_length=self.max_length, fast_cpu=self.fast_cpu).text)
        return texts
