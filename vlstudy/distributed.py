"""Process-group helpers for torchrun (DDP): set-up from torchrun's environment, rank queries, collectives.

``torchrun --nproc_per_node=N`` (torch.distributed.run) starts N processes and tells each its place through the
environment: RANK (global), LOCAL_RANK (on this node), WORLD_SIZE, MASTER_ADDR/MASTER_PORT. `setup_distributed`
reads them and joins the process group: NCCL when CUDA is available (one GPU per process, cuda:LOCAL_RANK), gloo
on CPU. See docs/distributed.md for launching on one or several nodes.

Contrastive losses need every process's features as negatives; `all_gather_with_grad` concatenates them
along dim 0 and keeps the gradient path to this process's slice (torch.distributed.nn.functional.all_gather,
whose backward sums the gradients that all processes' losses send to each slice).
Without an initialised process group every helper is the single-process identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "setup_distributed",
    "cleanup_distributed",
    "is_distributed",
    "rank",
    "world_size",
    "is_main_process",
    "barrier",
    "all_reduce_sum",
    "gather_to_main",
    "all_gather_with_grad",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: global rank, rank on its node, number of processes, and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def setup_distributed() -> DistInfo:
    """Join torchrun's process group if WORLD_SIZE > 1 (idempotent); otherwise describe the single process.

    Returns:
        The process's rank, local rank, world size and device (cuda:LOCAL_RANK with CUDA, else cpu).
    """
    world = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if cuda else "gloo", device_id=device if cuda else None)
    return DistInfo(rank=rank(), local_rank=local_rank, world_size=world_size(), device=device)


def cleanup_distributed() -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the one process that writes logs, checkpoints and exports."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `x` over all processes (a new tensor; `x` itself is not changed)."""
    x = x.clone()
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def gather_to_main(obj: Any) -> list[Any] | None:
    """Each process's picklable `obj`, in rank order, on rank 0; None on the other ranks."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size() if is_main_process() else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's `x` in rank order, keeping gradients.

    Args:
        x: (B, ...) on each of W processes (B equal on all).

    Returns:
        (W*B, ...), rows [r*B, (r+1)*B) from rank r; gradients flow back to each process's own slice.
    """
    if not is_distributed() or world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
