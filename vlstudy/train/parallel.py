"""How the trainer spreads a model over processes: DDP (the default) or FSDP2, and bf16 autocast.

DDP (``torch.nn.parallel.DistributedDataParallel``) keeps a full copy of the model, its gradients and the AdamW
states in every process and averages gradients once per optimizer step. FSDP2
(``torch.distributed.fsdp.fully_shard``, PyTorch's fully sharded data parallelism, Zhao et al., VLDB 2023) stores
each parameter, its gradient and its AdamW states as a 1/W shard (a DTensor) per process and gathers a block's
full parameters only while that block runs, so per-process memory for the model states falls by W. The sharding
follows the recipe of PyTorch's FSDP2 tutorial and torchtitan (``parallelize_llama``): one `fully_shard` per
transformer block, then one on the root; the optimizer is built afterwards over the sharded parameters.

Both wrap a `LossModule`, ``fn(model, *args)`` as a module call, so the wrapper's forward covers everything a loss
or an evaluation does: a loss may call any model method (``model.encode_video(...)``), not only ``model(...)``,
and gradients are still synchronised (DDP) and parameters still gathered (FSDP: the root's hook gathers the
parameters outside the blocks; each block's hook gathers its own when it is called). Under FSDP the evaluation
function runs through the same call.

Which blocks are sharded one by one (`fsdp_units`): a model may list them with a method ``fsdp_units()``;
otherwise every module whose class name appears in a ``_no_split_modules`` attribute (Hugging Face models declare
their transformer blocks so: ``GPT2Block``, ``TimesformerLayer``) and every element of an ``nn.ModuleList`` that has
parameters (the layer stacks of the kit's models and of transformers), outermost only. Frozen blocks are sharded
too (a frozen LM's memory is split as well; FSDP2 lets frozen and trainable parameters share a block). Tied
parameters must live in one unit (GPT-2's tied embedding and head both stay in the root).

FSDP2 cannot shard 0-d parameters (a contrastive temperature, ``MPLUGVideoForContrastive.contrastive.temp``): those stay whole on every
process, outside FSDP (``ignored_params``), and a hook averages their gradients over processes as DDP would, each
time one is accumulated (averaging a sum that is already equal on every process changes nothing, so accumulated
micro-batches stay correct). `clip_grad_norm` combines the norms of the sharded and the whole gradients.

Precision. ``precision="auto"`` autocasts the forward pass to bf16 on CUDA and keeps fp32 on CPU. Under FSDP on
CUDA the same choice also gives a `MixedPrecisionPolicy` with bf16 parameters for compute and fp32 gradient
reduction; shards, gradients and AdamW states stay fp32. On CPU FSDP runs fp32 (bf16 is slower than fp32 on CPUs
without AMX).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.distributed
from torch import nn
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from vlstudy.distributed import DistInfo, all_reduce_sum, world_size

__all__ = ["Parallel", "LossModule", "autocast_dtype", "fsdp_units", "shard_fsdp", "wrap_ddp", "to_device",
           "gradient_sync", "clip_grad_norm"]

Parallel = Literal["ddp", "fsdp"]


class LossModule(nn.Module):
    """``fn(model, *args)`` as the forward of a module that holds `model`, so that a DDP or FSDP wrapper around
    it covers the whole computation of a loss (or an evaluation) whatever model methods `fn` calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.model, *args)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` ("auto", "fp32", "bf16") on `device`; None means fp32 (no autocast).

    Raises:
        ValueError: if bf16 is asked for on a CUDA device without bf16 support.
    """
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision={precision!r} needs bf16, which {torch.cuda.get_device_name(device)} lacks")
    return torch.bfloat16


def fsdp_units(model: nn.Module) -> list[nn.Module]:
    """The modules that `shard_fsdp` shards one by one, in module order (see the module docstring for the rule).

    Example: mPLUG-video gives its LM's ``GPT2Block``s, its ``TimesformerLayer``s and its abstractor blocks
    (registration order); embeddings, final norms and heads stay in the root unit.
    """
    declared_units = getattr(model, "fsdp_units", None)
    if callable(declared_units):
        return list(declared_units())
    declared = {name for m in model.modules() for name in (getattr(m, "_no_split_modules", None) or ())}
    units: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            in_stack = isinstance(module, nn.ModuleList) and any(True for _ in child.parameters())
            if in_stack or type(child).__name__ in declared:
                units.append(child)
            else:
                visit(child)

    visit(model)
    return units


def shard_fsdp(root: nn.Module, model: nn.Module, param_dtype: torch.dtype | None) -> list[nn.Module]:
    """Apply FSDP2 in place: `fully_shard` each of ``fsdp_units(model)``, then `root` (which contains `model`).

    Call it after moving the model to its device and before building the optimizer (which must see the sharded
    DTensor parameters). Every process must call it, with the same architecture; the weights and buffers of rank 0
    are broadcast first, as DDP does when it wraps a model, so a builder that drew different random weights on
    each process still starts every process from one model.

    Args:
        root: the module whose forward every training and evaluation call goes through (a `LossModule`).
        model: the model inside `root` whose blocks are sharded.
        param_dtype: the compute dtype of gathered parameters (bf16 on CUDA), or None for fp32.

    Returns:
        The units sharded (the root not included).
    """
    with torch.no_grad():
        for tensor in [*root.parameters(), *root.buffers()]:
            torch.distributed.broadcast(tensor, src=0)
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    scalars = {p for p in root.parameters() if p.ndim == 0}  # FSDP2 needs a dimension to shard
    units = fsdp_units(model)
    for unit in units:
        fully_shard(unit, mp_policy=policy, ignored_params=scalars & set(unit.parameters()))
    fully_shard(root, mp_policy=policy, ignored_params=scalars)
    for p in scalars:
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(_average_gradient)
    return units


def _average_gradient(param: torch.Tensor) -> None:
    """Replace a whole (unsharded) parameter's gradient by its mean over the processes."""
    param.grad.copy_(all_reduce_sum(param.grad) / world_size())


def wrap_ddp(module: nn.Module, dist: DistInfo, find_unused_parameters: bool) -> DistributedDataParallel:
    """`module` in DDP on this process's device (frozen parameters are ignored by DDP)."""
    return DistributedDataParallel(
        module, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts/lists/tuples to `device`; other values are returned unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@contextmanager
def gradient_sync(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Synchronise gradients in the backward passes inside this block only if `enabled` (the last micro-batch
    of an accumulated step): DDP's ``no_sync()``, FSDP's ``set_requires_gradient_sync``; a no-op otherwise."""
    if isinstance(module, DistributedDataParallel) and not enabled:
        with module.no_sync():
            yield
    else:
        if isinstance(module, FSDPModule):
            module.set_requires_gradient_sync(enabled)
        yield


def clip_grad_norm(parameters: list[torch.Tensor], max_norm: float) -> float:
    """Clip the global gradient norm of `parameters` to `max_norm`; returns the norm before clipping.

    Plain gradients (one process, DDP) go through ``torch.nn.utils.clip_grad_norm_``. With FSDP most gradients are
    DTensor shards, whose norm torch computes over all processes; the whole ones (0-d parameters) are added here,
    and every gradient is scaled by ``min(1, max_norm / (norm + 1e-6))`` as ``clip_grad_norm_`` does. The norm is
    the same number on every process.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    sharded = [g for g in grads if isinstance(g, DTensor)]
    if not sharded:
        return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    whole = [g for g in grads if not isinstance(g, DTensor)]
    squares = torch.nn.utils.get_total_norm(sharded).full_tensor() ** 2
    if whole:
        squares = squares + torch.nn.utils.get_total_norm(whole).to(squares.device) ** 2
    norm = float(squares.sqrt())
    scale = min(1.0, max_norm / (norm + 1e-6))
    for g in grads:
        g.mul_(scale)
    return norm
