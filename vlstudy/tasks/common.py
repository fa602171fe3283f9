"""Plumbing shared by the task modules: prepared splits → datasets, sharded prediction, results, launching.

A task module (``text_lm``, ``pretrain_mplug_video``, ``classification``, ``captioning``, ``retrieval``, ...) exposes
a config dataclass and ``run(config, paths) -> TaskResult``. ``run`` works the same in one process and under
``torchrun``: the shared `Trainer` handles DDP, :func:`predict` shards evaluation over processes and gathers one
row per item on rank 0, and rank 0 writes every output file and returns the result (other ranks return None). A
stage notebook calls :func:`launch` with the task's ``run`` function: it runs the task in the kernel
(``nproc=1``) or starts ``torchrun --nproc_per_node=N`` on this module's entry point and reads rank 0's result
back; either way the notebook gets the same `TaskResult` and logs its numbers in the stage's metrics file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_type_hints

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # text bars: readable in terminals, logs and rendered notebooks alike

from vlstudy import io
from vlstudy.config import from_dict, to_dict
from vlstudy.data.datasets import VideoDataset, make_loader
from vlstudy.data.frame_cache import FrameCacheConfig, build_frame_cache
from vlstudy.data.prepared import load_split
from vlstudy.distributed import barrier, gather_to_main, is_main_process, rank, world_size
from vlstudy.metrics.base import MetricResult
from vlstudy.metrics.bootstrap import metric_intervals
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.train.trainer import TrainConfig, seed_all

__all__ = ["VideoInputConfig", "TaskPaths", "TaskResult", "PhaseTimer", "load_split", "video_dataset", "predict",
           "launch", "write_json", "zero_loss", "seeded_generator", "interval_summary", "load_model",
           "model_train_config", "training_record"]


@dataclass
class VideoInputConfig:
    """How a task reads its videos. Frame count and size are the model's (``model.video``), not typed here.

    Attributes:
        cache: decode each video once into a frame cache (``.vlstudy/cache``) instead of every epoch.
        cache_candidates: frames stored per segment for training (see `vlstudy.data.frame_cache`).
        decode_workers: processes that build the cache.
    """

    cache: bool = True
    cache_candidates: int = 4
    decode_workers: int = 2


@dataclass
class TaskPaths:
    """Where a task reads and writes (absolute or relative to the project root).

    Attributes:
        data: the prepared splits (``data/prepared``, written by the ``data`` stage).
        out: this task's outputs (models, predictions, metrics): a stage output, staged by the runner.
        work: scratch that survives a killed run (trainer checkpoints, so a rerun resumes).
        cache: frame caches (content-addressed; safe to share between stages).
    """

    data: str
    out: str
    work: str
    cache: str = ".vlstudy/cache"


@dataclass
class TaskResult:
    """What a task returns to the notebook that launched it (and what the notebook logs as metrics).

    Attributes:
        metrics: headline numbers, e.g. ``{"head": {"top1": {"estimate", "low", "high"}}}``.
        protocol: how they were measured: split, number of videos and texts, frames and sampler, normalisation,
            retrieval mode.
        training: the run's bookkeeping: steps, final losses, samples/s, trainable parameters, skipped videos.
        timings: wall seconds per phase (``decode``, ``train``, ``evaluate``, ``write``).
    """

    metrics: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def training_record(summary, model: nn.Module | None = None, **extra: Any) -> dict[str, Any]:
    """A run's bookkeeping for `TaskResult.training`: steps, final losses, throughput, the model FLOP rate the
    optimizer steps achieved (for the study profile), skipped videos and parameter counts."""
    record = {"steps": summary.final_step, **{f"final_{k}": v for k, v in summary.losses.items()},
              "samples_per_s": summary.samples_per_s, "skipped_videos": summary.skipped_videos,
              "flops_per_step": summary.flops_per_step, "step_seconds": round(summary.step_seconds, 3)}
    if summary.flops_per_step and summary.step_seconds:
        flops = summary.flops_per_step * summary.session_steps
        record["achieved_gflops"] = round(flops / summary.step_seconds / 1e9, 2)
    if model is not None:
        record["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        record["total_parameters"] = sum(p.numel() for p in model.parameters())
    return {**record, **extra}


class PhaseTimer:
    """Wall time per phase of a task: ``with timer("train"): ...``; `seconds` sums repeated phases."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + time.perf_counter() - start, 3)


def video_dataset(records: pd.DataFrame, encoder: VideoEncoderConfig, decode: VideoInputConfig,
                  mode: Literal["train", "eval"], seed: int, cache_dir: str | Path,
                  fields: tuple[str, ...] = ()) -> VideoDataset:
    """A `VideoDataset` over `records` with the model's frame count and size (`encoder`), reading from a frame
    cache when asked (rank 0 builds it).

    Training skips unreadable videos (counted and logged by the trainer); evaluation raises, naming the file:
    an evaluation set with a broken video is an error, not a smaller test set.
    """
    cache = None
    if decode.cache:
        config = FrameCacheConfig(num_frames=encoder.num_frames, mode=mode, size=encoder.image_size,
                                  candidates=decode.cache_candidates)
        if is_main_process():
            build_frame_cache(records, config, cache_dir, workers=decode.decode_workers)
        barrier()
        cache = build_frame_cache(records, config, cache_dir, workers=0, progress=False)
    return VideoDataset(records, num_frames=encoder.num_frames, mode=mode, image_size=encoder.image_size, seed=seed,
                        cache=cache, on_error="skip" if mode == "train" else "raise", fields=fields)


def load_model(model_class: Any, init: str | Path, pretrained: bool, num_frames: int) -> Any:
    """A model of `model_class` (e.g. ``MPLUGVideoForClassification``) from the saved folder `init`, in training
    mode, reading `num_frames` frames per clip (time embeddings resampled).

    With ``pretrained=True`` it has the saved weights (``from_pretrained``: a head the folder lacks is initialised,
    one this class does not use is dropped). With ``pretrained=False`` it has the saved architecture only: every
    trainable weight new, the video encoder from scratch (not from its image checkpoint either); the frozen LM of
    mPLUG-video is still the one ``lm_path`` names.
    """
    if pretrained:
        model = model_class.from_pretrained(init)
        model.set_num_frames(num_frames)
        return model.train()
    config = model_class.config_class.from_pretrained(init)
    config.video.num_frames = num_frames
    config.video.pretrained_path = None
    return model_class(config, **model_class.saved_init_kwargs(init)).train()


def model_train_config(model: nn.Module, train: TrainConfig) -> TrainConfig:
    """`train` with the model's own learning-rate scales under the ones it sets itself: the official 0.1x for the
    CLIP-initialised weights of a video encoder (temporal parts at 1x), ``model.image_lr_scale()``; unchanged for
    a model without CLIP-initialised weights."""
    defaults = model.image_lr_scale() if hasattr(model, "image_lr_scale") else {}
    return dataclasses.replace(train, lr_scale={**defaults, **train.lr_scale}) if defaults else train


def as_numpy(value: torch.Tensor) -> np.ndarray:
    """`value` as a numpy array on the host; a bf16 or fp16 tensor (a model run under autocast) as float32, which
    numpy can hold (float32 and every other dtype unchanged)."""
    value = value.detach().cpu()
    return (value.float() if value.dtype in (torch.bfloat16, torch.float16) else value).numpy()


def predict(model: nn.Module, dataset: VideoDataset, batch_size: int,
            fn: Callable[[nn.Module, dict], Mapping[str, Any]], desc: str = "predict") -> pd.DataFrame | None:
    """Run ``fn(model, batch)`` over `dataset` in eval mode, sharded over the processes.

    Args:
        model: the model (already on its device).
        dataset: an eval-mode dataset.
        batch_size: items per process per batch.
        fn: returns per-item values for a batch: lists, or tensors / arrays whose first axis is the batch.
        desc: progress-bar label.

    Returns:
        On rank 0, one row per item in dataset order, with ``index``, ``video_id`` and the values of `fn`
        (tensors become numpy arrays, one per row); None on the other ranks. The padding that makes every
        rank run the same number of batches is dropped.
    """
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=0, drop_last=False,
                         rank=rank(), world_size=world_size())
    device = next(model.parameters()).device
    modes = {m: m.training for m in model.modules()}
    model.eval()
    rows: list[dict] = []
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc=desc, disable=not is_main_process(), mininterval=1.0):
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                out = fn(model, batch)
                for i, index in enumerate(batch["index"]):
                    row = {"index": int(index), "video_id": batch["video_id"][i]}
                    for key, values in out.items():
                        value = values[i]
                        row[key] = as_numpy(value) if isinstance(value, torch.Tensor) else value
                    rows.append(row)
    finally:
        for module, training in modes.items():
            module.training = training
    gathered = gather_to_main(rows)
    if gathered is None:
        return None
    table = pd.DataFrame([row for part in gathered for row in part])
    return table.drop_duplicates("index").sort_values("index").reset_index(drop=True)


def zero_loss(model: nn.Module, *terms: str) -> dict[str, torch.Tensor]:
    """The losses of a step whose whole batch was skipped (bad videos): ``loss`` and every named term, zero but
    connected to every trainable parameter, so that DDP still sees a gradient for each parameter and every
    process logs the same terms."""
    zero = sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)  # on the parameters' device
    return {"loss": zero, **{term: zero.detach() for term in terms}}


def seeded_generator(indices: list[int], seed: int) -> torch.Generator:
    """A CPU generator determined by a batch's item indices and the seed: sampling inside a loss (hard
    negatives) is then a pure function of the batch, so resumed and distributed runs draw the same."""
    words = np.random.SeedSequence([seed, *map(int, indices)]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def interval_summary(result: MetricResult, seed: int, n_boot: int) -> dict[str, dict[str, float]]:
    """``{metric: {"estimate", "low", "high"}}``: 95% bootstrap intervals over test items for every headline
    number of `result` (counts such as ``n_items`` are copied without an interval)."""
    table = metric_intervals(result, rng=np.random.default_rng(seed), n_boot=n_boot)
    out = {k: {"estimate": float(r.estimate), "low": float(r.low), "high": float(r.high)} for k, r in table.iterrows()}
    out.update({k: {"estimate": float(v)} for k, v in result.summary.items() if k not in out})
    return out


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (rank 0 only; other ranks return)."""
    if not is_main_process():
        return
    io.write_json(path, data)


def launch(run: Callable[[Any, TaskPaths], TaskResult | None], config: Any, paths: TaskPaths) -> TaskResult:
    """Run a task's ``run(config, paths)`` here, or under torchrun on ``config.nproc`` processes.

    The global generators are seeded with ``config.seed`` first, so the weights a task initialises are the same
    on every run, whatever ran before in the same kernel.

    Args:
        run: the task's entry point, e.g. ``vlstudy.tasks.classification.run``.
        config: its config dataclass; ``config.nproc`` processes (GPUs) on this node, 1 runs in this process.
        paths: where it reads and writes.

    Returns:
        The task's result (rank 0's, under torchrun).

    Raises:
        subprocess.CalledProcessError: when torchrun fails (its output is printed as it runs).
    """
    Path(paths.out).mkdir(parents=True, exist_ok=True)
    if config.nproc <= 1:
        seed_all(config.seed)
        return run(config, paths)
    work = Path(paths.work)
    spec, result_file = work / "launch.json", work / "result.json"
    result_file.unlink(missing_ok=True)
    io.write_json(spec, {"module": run.__module__, "function": run.__name__, "config": to_dict(config),
                         "paths": to_dict(paths), "result": str(result_file)})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={config.nproc}",
               "-m", "vlstudy.tasks.common", str(spec)]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return from_dict(TaskResult, io.read_json(result_file), where=str(result_file))


def _main(spec_path: str) -> None:
    """torchrun entry point: ``python -m vlstudy.tasks.common <launch.json>``."""
    spec = io.read_json(spec_path)
    run = getattr(importlib.import_module(spec["module"]), spec["function"])
    config_cls = get_type_hints(run)["config"]
    config = from_dict(config_cls, spec["config"], where=spec_path)
    seed_all(config.seed)  # the same initial weights on every process (the trainer then reseeds per rank)
    result = run(config, from_dict(TaskPaths, spec["paths"], where=spec_path))
    if is_main_process() and result is not None:
        io.write_json(spec["result"], to_dict(result))


if __name__ == "__main__":
    _main(sys.argv[1])

