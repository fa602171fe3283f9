"""Atomic, resumable training checkpoints: one folder per optimizer step, ``<out>/checkpoints/step_00000100/``.

A checkpoint holds everything needed to continue a run as if it had never stopped. A DDP or single-process run
writes full tensors:

==========================  ==================================================================================
``model.safetensors``       trainable parameters and the persistent buffers (frozen parameters are not copied:
                            they come back from wherever the model was built from)
``optimizer.pt``            AdamW state (torch.save; read back with ``torch.load(weights_only=True)``, which
                            refuses anything but tensors and plain containers, so no arbitrary object is unpickled)
``scheduler.pt``            LambdaLR state (same)
``rng.safetensors``         each rank's torch CPU and CUDA (its own device's) generator states, uint8 tensors
``rng.json``                each rank's Python ``random`` and NumPy global generator states
``trainer_state.json``      data position (epoch, batch in epoch, optimizer step), elapsed time, skipped-video
                            count, world size
``config.json``             the training config
==========================  ==================================================================================

An FSDP run writes a *sharded* checkpoint instead (`save_sharded_checkpoint`): ``model.safetensors`` and
``optimizer.pt`` are replaced by ``sharded/``, a ``torch.distributed.checkpoint`` (DCP) folder in which every rank
writes its own shards of the trainable parameters, buffers and AdamW states (``__<rank>_0.distcp``) and rank 0 the
``.metadata`` index; the other files are the same. DCP can read such a folder back into any number of processes
(the trainer still requires the same number, because the data position counts global batches). DCP's
``.metadata`` is a pickle: load only checkpoints your own runs wrote. `consolidate` gathers a sharded model into
the format `export_final` writes, for evaluation in a single process.

Only rank 0 writes (and every rank its own shards of a sharded checkpoint). Files go into a hidden temporary folder
next to the final one, are fsync'ed, and the folder is renamed into place with ``os.replace`` and its parent
fsync'ed: a process killed at any instant leaves either a complete checkpoint or a ``.tmp-*`` folder that is
ignored (and removed by `remove_stale_tmp`). `latest_checkpoint` picks the highest step; `prune_checkpoints` keeps
the last N.

The data order needs no state: the sampler's epoch order is a function of (seed, epoch) and datasets derive their
randomness from (seed, epoch, index). The generator states saved are the global ones that code draws from
implicitly (dropout uses torch's default generator), restored per rank so that dropout masks continue exactly.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file, save_model
from torch import nn
from torch.distributed.checkpoint import state_dict as dcp_state

from vlstudy.distributed import barrier, is_main_process

__all__ = ["CHECKPOINT_PREFIX", "TrainState", "capture_rng_state", "restore_rng_state", "trainable_state_dict",
           "save_checkpoint", "load_checkpoint", "SHARDED_DIR", "is_sharded", "save_sharded_checkpoint",
           "load_sharded_checkpoint", "read_checkpoint_info", "list_checkpoints", "latest_checkpoint",
           "prune_checkpoints", "remove_stale_tmp", "export_final", "consolidate"]

CHECKPOINT_PREFIX = "step_"
_TMP_PREFIX = ".tmp-"
SHARDED_DIR = "sharded"  # the DCP folder of a sharded checkpoint
# Frozen parameters are left out, as from full-tensor checkpoints; `_check_names` keeps loading strict.
_SHARDED = dcp_state.StateDictOptions(ignore_frozen_params=True, strict=False)


@dataclass
class TrainState:
    """The position of a run after `step` optimizer steps.

    Attributes:
        step: optimizer steps done.
        epoch: the epoch the next batch comes from (0-based).
        batch_in_epoch: global batches of that epoch already consumed.
        elapsed_s: training wall time so far, over all sessions of the run.
        skipped_videos: bad videos dropped by the collate function so far, summed over processes.
        world_size: processes the run was trained with (a resume must use as many).
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    skipped_videos: int = 0
    world_size: int = 1


def capture_rng_state() -> dict[str, Any]:
    """This process's global generator states: torch CPU and CUDA (uint8 tensors), Python and NumPy (JSON).

    Only the current CUDA device's state is taken (each process owns one GPU; touching the others would create a
    CUDA context on every GPU from every process).
    """
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    version, internal, gauss = random.getstate()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "python": [version, list(internal), gauss],
        "numpy": np_state,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global generators to a `capture_rng_state` result."""
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] is not None:
        torch.cuda.set_rng_state(state["torch_cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.asarray(np_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(np_state)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of ``model.state_dict()`` that training changes: trainable parameters and persistent buffers.

    Tied parameters appear once (under the name ``named_parameters`` gives them).
    """
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    all_params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return {name: tensor for name, tensor in model.state_dict().items() if name in trainable or name not in all_params}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished folder `tmp` to `final` atomically, replacing an older `final` if present."""
    for child in tmp.iterdir():
        _fsync(child)
    _fsync(tmp)
    if final.exists():
        old = final.with_name(f"{_TMP_PREFIX}old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync(final.parent)


def save_checkpoint(
    root: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainState, rng_states: list[dict[str, Any]],
    config: dict[str, Any],
) -> Path:
    """Write checkpoint ``root/step_<state.step>`` atomically (call on rank 0 only).

    Args:
        root: the checkpoints folder (created if missing).
        model: the unwrapped model (not the DDP wrapper), so names carry no ``module.`` prefix.
        optimizer: its state is saved with torch.save.
        scheduler: its state is saved with torch.save.
        state: the data position after `state.step` optimizer steps.
        rng_states: `capture_rng_state()` of every rank, in rank order.
        config: the training config as plain JSON values.

    Returns:
        The checkpoint folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{CHECKPOINT_PREFIX}{state.step:08d}"
    tmp = root / f"{_TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in trainable_state_dict(model).items()}
    save_file(weights, tmp / "model.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    _write_run_state(tmp, scheduler, state, rng_states, config)
    _replace_dir(tmp, final)
    return final


def _write_run_state(
    tmp: Path, scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainState,
    rng_states: list[dict[str, Any]], config: dict[str, Any],
) -> None:
    """The files every checkpoint has: scheduler, generator states, data position, config."""
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng_tensors = {}
    for r, rng in enumerate(rng_states):
        rng_tensors[f"rank{r}.torch_cpu"] = rng["torch_cpu"]
        if rng["torch_cuda"] is not None:
            rng_tensors[f"rank{r}.torch_cuda"] = rng["torch_cuda"]
    save_file(rng_tensors, tmp / "rng.safetensors")
    _write_json(tmp / "rng.json", [{"python": rng["python"], "numpy": rng["numpy"]} for rng in rng_states])
    _write_json(tmp / "trainer_state.json", asdict(state))
    _write_json(tmp / "config.json", config)


def _rng_state_of_rank(path: Path, rank: int) -> dict[str, Any]:
    tensors = load_file(path / "rng.safetensors")
    plain = json.loads((path / "rng.json").read_text(encoding="utf-8"))
    if f"rank{rank}.torch_cpu" not in tensors or rank >= len(plain):
        raise ValueError(f"{path}: holds generator states of {len(plain)} process(es), none for rank {rank}")
    return {"torch_cpu": tensors[f"rank{rank}.torch_cpu"], "torch_cuda": tensors.get(f"rank{rank}.torch_cuda"),
            **plain[rank]}


def read_checkpoint_info(path: Path) -> tuple[TrainState, dict[str, Any]]:
    """The data position and the training config saved in a checkpoint folder (nothing is loaded)."""
    state = TrainState(**json.loads((path / "trainer_state.json").read_text(encoding="utf-8")))
    return state, json.loads((path / "config.json").read_text(encoding="utf-8"))


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int = 0,
) -> tuple[TrainState, dict[str, Any]]:
    """Load a checkpoint into `model`, `optimizer` and `scheduler` (created as for a fresh run).

    Args:
        path: a checkpoint folder written by `save_checkpoint`.
        model: the unwrapped model, already on its device; trainable weights and buffers are overwritten.
        optimizer: built over the same parameter groups as when saved.
        scheduler: built over `optimizer` (before loading, as torch requires).
        rank: whose generator states to return.

    Returns:
        The data position and this rank's generator states (pass them to `restore_rng_state`).

    Raises:
        ValueError: if the saved weights do not match the model's trainable entries (names listed).
    """
    weights = load_file(path / "model.safetensors")
    _check_names(path / "model.safetensors", model, set(trainable_state_dict(model)), set(weights))
    model.load_state_dict(weights, strict=False)
    device = next(model.parameters()).device
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device, weights_only=True))
    return _read_run_state(path, scheduler, rank)


def _check_names(where: Path, model: nn.Module, expected: set[str], saved: set[str]) -> None:
    missing, unexpected = sorted(expected - saved), sorted(saved - expected)
    if missing or unexpected:
        def first(names: list[str]) -> str:
            return f"{names[:5]}{' ...' if len(names) > 5 else ''}"
        raise ValueError(f"{where} does not match {type(model).__name__}: missing {first(missing)}, "
                         f"unexpected {first(unexpected)}")


def _read_run_state(path: Path, scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int) -> tuple[TrainState, dict]:
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    state, _ = read_checkpoint_info(path)
    return state, _rng_state_of_rank(path, rank)


def is_sharded(path: Path) -> bool:
    """Whether checkpoint folder `path` was written by `save_sharded_checkpoint` (FSDP)."""
    return (path / SHARDED_DIR).is_dir()


def save_sharded_checkpoint(
    root: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainState, rng_states: list[dict[str, Any]] | None,
    config: dict[str, Any],
) -> Path:
    """Write sharded checkpoint ``root/step_<state.step>`` atomically and return it; a collective (every rank).

    Arguments are those of `save_checkpoint`, except: `root` must be on a file system every rank writes to;
    `model` is the model whose blocks FSDP sharded (not the root wrapper, so names are the model's); `rng_states`
    is the list of every rank's states on rank 0 (`gather_to_main`) and None elsewhere.
    """
    final = root / f"{CHECKPOINT_PREFIX}{state.step:08d}"
    tmp = root / f"{_TMP_PREFIX}{final.name}-sharded"  # one name for all ranks
    if is_main_process():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    model_state, optim_state = dcp_state.get_state_dict(model, optimizer, options=_SHARDED)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp / SHARDED_DIR)  # fsyncs its files
    if is_main_process():
        _write_run_state(tmp, scheduler, state, rng_states, config)
        _replace_dir(tmp, final)
    barrier()
    return final


def load_sharded_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int,
) -> tuple[TrainState, dict[str, Any]]:
    """`load_checkpoint` for a sharded checkpoint and an FSDP-sharded `model`; a collective (every rank).

    Strict like `load_checkpoint`: the saved entries must be the model's trainable parameters and buffers.
    """
    model_state, optim_state = dcp_state.get_state_dict(model, optimizer, options=_SHARDED)
    saved = dcp.FileSystemReader(path / SHARDED_DIR).read_metadata().state_dict_metadata
    saved_model = {name.removeprefix("model.") for name in saved if name.startswith("model.")}
    _check_names(path / SHARDED_DIR, model, set(model_state), saved_model)
    loaded = {"model": model_state, "optim": optim_state}
    dcp.load(loaded, checkpoint_id=path / SHARDED_DIR)
    dcp_state.set_state_dict(model, optimizer, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"],
                   options=_SHARDED)
    return _read_run_state(path, scheduler, rank)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders under `root`, by increasing step (temporary folders are ignored)."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        suffix = child.name.removeprefix(CHECKPOINT_PREFIX)
        if child.is_dir() and child.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
            found.append((int(suffix), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint with the highest step under `root`, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def prune_checkpoints(root: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` (>= 1) most recent checkpoints; returns the deleted folders."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (the latest checkpoint is what a resume needs), got {keep}")
    old = list_checkpoints(root)[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old


def remove_stale_tmp(root: Path) -> None:
    """Remove temporary folders that a killed writer left under `root`."""
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(_TMP_PREFIX):
                shutil.rmtree(child, ignore_errors=True)


@contextmanager
def _presenting(model: nn.Module, state_dict: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Make ``model.state_dict()`` return `state_dict` (if not None) inside the block: a model's own
    ``save_pretrained`` reads its weights through it, and a sharded model's would be DTensor shards."""
    if state_dict is None:
        yield
        return
    model.state_dict = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        del model.state_dict


def export_final(model: nn.Module, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Export the whole model to `folder` atomically: its own ``save_pretrained`` if it has one, else
    ``model.safetensors`` with the full state dict (shared tensors stored once, as safetensors' save_model does).

    `state_dict` (`consolidate` passes the one it gathered) is written instead of ``model.state_dict()``; a
    ``save_pretrained`` that takes ``state_dict=`` (Hugging Face's) receives it as that argument. `folder` is
    replaced if it exists.
    """
    tmp = folder.with_name(f"{_TMP_PREFIX}{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save = getattr(model, "save_pretrained", None) or (lambda out: save_model(model, str(out / "model.safetensors")))
    if state_dict is not None and "state_dict" in inspect.signature(save).parameters:
        save(tmp, state_dict=state_dict)
    else:
        with _presenting(model, state_dict):
            save(tmp)
    _replace_dir(tmp, folder)
    return folder


def consolidate(model: nn.Module, folder: Path) -> Path:
    """Export an FSDP-sharded model like `export_final`, gathering its full weights; a collective.

    Every rank sends its shards; rank 0 receives the full state dict on the CPU
    (``get_model_state_dict(full_state_dict=True, cpu_offload=True)``, so GPU memory never holds the whole model)
    and writes `folder`. The result loads into an unsharded model in one process, e.g. for evaluation.
    """
    options = dcp_state.StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = dcp_state.get_model_state_dict(model, options=options)
    if is_main_process():
        export_final(model, folder, state_dict=full)
    barrier()
    return folder
