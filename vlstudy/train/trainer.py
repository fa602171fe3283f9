"""The one trainer every stage uses: AdamW + warmup/cosine, accumulation, bf16 autocast, DDP or FSDP, exact resume.

It follows the official Youku-mPLUG / mPLUG-2 training loop (shared/DESIGN.md, "Optimisation": AdamW, weight
decay 0.05, gradient clipping at 3.0, a per-step linear warmup then cosine; pretrain lr 1e-4 with 2000 warmup
steps, classification and captioning 2e-5 with 100, retrieval 1e-4) and adds what a study kit needs: checkpoints
that resume bit-exactly, a JSON-lines log, and a DDP path that reproduces the single-process run. FSDP
(``parallel="fsdp"``, :mod:`vlstudy.train.parallel`) shards the model for models that outgrow one GPU; its
checkpoints are sharded too, and the final export is consolidated into the same format as DDP's.

Units. A *step* is one optimizer update. It consumes `grad_accum_steps` micro-batches per process; each
micro-batch is this process's slice of one global batch of ``batch_size * world_size`` items (`GlobalBatchSampler`),
so a step sees ``batch_size * world_size * grad_accum_steps`` items. An epoch has
``floor(global batches per epoch / grad_accum_steps)`` steps (a step never spans two epochs; left-over
micro-batches at the end of an epoch are not used). The run lasts `max_steps` steps if set, else
``epochs * steps_per_epoch``; with `max_steps` set, `epochs` is ignored and the data wraps into as many epochs as
needed (the Hugging Face Trainer's rule).

Losses. ``loss_fn(model, batch)`` returns a dict with "loss" (a scalar tensor, the mean over the process's
micro-batch) and optionally other scalars to log. The trainer divides by `grad_accum_steps` before backward; DDP or
FSDP averages gradients over processes; so a step's gradient is that of the mean over the global batch, as with one
process. The whole ``loss_fn(model, batch)`` call runs as the forward of the DDP (FSDP) wrapper, so it may call any
method of the model (``model.encode_video(...)``), not only ``model(...)``, and gradients are still synchronised
(under FSDP ``eval_fn`` runs through the wrapper too; after `fit` the parameters stay sharded: evaluate a model
loaded from ``final/``). Learnable parts of a loss (a contrastive temperature) belong to the model, where the
optimizer finds them. Contrastive losses gather features with `vlstudy.distributed.all_gather_with_grad` and average
over the process's own rows; averaged over processes that is the loss over the global batch.

Modes. The trainer never calls ``model.train()``: the model arrives in the mode its builder chose (frozen parts
in eval mode, STYLE.md rule 6). For evaluation it sets eval mode and afterwards restores every submodule's own
mode.

Randomness. Sampler order comes from (seed, epoch); datasets derive item randomness from (seed, epoch, index) and
expose ``set_epoch(epoch)``; dropout draws from torch's default generator, which the trainer seeds with
``seed + rank`` and checkpoints per rank. The DataLoader gets its own generator, so creating one mid-epoch after a
resume does not shift torch's default generator.
"""

from __future__ import annotations

import inspect
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from vlstudy.config import to_dict
from vlstudy.data.datasets import SkipLog
from vlstudy.data.sampler import GlobalBatchSampler, num_global_batches
from vlstudy.distributed import all_reduce_sum, barrier, gather_to_main, setup_distributed
from vlstudy.train import checkpoint as ckpt
from vlstudy.train.checkpoint import TrainState
from vlstudy.train.config import NonFiniteLossError, TrainConfig, TrainSummary
from vlstudy.train.logging import JsonlLog, last_results
from vlstudy.train.optim import build_optimizer, build_scheduler, group_lrs
from vlstudy.train.parallel import (
    LossModule,
    autocast_dtype,
    clip_grad_norm,
    gradient_sync,
    shard_fsdp,
    to_device,
    wrap_ddp,
)

__all__ = ["TrainConfig", "Trainer", "TrainSummary", "NonFiniteLossError", "LossFn", "EvalFn", "seed_all"]

LossFn = Callable[[nn.Module, Any], Mapping[str, Any]]
EvalFn = Callable[[nn.Module, int], Mapping[str, float]]

# Config keys a resumed run must share with the checkpoint: they fix what the saved data position means.
_RESUME_KEYS = ("seed", "batch_size", "grad_accum_steps", "drop_last")


def seed_all(seed: int) -> None:
    """Seed the global generators that code draws from implicitly: torch's (weight init, dropout), numpy's, random's.

    torch's default generator starts from a different seed in every process, so a model built before seeding
    would differ from run to run.
    """
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


class Trainer:
    """Trains `model` on `train_dataset` by minimising ``loss_fn(model, batch)["loss"]``.

    Args:
        model: the model; its trainable parameters (``requires_grad``) are optimised, frozen ones untouched.
            It is moved to this process's device.
        config: optimisation and bookkeeping settings.
        train_dataset: a map-style dataset with ``__len__``; ``set_epoch(epoch)`` is called at each epoch
            start if it has one.
        collate_fn: turns a list of items into a batch (a dict of tensors; an optional "skipped" list of video
            ids names items it dropped, which are counted and logged).
        loss_fn: ``loss_fn(model, batch) -> {"loss": scalar tensor, other scalars...}``.
        out_dir: holds ``train_log.jsonl``, ``checkpoints/`` and ``final/``. A run in a folder that already
            has checkpoints resumes from the latest one.
        eval_fn: ``eval_fn(model, step) -> {metric: value}``, called at the end and every `eval_every` steps,
            on every process (it may use collectives), in eval mode under ``torch.no_grad``.

    Raises:
        ValueError: if the dataset cannot fill one optimizer step, or `gradient_checkpointing` is requested
            for a model without a checkpointing hook.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_dataset: Dataset,
        collate_fn: Callable[[list[Any]], Any],
        loss_fn: LossFn,
        out_dir: Path,
        eval_fn: EvalFn | None = None,
    ) -> None:
        self.dist = setup_distributed()
        self.config = config
        self.device = self.dist.device
        self.model = model.to(self.device)
        self.dataset = train_dataset
        self.collate_fn = collate_fn
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.out_dir = Path(out_dir)
        self.log_path = self.out_dir / "train_log.jsonl"
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.is_main = self.dist.rank == 0

        global_batch = config.batch_size * self.dist.world_size
        batches = num_global_batches(len(train_dataset), global_batch, config.drop_last)
        self.steps_per_epoch = batches // config.grad_accum_steps
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(train_dataset)} items: fewer than one optimizer step of "
                f"{global_batch * config.grad_accum_steps} (batch_size {config.batch_size} x "
                f"{self.dist.world_size} process(es) x grad_accum_steps {config.grad_accum_steps})"
            )
        self.max_steps = config.max_steps if config.max_steps is not None else config.epochs * self.steps_per_epoch
        if config.max_steps is not None and self.is_main:
            warnings.warn(f"train.epochs={config.epochs} is ignored: train.max_steps={config.max_steps} sets the run's "
                          f"length ({config.max_steps / self.steps_per_epoch:.2g} epochs of this data)", stacklevel=2)
        if config.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps {config.warmup_steps} exceeds the run's {self.max_steps} steps")
        self.samples_per_step = global_batch * config.grad_accum_steps
        self.autocast_dtype = autocast_dtype(config.precision, self.device)
        if config.gradient_checkpointing:
            self._enable_gradient_checkpointing()
        self.step_module: nn.Module = LossModule(self.model)  # DDP-wrapped in `fit`, or FSDP-sharded here
        self.sharded = config.parallel == "fsdp" and self.dist.world_size > 1
        if self.sharded:  # before the optimizer, which must hold the sharded parameters
            shard_fsdp(self.step_module, self.model, self.autocast_dtype if self.device.type == "cuda" else None)

        self.optimizer = build_optimizer(
            self.model, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas, eps=config.eps,
            lr_scale=config.lr_scale,
        )
        self.scheduler = build_scheduler(
            self.optimizer, lr=config.lr, min_lr=config.min_lr, warmup_steps=config.warmup_steps,
            max_steps=self.max_steps,
        )
        self.trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self._skip_log = SkipLog()  # bad training videos, each logged once with its file

    def _enable_gradient_checkpointing(self) -> None:
        """Call the model's checkpointing hook: transformers 5 names it ``activation_checkpointing_enable`` (the
        older ``gradient_checkpointing_enable`` is deprecated); non-reentrant, since reentrant checkpointing
        breaks DDP."""
        hooks = (("activation_checkpointing_enable", "activation_checkpointing_kwargs"),
                 ("gradient_checkpointing_enable", "gradient_checkpointing_kwargs"))
        for method, kwargs_name in hooks:
            enable = getattr(self.model, method, None)
            if enable is not None:
                takes_kwargs = kwargs_name in inspect.signature(enable).parameters
                enable(**({kwargs_name: {"use_reentrant": False}} if takes_kwargs else {}))
                return
        raise ValueError(
            f"gradient_checkpointing=True but {type(self.model).__name__} has neither "
            "activation_checkpointing_enable() nor gradient_checkpointing_enable()"
        )

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    # ---------------------------------------------------------------- data
    def _micro_batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
        """This process's micro-batches of `epoch` from global batch `start_batch` on."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        sampler = GlobalBatchSampler(
            len(self.dataset), self.config.batch_size, seed=self.config.seed, epoch=epoch, rank=self.dist.rank,
            world_size=self.dist.world_size, start_batch=start_batch, drop_last=self.config.drop_last,
        )
        loader_seed = int(np.random.SeedSequence([self.config.seed, epoch]).generate_state(1)[0])
        loader = DataLoader(
            self.dataset, batch_sampler=sampler, collate_fn=self.collate_fn, num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(loader_seed),
        )
        return iter(loader)

    # ---------------------------------------------------------------- one step
    def _train_step(self, step_module: nn.Module, micro_batches: list[Any], step: int) -> tuple[dict, float, int]:
        """Forward/backward over the micro-batches, then one clipped AdamW update.

        Returns:
            The loss terms averaged over micro-batches and processes, the gradient norm before clipping, and
            the number of videos the collate function skipped in this step over all processes.

        Raises:
            NonFiniteLossError: if the averaged loss or the gradient norm is not finite (no update is applied).
        """
        accum = len(micro_batches)
        sums: dict[str, torch.Tensor] = {}
        skipped = 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(micro_batches):
            if isinstance(batch, Mapping):
                skipped += len(batch.get("skipped", ()))
            self._skip_log.record(batch)
            batch = to_device(batch, self.device)
            with gradient_sync(step_module, enabled=i == accum - 1):  # sync gradients once per step
                with self._autocast():
                    out = step_module(self.loss_fn, batch)
                if "loss" not in out:
                    raise KeyError(f"loss_fn returned keys {sorted(out)}; it must return a 'loss' entry")
                (out["loss"] / accum).backward()
            for key, value in out.items():
                value = torch.as_tensor(value, device=self.device).detach().float()
                if value.numel() != 1:
                    raise ValueError(f"loss_fn entry {key!r} has shape {tuple(value.shape)}; only scalars are logged")
                sums[key] = sums.get(key, 0.0) + value.reshape(())
        keys = sorted(sums)
        packed = torch.stack([sums[k] for k in keys] + [torch.tensor(float(skipped), device=self.device)])
        packed = all_reduce_sum(packed).cpu()
        losses = {k: v / (accum * self.dist.world_size) for k, v in zip(keys, packed[:-1].tolist())}
        step_skipped = int(packed[-1])
        if not math.isfinite(losses["loss"]):
            raise NonFiniteLossError(f"loss is {losses['loss']} at step {step}")
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        grad_norm = clip_grad_norm(self.trainable, max_norm)
        if not math.isfinite(grad_norm):
            raise NonFiniteLossError(f"gradient norm is {grad_norm} at step {step} (loss {losses['loss']:.6g})")
        self.optimizer.step()
        self.scheduler.step()
        return losses, grad_norm, step_skipped

    # ---------------------------------------------------------------- eval / checkpoint
    def _evaluate(self, step: int) -> dict[str, float]:
        modes = {module: module.training for module in self.model.modules()}
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():  # under FSDP through the root, which gathers the parameters
                metrics = dict(self.step_module(self.eval_fn, step) if self.sharded else self.eval_fn(self.model, step))
        finally:
            for module, training in modes.items():
                module.training = training
        return metrics

    def _checkpoint(self, state: TrainState) -> Path:
        """Rank 0 writes a full-tensor checkpoint, or every rank its shards of a sharded one (FSDP)."""
        contents = {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "state": state,
                    "rng_states": gather_to_main(ckpt.capture_rng_state()), "config": to_dict(self.config)}
        path = self.checkpoint_dir / f"{ckpt.CHECKPOINT_PREFIX}{state.step:08d}"
        if self.sharded:
            ckpt.save_sharded_checkpoint(self.checkpoint_dir, **contents)
        elif self.is_main:
            ckpt.save_checkpoint(self.checkpoint_dir, **contents)
        if self.is_main:
            ckpt.prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        barrier()
        return path

    def _resume(self) -> tuple[TrainState, Path | None]:
        """Load the latest checkpoint of `out_dir` if there is one; else seed a fresh run."""
        if self.is_main:
            ckpt.remove_stale_tmp(self.checkpoint_dir)
        barrier()
        path = ckpt.latest_checkpoint(self.checkpoint_dir)
        if path is None:
            # The global generators that code draws from implicitly (dropout: torch's), one stream per process.
            seed_all(self.config.seed + self.dist.rank)
            return TrainState(world_size=self.dist.world_size), None
        saved_state, saved_config = ckpt.read_checkpoint_info(path)
        if saved_state.world_size != self.dist.world_size:
            raise ValueError(
                f"{path}: written by {saved_state.world_size} process(es); this run has {self.dist.world_size}"
            )
        for key in _RESUME_KEYS:
            if saved_config[key] != getattr(self.config, key):
                raise ValueError(
                    f"{path / 'config.json'}: {key}={saved_config[key]!r} but this run has "
                    f"{key}={getattr(self.config, key)!r}; resume with the same value or use a new out_dir"
                )
        if ckpt.is_sharded(path) != self.sharded:
            kinds = ("full-tensor (DDP or one process)", "sharded (FSDP)")
            raise ValueError(f"{path}: a {kinds[ckpt.is_sharded(path)]} checkpoint; this run is {kinds[self.sharded]}")
        load = ckpt.load_sharded_checkpoint if self.sharded else ckpt.load_checkpoint
        state, rng = load(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                          rank=self.dist.rank)
        ckpt.restore_rng_state(rng)
        return state, path

    # ---------------------------------------------------------------- the loop
    def fit(self) -> TrainSummary:
        """Train to the run's last step, resuming from the latest checkpoint in `out_dir` if any.

        Returns:
            The run's summary. A run already finished returns at once, with losses and metrics read from its log.

        Raises:
            NonFiniteLossError: naming the step and value; the checkpoints written before stay, none after.
        """
        t0 = time.perf_counter()
        cfg = self.config
        state, checkpoint = self._resume()
        if state.step >= self.max_steps:
            return self._finished_summary(state, checkpoint, time.perf_counter() - t0)
        log = JsonlLog(self.log_path, resume_step=state.step) if self.is_main else None
        step_module = self.step_module
        if self.dist.world_size > 1 and not self.sharded:
            step_module = wrap_ddp(step_module, self.dist, cfg.find_unused_parameters)
        progress = tqdm(
            total=self.max_steps, initial=state.step, disable=not self.is_main, desc="train", mininterval=1.0
        )
        session_start_step, elapsed_before = state.step, state.elapsed_s
        window_t0, window_steps = time.perf_counter(), 0
        losses: dict[str, float] = {}
        metrics: dict[str, float] = {}
        flops_per_step, step_seconds = None, 0.0
        try:
            while state.step < self.max_steps:
                batches = self._micro_batches(state.epoch, state.batch_in_epoch)
                steps_left_in_epoch = self.steps_per_epoch - state.batch_in_epoch // cfg.grad_accum_steps
                for _ in range(min(steps_left_in_epoch, self.max_steps - state.step)):
                    micro = [next(batches) for _ in range(cfg.grad_accum_steps)]
                    lrs = group_lrs(self.optimizer)
                    step_t0 = time.perf_counter()
                    try:
                        if flops_per_step is None:  # count the model FLOPs of one step, once per session
                            with FlopCounterMode(display=False) as counter:
                                losses, grad_norm, skipped = self._train_step(step_module, micro, state.step + 1)
                            flops_per_step = counter.get_total_flops()
                        else:
                            losses, grad_norm, skipped = self._train_step(step_module, micro, state.step + 1)
                    except NonFiniteLossError as e:
                        raise NonFiniteLossError(
                            f"{e} (epoch {state.epoch}); stopped before the update; "
                            f"last good checkpoint: {checkpoint or 'none'}"
                        ) from None
                    step_seconds += time.perf_counter() - step_t0
                    epoch = state.epoch
                    state.step += 1
                    state.skipped_videos += skipped
                    state.batch_in_epoch += cfg.grad_accum_steps
                    if state.batch_in_epoch == self.steps_per_epoch * cfg.grad_accum_steps:
                        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                    state.elapsed_s = elapsed_before + time.perf_counter() - t0
                    window_steps += 1
                    progress.update(1)
                    last = state.step == self.max_steps
                    if state.step % cfg.log_every == 0 or last:
                        rate = window_steps * self.samples_per_step / (time.perf_counter() - window_t0)
                        window_t0, window_steps = time.perf_counter(), 0
                        progress.set_postfix(loss=f"{losses['loss']:.4f}")
                        if log is not None:
                            log.write({
                                "kind": "train", "step": state.step, "epoch": epoch, **losses,
                                **{f"lr/{name}": lr for name, lr in lrs.items()}, "grad_norm": grad_norm,
                                "samples_per_s": rate, "elapsed_s": state.elapsed_s,
                                "skipped_videos": state.skipped_videos,
                            })
                    if self.eval_fn is not None and (last or (cfg.eval_every and state.step % cfg.eval_every == 0)):
                        metrics = self._evaluate(state.step)
                        if log is not None:
                            log.write({"kind": "eval", "step": state.step, **metrics})
                    if last or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0):
                        checkpoint = self._checkpoint(state)
        finally:
            progress.close()
            if log is not None:
                log.close()
        final_dir = self.out_dir / "final"
        if self.sharded:
            ckpt.consolidate(self.model, final_dir)
        elif self.is_main:
            ckpt.export_final(self.model, final_dir)
        barrier()
        seconds = time.perf_counter() - t0
        return TrainSummary(
            final_step=state.step, losses=losses, metrics=metrics, log_path=self.log_path, checkpoint=checkpoint,
            final_dir=final_dir, seconds=seconds,
            samples_per_s=(state.step - session_start_step) * self.samples_per_step / seconds,
            skipped_videos=state.skipped_videos, flops_per_step=flops_per_step, step_seconds=step_seconds,
            session_steps=state.step - session_start_step,
        )

    def _finished_summary(self, state: TrainState, checkpoint: Path | None, seconds: float) -> TrainSummary:
        losses, metrics = last_results(self.log_path)
        return TrainSummary(
            final_step=state.step, losses=losses, metrics=metrics, log_path=self.log_path, checkpoint=checkpoint,
            final_dir=self.out_dir / "final", seconds=seconds, samples_per_s=0.0,
            skipped_videos=state.skipped_videos,
        )
