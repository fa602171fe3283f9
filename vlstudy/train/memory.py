"""Activation memory of a training step: the bytes autograd keeps for the backward pass.

Peak-RSS or CUDA allocator statistics mix activations with weights, gradients, optimizer state and allocator
caching; the tensors autograd saves for backward *are* the activation memory, and ``torch.autograd.graph.
saved_tensors_hooks`` sees each of them as it is saved. Under activation checkpointing a checkpointed block saves
only its inputs in the forward pass and recomputes the rest in the backward pass, so the figure shows what
checkpointing saves, on any device. Storages are counted once (views of one tensor share it); parameters are not
counted (they are saved by reference and live anyway).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["saved_activation_bytes"]


def saved_activation_bytes(fn: Callable[[], torch.Tensor], model: nn.Module | None = None) -> int:
    """Run ``fn()`` (a forward pass returning a scalar loss) and its backward pass; return the bytes of the distinct
    tensor storages autograd saved for backward during the forward, parameters of `model` excluded.

    Recomputation inside the backward pass (checkpointed blocks) saves tensors too, but only one block's at a time
    and they are freed as the backward pass goes on; they are not counted.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()} if model is not None else set()
    storages: dict[int, int] = {}
    recording = True

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if recording and storage.data_ptr() not in params and tensor.device.type != "meta":
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = fn()
        recording = False
        loss.backward()
    return sum(storages.values())
