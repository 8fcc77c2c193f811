"""A task's documents turned into prompts, choices and targets, with lm-eval's rules.

Templates are Jinja with undefined variables as errors (lm-eval's environment, with its `regex_replace`
filter). A `doc_to_*` string that names a column is that column; `doc_to_target` rendering to digits is an
index when the task has choices; `doc_to_choice` renders to a Python list literal.

A prompt is `description + shots + doc_to_text(doc)`, each shot `text + target_delimiter + answer +
fewshot_delimiter`. Shots are drawn as lm-eval's default sampler draws them: one `random.Random(seed)`
(seed 1234, lm-eval's default) sampling `num_fewshot` documents per evaluated document, in document
order, from the few-shot split (else training, validation, test), leaving out the evaluated document when
the few-shot split is the test split. So the same task and seed give lm-eval's prompts, character for
character.
"""

from __future__ import annotations

import ast
import random
import re
from typing import Any

import jinja2

from mindset.errors import MindsetError
from mindset.evaluate.taskdata import load_split
from mindset.evaluate.taskfile import FunctionRef, TaskSpec

FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed

_jinja = jinja2.Environment(loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_jinja.filters["regex_replace"] = lambda s, pattern, repl, count=0: re.sub(pattern, repl, s, count=count)


class Task:
    def __init__(self, spec: TaskSpec, *, num_fewshot: int | None = None):
        self.spec = spec
        self.name = spec.task
        self.docs = load_split(spec, spec.eval_split)
        if not self.docs:
            raise MindsetError(f"{spec.location()}: split {spec.eval_split!r} has no documents")
        self.columns = {key for doc in self.docs for key in doc}
        self.num_fewshot = num_fewshot if num_fewshot is not None else (spec.num_fewshot or 0)
        if spec.doc_to_text is None:
            raise MindsetError(f"{spec.location()}: doc_to_text is missing")
        if spec.doc_to_target is None and spec.process_results is None:
            raise MindsetError(f"{spec.location()}: doc_to_target is missing")
        if spec.output_type == "multiple_choice" and spec.doc_to_choice is None:
            raise MindsetError(f"{spec.location()}: a multiple_choice task needs doc_to_choice")
        self._pool: list[dict] | None = None

    # --- templates -----------------------------------------------------------------------------------

    def _render(self, template: str, doc: dict, what: str) -> str:
        try:
            return _jinja.from_string(template).render(**doc)
        except jinja2.TemplateError as err:
            raise MindsetError(f"{self.spec.location()}: {what} fails on document {self._where(doc)}: {err}") from None

    def _where(self, doc: dict) -> str:
        for i, d in enumerate(self.docs):
            if d is doc:
                return f"{i} of split {self.spec.eval_split!r}"
        return "(a few-shot document)"

    def _call(self, ref: FunctionRef, doc: dict, what: str):
        function = ref.load()
        try:
            return function(doc)
        except Exception as err:  # the task's own Python: its failure is the task file's problem, named with the document
            message = " ".join(str(err).split())
            raise MindsetError(f"{self.spec.location()}: {what} (!function {ref.module}.{ref.name}) raised {type(err).__name__}: {message} on document {self._where(doc)}") from None

    def _field(self, doc: dict, name: str, what: str):
        if name not in doc:
            raise MindsetError(f"{self.spec.location()}: {what} reads field {name!r}, which document {self._where(doc)} lacks")
        return doc[name]

    def doc_to_text(self, doc: dict, template: Any = None) -> str:
        template = self.spec.doc_to_text if template is None else template
        if isinstance(template, FunctionRef):
            text = self._call(template, doc, "doc_to_text")
        elif isinstance(template, str) and template in self.columns:
            text = self._field(doc, template, "doc_to_text")
        elif isinstance(template, str):
            text = self._render(template, doc, "doc_to_text")
            if text.isdigit() and self.spec.doc_to_choice is not None:
                text = int(text)
        else:
            text = template
        if not isinstance(text, str):
            raise MindsetError(f"{self.spec.location()}: doc_to_text gives {type(text).__name__} {text!r} on document {self._where(doc)}; tasks with one prompt per choice are not supported")
        return text

    def doc_to_target(self, doc: dict, template: Any = None):
        template = self.spec.doc_to_target if template is None else template
        if isinstance(template, FunctionRef):
            return self._call(template, doc, "doc_to_target")
        if isinstance(template, str) and template in self.columns:
            return self._field(doc, template, "doc_to_target")
        if isinstance(template, str):
            text = self._render(template, doc, "doc_to_target")
            if text.isdigit() and self.spec.doc_to_choice is not None:
                return int(text)
            if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
                try:
                    return ast.literal_eval(text)
                except (SyntaxError, ValueError):
                    return text
            return text
        return template

    def doc_to_choice(self, doc: dict, template: Any = None) -> list[str]:
        template = self.spec.doc_to_choice if template is None else template
        if isinstance(template, FunctionRef):
            choices = self._call(template, doc, "doc_to_choice")
        elif isinstance(template, str) and template in self.columns:
            choices = self._field(doc, template, "doc_to_choice")
        elif isinstance(template, str):
            rendered = self._render(template, doc, "doc_to_choice")
            try:
                choices = ast.literal_eval(rendered)
            except (SyntaxError, ValueError):
                raise MindsetError(f"{self.spec.location()}: doc_to_choice must give a list; on document {self._where(doc)} it gives {rendered[:80]!r}") from None
        elif isinstance(template, dict):
            choices = list(template.values())
        else:
            choices = template
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise MindsetError(f"{self.spec.location()}: doc_to_choice must give a non-empty list of strings; on document {self._where(doc)} it gives {choices!r}")
        return choices

    def gold_indices(self, doc: dict, choices: list[str]) -> list[int]:
        """The gold choice(s) of a multiple-choice document, as indices; out of range is an error."""
        target = self.doc_to_target(doc)
        targets = target if isinstance(target, list) else [target]
        indices = []
        for t in targets:
            if isinstance(t, str):
                if t not in choices:
                    raise MindsetError(f"{self.spec.location()}: target {t!r} of document {self._where(doc)} is not one of its choices {choices}")
                indices.append(choices.index(t))
            elif isinstance(t, int) and not isinstance(t, bool):
                if not 0 <= t < len(choices):
                    raise MindsetError(f"{self.spec.location()}: target index {t} of document {self._where(doc)} is out of range: it has {len(choices)} choices")
                indices.append(t)
            else:
                raise MindsetError(f"{self.spec.location()}: doc_to_target gives {t!r} on document {self._where(doc)}; expected a choice index or text")
        return indices

    # --- prompts -------------------------------------------------------------------------------------

    def fewshot_pool(self) -> list[dict]:
        if self._pool is None:
            spec = self.spec
            split = spec.fewshot.split or spec.training_split or spec.validation_split or spec.test_split
            self._pool = load_split(spec, split) if split else []
        return self._pool

    def description(self, doc: dict) -> str:
        field = self.spec.description
        if not field:
            return ""
        return doc[field] if field in doc else self._render(field, doc, "description")

    def contexts(self, limit: int | None = None, seed: int = FEWSHOT_SEED) -> list[str]:
        """The prompt of each of the first `limit` documents."""
        docs = self.docs[:limit] if limit else self.docs
        rnd = random.Random(seed)
        return [self.context(doc, rnd) for doc in docs]

    def context(self, doc: dict, rnd: random.Random) -> str:
        shots = self._sample(doc, rnd) if self.num_fewshot > 0 else []
        fs = self.spec.fewshot
        parts = [self.description(doc)]
        for shot in shots:
            question = self.doc_to_text(shot, fs.doc_to_text)
            answer = self.doc_to_target(shot, fs.doc_to_target)
            choices = self.doc_to_choice(shot, fs.doc_to_choice) if fs.doc_to_choice is not None else None
            if answer is None or answer == "":
                parts.append(question)
                continue
            if choices and isinstance(answer, int):
                answer = choices[answer]
            elif isinstance(answer, list):
                answer = answer[0]
            if not isinstance(answer, str):
                raise MindsetError(f"{self.spec.location()}: a few-shot document's target is {answer!r}, not text")
            parts.append(question + fs.target_delimiter + answer + fs.fewshot_delimiter)
        parts.append(self.doc_to_text(doc))
        return "".join(parts)

    def _sample(self, doc: dict, rnd: random.Random) -> list[dict]:
        pool, n = self.fewshot_pool(), self.num_fewshot
        exclude = self.spec.fewshot.split == self.spec.test_split  # lm-eval's test, None == None included
        needed = n + 1 if exclude and self.spec.fewshot.sampler == "default" else n
        if len(pool) < needed:
            raise MindsetError(f"{self.spec.location()}: {n}-shot prompts need {n} few-shot documents; the pool has {len(pool)}{' (one more is drawn: the test split is also the few-shot split)' if needed > n else ''}")
        if self.spec.fewshot.sampler == "first_n":
            return [d for d in pool if d != doc][:n] if exclude else pool[:n]
        if not exclude:
            return rnd.sample(pool, n)
        shots = [d for d in rnd.sample(pool, n + 1) if d != doc][:n]
        if len(shots) < n:  # the pool held copies of the document
            shots = rnd.sample([d for d in pool if d != doc], n)
        return shots

    def check(self, limit: int | None = None, seed: int = FEWSHOT_SEED) -> None:
        """Render every prompt, choice list and target the evaluation will need, so a bad document fails before any scoring."""
        self.contexts(limit, seed)
        for doc in self.docs[:limit] if limit else self.docs:
            if self.spec.output_type == "multiple_choice":
                choices = self.doc_to_choice(doc)
                if self.spec.process_results is None:
                    self.gold_indices(doc, choices)
            else:
                self.doc_to_target(doc)
        if self.spec.output_type == "generate_until":
            self.until()

    def until(self) -> tuple[list[str], int]:
        """Stop strings and the token budget of a generate_until task (lm-eval's defaults when unset)."""
        kwargs = dict(self.spec.generation_kwargs or {})
        if kwargs.get("do_sample") or float(kwargs.get("temperature", 0.0) or 0.0) > 0:
            raise MindsetError(f"{self.spec.location()}: generation_kwargs ask for sampling; mindset evaluates greedily")
        until = kwargs.get("until", [self.spec.fewshot_delimiter])
        until = [until] if isinstance(until, str) else list(until)
        budget = next((kwargs[k] for k in ("max_gen_toks", "max_new_tokens", "max_tokens") if k in kwargs), 256)
        return until, int(budget)
