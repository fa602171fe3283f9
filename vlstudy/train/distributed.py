"""Process-group helpers for torchrun (DDP): rank/world queries and a differentiable all-gather.

Contrastive losses need every process's features as negatives; `all_gather_with_grad` concatenates them
along dim 0 and keeps the gradient path to this process's slice (torch.distributed.nn.functional.all_gather).
Without an initialised process group every helper is the single-process identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "rank", "world_size", "all_gather_with_grad"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on each of W processes → (W*B, ...) in rank order; gradients flow back to each local slice."""
    if not is_distributed() or world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
