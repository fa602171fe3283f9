"""What a training run is given and what it returns: `TrainConfig` (a ``params.yaml`` section's ``train`` block),
`TrainSummary`, and the error a non-finite loss raises. The trainer (:mod:`vlstudy.train.trainer`) re-exports them.

The defaults follow the official Youku-mPLUG / mPLUG-2 optimisation (shared/DESIGN.md, "Optimisation"); units
(steps, micro-batches, epochs) are defined in the trainer's module docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vlstudy.train.parallel import Parallel

__all__ = ["TrainConfig", "TrainSummary", "NonFiniteLossError", "RECIPE_TRAIN", "recipe_train"]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one training run (one `params.yaml` section's ``train`` block).

    Attributes:
        lr: peak learning rate (DESIGN.md: pretrain 1e-4, classification/captioning 2e-5, retrieval 1e-4).
        min_lr: the cosine's floor at `max_steps` (official configs: 1e-6; retrieval 1e-7).
        weight_decay: AdamW decay of weight matrices (0.05).
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_steps: optimizer steps of linear warmup from 0 (pretrain 2000; cls/caption 100).
        max_steps: optimizer steps of the run; None means ``epochs * steps_per_epoch``.
        epochs: the run's length in epochs when `max_steps` is None (ignored otherwise).
        batch_size: items per process per micro-batch.
        grad_accum_steps: micro-batches per optimizer step.
        grad_clip: max global gradient norm (3.0); None disables clipping (the norm is still logged).
        lr_scale: module-name prefix → lr multiplier, e.g. ``{"video_encoder": 0.1}`` for a CLIP-initialised
            video encoder.
        precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", or "bf16" (autocast on any device).
        log_every: log every this many steps (and always the last step).
        checkpoint_every: checkpoint every this many steps; None = only the final checkpoint.
        keep_checkpoints: how many recent checkpoints to keep (>= 1).
        eval_every: run `eval_fn` every this many steps; None = only at the end.
        seed: fixes the data order, item randomness and the (per-rank) torch generator.
        num_workers: DataLoader worker processes.
        gradient_checkpointing: call the model's ``activation_checkpointing_enable()`` (transformers 5) or
            ``gradient_checkpointing_enable()``, non-reentrant.
        drop_last: drop a partial last global batch of each epoch.
        find_unused_parameters: tell DDP that some trainable parameters may get no gradient in a step (costs a
            graph traversal per step; leave False unless DDP asks for it).
        parallel: with several processes, "ddp" (a full model per process) or "fsdp" (FSDP2: parameters, gradients
            and AdamW states sharded over processes, sharded checkpoints); one process trains the plain model.
    """

    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    max_steps: int | None = None
    epochs: int = 1
    batch_size: int = 8
    grad_accum_steps: int = 1
    grad_clip: float | None = 3.0
    lr_scale: dict[str, float] = field(default_factory=dict)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    log_every: int = 10
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    eval_every: int | None = None
    seed: int = 0
    num_workers: int = 0
    gradient_checkpointing: bool = False
    drop_last: bool = True
    find_unused_parameters: bool = False
    parallel: Parallel = "ddp"

    def __post_init__(self) -> None:
        if self.lr <= 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        positive = {"batch_size": self.batch_size, "grad_accum_steps": self.grad_accum_steps,
                    "epochs": self.epochs, "log_every": self.log_every, "keep_checkpoints": self.keep_checkpoints,
                    "max_steps": self.max_steps, "checkpoint_every": self.checkpoint_every,
                    "eval_every": self.eval_every}
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.warmup_steps < 0 or self.num_workers < 0:
            raise ValueError(f"warmup_steps and num_workers must be >= 0, got {self.warmup_steps}, {self.num_workers}")
        if self.max_steps is not None and self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} exceeds max_steps {self.max_steps}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.parallel not in ("ddp", "fsdp"):
            raise ValueError(f"parallel must be 'ddp' or 'fsdp', got {self.parallel!r}")


# The study's shared recipe, params.yaml ``recipe.train`` (a test checks the two are equal): AdamW, warmup, cosine.
# Toy models need a higher rate than the official 2e-5 fine-tuning of 1B+ pre-trained ones.
RECIPE_TRAIN = {"lr": 5e-4, "min_lr": 1e-5, "weight_decay": 0.05, "warmup_steps": 30, "epochs": 10, "batch_size": 16}


def recipe_train(**overrides: Any) -> TrainConfig:
    """The recipe's `TrainConfig` with a stage's `overrides`: the train defaults of the stages' dataclasses, so
    that they equal their params.yaml sections (which state only what differs from the recipe)."""
    return TrainConfig(**{**RECIPE_TRAIN, **overrides})


class NonFiniteLossError(RuntimeError):
    """A step's loss (or gradient norm) is NaN or infinite; training stopped before applying the update."""


@dataclass
class TrainSummary:
    """What `Trainer.fit` returns.

    Attributes:
        final_step: optimizer steps done (= the run's max steps).
        losses: the last step's loss terms (averaged over micro-batches and processes).
        metrics: the last `eval_fn` result ({} without one).
        log_path: the JSON-lines training log.
        checkpoint: the final checkpoint folder.
        final_dir: the exported model (``out_dir/final``).
        seconds: wall time of this `fit` call.
        samples_per_s: items per second over the steps trained in this call, all processes together.
        skipped_videos: bad videos the collate function dropped over the whole run.
        flops_per_step: model FLOPs of one optimizer step on this process (forward + backward, counted on the
            session's first step with ``torch.utils.flop_counter``); None when no step ran.
        step_seconds: wall time spent in optimizer steps in this call (evaluation and checkpoints excluded).
        session_steps: optimizer steps done in this call (fewer than `final_step` after a resume).
    """

    final_step: int
    losses: dict[str, float]
    metrics: dict[str, float]
    log_path: Path
    checkpoint: Path | None
    final_dir: Path
    seconds: float
    samples_per_s: float
    skipped_videos: int
    flops_per_step: int | None = None
    step_seconds: float = 0.0
    session_steps: int = 0
