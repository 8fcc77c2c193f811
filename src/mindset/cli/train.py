"""mindset distill."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DEFAULT_MODEL, console, err_console, load_model, params_from_options


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
    overwrite: bool = typer.Option(False, "--overwrite", help="delete an existing run folder of this name and start again"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the student"),
    device: str = typer.Option("auto"),
    protect_suite: Optional[list[str]] = typer.Option(
        None, "--protect-suite", help="protected training: map importance on this canary suite, protect what matters, watch it (repeatable)",
        rich_help_panel="Protected training"),
    protect_granularity: Optional[list[str]] = typer.Option(
        None, "--protect-granularity", help="importance maps to build: attn, mlp, head or layer (repeatable; default attn and mlp)",
        rich_help_panel="Protected training"),
    protect_threshold: Optional[float] = typer.Option(
        None, "--protect-threshold", help="protect components whose Δ log-prob (nats) reaches this (default 0.1)", rich_help_panel="Protected training"),
    protect_lr_scale: Optional[float] = typer.Option(
        None, "--protect-lr-scale", help="LR multiplier of protected components, 0 freezes (default 0.1)", rich_help_panel="Protected training"),
    protect_l2: Optional[float] = typer.Option(
        None, "--protect-l2", help="pull of protected weights toward their start (default 0)", rich_help_panel="Protected training"),
    protect_check_every: Optional[int] = typer.Option(
        None, "--protect-check-every", help="score the canaries every N steps (default 10)", rich_help_panel="Protected training"),
    protect_max_drop: Optional[float] = typer.Option(
        None, "--protect-max-drop", help="roll back when a canary's accuracy drops more than this (default 0.1)", rich_help_panel="Protected training"),
    protect_limit: Optional[int] = typer.Option(
        None, "--protect-limit", help="documents per suite for maps and checks (default 20)", rich_help_panel="Protected training"),
) -> None:
    """Distill a teacher into a (modified) student with Lightning; checkpoints are resumable.

    With --protect-suite, components the suites depend on train slower and the suites are watched: a drop
    rolls back (protected training; see the README's Circuits section)."""
    from mindset.errors import MindsetError
    from mindset.train import DistillConfig
    from mindset.train import distill as run_distill

    options = {k: "--" + k.replace("_", "-") for k in DistillConfig.model_fields}
    config = params_from_options(
        DistillConfig, options, name=name, steps=steps, batch_size=batch_size, seq_len=seq_len, grad_accum=grad_accum, lr=lr,
        warmup_steps=warmup_steps, alpha=alpha, beta=beta, gamma=gamma, temperature=temperature, trainable=trainable or ["*"],
        data=data, max_train_tokens=max_train_tokens, valid_every=valid_every, checkpoint_every=checkpoint_every, seed=seed,
        compile=compile, device=device,
    )  # fmt: skip
    protect = {k: v for k, v in dict(
        granularity=protect_granularity, threshold=protect_threshold, lr_scale=protect_lr_scale, l2=protect_l2,
        check_every=protect_check_every, max_drop=protect_max_drop, limit=protect_limit).items() if v is not None}  # fmt: skip
    protect_options = None
    if protect_suite:
        from mindset.circuits.protect_options import CLI_OPTIONS, ProtectOptions

        protect_options = params_from_options(ProtectOptions, CLI_OPTIONS, suites=protect_suite, **protect)
    elif protect:
        raise MindsetError(f"--protect-{next(iter(protect)).replace('_', '-')} needs --protect-suite (the suites to map and watch)")
    student_model = load_model(student, device, "auto")
    protection = None
    if protect_options is not None:
        from mindset.circuits.protect_options import protection_from_options

        protection = protection_from_options(student_model, protect_options, progress=True)
        for note in protection.notes:
            err_console.print(f"[bold yellow]warning:[/] {note}", highlight=False)
    teacher_model = load_model(teacher, str(student_model.device), str(student_model.dtype).removeprefix("torch."))
    result = run_distill(student_model, teacher_model, config, runs_dir=runs_dir, resume=resume, protection=protection, overwrite=overwrite)
    console.print(
        f"trained {result.trainable_params:,} of {result.total_params:,} parameters for {result.steps} steps in {result.seconds:.0f} s; "
        f"student saved to [bold]{result.student_dir}[/]"
    )
    if protection is not None:
        from mindset.circuits.protect_options import canary_plot, protected_table, rollback_table, rollbacks
        from mindset.tables import rich_table

        console.print(rich_table(f"Protected components ({len(protection.protected)} of {len(protection.scales)} units)", *protected_table(protection)))
        if protection.events:
            console.print(rich_table("Rollbacks", *rollback_table(protection)))
        plot = canary_plot(protection, result.run_dir / "canaries.png")
        console.print(f"{rollbacks(protection)}; every check in [bold]{result.run_dir / 'protection.json'}[/], plot {plot.name}")


def register(app: typer.Typer) -> None:
    app.command()(distill)
