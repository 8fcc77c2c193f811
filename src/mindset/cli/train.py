"""mindset distill."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DEFAULT_MODEL, console, load_model, params_from_options


def distill(
    student: str = typer.Option(..., help="the model to train: a folder (e.g. after surgery), a .gguf or a name"),
    teacher: str = typer.Option(DEFAULT_MODEL, help="the model to learn from"),
    name: str = typer.Option("distill", help="run folder name under --runs-dir"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir"),
    steps: int = typer.Option(100, help="optimizer steps"),
    batch_size: int = typer.Option(4, "--batch-size"),
    seq_len: int = typer.Option(128, "--seq-len"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    lr: float = typer.Option(1e-3),
    warmup_steps: int = typer.Option(10, "--warmup-steps"),
    alpha: float = typer.Option(0.5, help="weight of KL(teacher || student)"),
    beta: float = typer.Option(0.5, help="weight of cross-entropy on the data"),
    gamma: float = typer.Option(0.0, help="weight of the hidden-state cosine term"),
    temperature: float = typer.Option(2.0),
    trainable: Optional[list[str]] = typer.Option(None, help="glob of parameter names to train (repeatable; default all)"),
    data: str = typer.Option("austen", help="'austen', a .txt or a .jsonl (field 'text')"),
    max_train_tokens: Optional[int] = typer.Option(None, "--max-train-tokens"),
    valid_every: int = typer.Option(0, "--valid-every", help="valid perplexity every N steps"),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every"),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, "--resume", help="continue the run from its latest checkpoint"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the student"),
    device: str = typer.Option("auto"),
) -> None:
    """Distill a teacher into a (modified) student with Lightning; checkpoints are resumable."""
    from mindset.train import DistillConfig
    from mindset.train import distill as run_distill

    options = {k: "--" + k.replace("_", "-") for k in DistillConfig.model_fields}
    config = params_from_options(
        DistillConfig, options, name=name, steps=steps, batch_size=batch_size, seq_len=seq_len, grad_accum=grad_accum, lr=lr,
        warmup_steps=warmup_steps, alpha=alpha, beta=beta, gamma=gamma, temperature=temperature, trainable=trainable or ["*"],
        data=data, max_train_tokens=max_train_tokens, valid_every=valid_every, checkpoint_every=checkpoint_every, seed=seed,
        compile=compile, device=device,
    )  # fmt: skip
    student_model = load_model(student, device, "auto")
    teacher_model = load_model(teacher, str(student_model.device), str(student_model.dtype).removeprefix("torch."))
    result = run_distill(student_model, teacher_model, config, runs_dir=runs_dir, resume=resume)
    console.print(
        f"trained {result.trainable_params:,} of {result.total_params:,} parameters for {result.steps} steps in {result.seconds:.0f} s; "
        f"student saved to [bold]{result.student_dir}[/]"
    )


def register(app: typer.Typer) -> None:
    app.command()(distill)
