"""AdamW parameter groups and the per-step warmup-then-cosine learning-rate schedule.

Follows the official Youku-mPLUG training set-up (shared/DESIGN.md, "Optimisation"): AdamW with weight decay
0.05, betas (0.9, 0.999), a learning rate that rises linearly from 0 over `warmup_steps` optimizer steps and then
follows a half cosine down to `min_lr` at `max_steps`; the video encoder trains at 0.1x the learning rate when it
starts from a pretrained image model (CLIP), as in mPLUG-2 / mPLUG-Owl's ``lr_mult`` groups.

Which parameters are decayed follows nanoGPT (``configure_optimizers``) and OpenCLIP (``exclude`` in
``main.py``): weight decay shrinks matrices of linear/convolutional maps only. Excluded are

* biases and every vector or scalar parameter (``ndim < 2``: norm gains, learnable temperatures);
* all weights of normalisation layers (torch's norms and any module whose class name contains "Norm", which
  catches the RMSNorm/LayerNorm classes that model code defines itself) and of ``nn.Embedding``;
* learnable tokens and position tables registered directly on a module, recognised by the parameter's own name
  (the last component of its dotted name): ``pos_embed``, ``position_embed*``, ``time_embed*``, ``temporal*``,
  ``cls_token``, ``query*``/``queries``. Only the last component is matched, so the ``weight`` of a linear layer
  called ``query`` (BERT's attention) or ``temporal_dense`` (TimeSformer) is still decayed.

The schedule is a `torch.optim.lr_scheduler.LambdaLR` whose factor multiplies each group's own learning rate,
so a group at 0.1x stays at 0.1x of the schedule throughout (including its floor, 0.1 * min_lr).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch
from torch import nn

__all__ = [
    "NO_DECAY_NAME_KEYS",
    "is_no_decay",
    "lr_scale_for",
    "param_groups",
    "build_optimizer",
    "warmup_cosine_factor",
    "build_scheduler",
    "group_lrs",
]

# Substrings of a parameter's own (last) name that mark a learnable token or position/time table.
NO_DECAY_NAME_KEYS = ("pos_embed", "position_embed", "time_embed", "temporal", "cls_token", "query", "queries")

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm, nn.modules.batchnorm._NormBase)
_EMBEDDING_TYPES = (nn.Embedding, nn.EmbeddingBag)


def is_no_decay(name: str, param: torch.Tensor, module: nn.Module) -> bool:
    """Whether parameter `name` (dotted, as in ``named_parameters``) of `module` (its owner) skips weight decay."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "bias" or param.ndim < 2:
        return True
    if isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower():
        return True
    if isinstance(module, _EMBEDDING_TYPES):
        return True
    return any(key in leaf for key in NO_DECAY_NAME_KEYS)


def lr_scale_for(name: str, lr_scale: Mapping[str, float]) -> tuple[str, float]:
    """The longest prefix of `lr_scale` that owns parameter `name`, and its multiplier (("", 1.0) if none).

    A prefix owns a name when it equals the name or is followed by a dot in it: ``"video_encoder"`` owns
    ``video_encoder.blocks.0.attn.qkv.weight`` but not ``video_encoder_proj.weight``.
    """
    best = ""
    for prefix in lr_scale:
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return best, (lr_scale[best] if best else 1.0)


def _owners(model: nn.Module) -> dict[str, nn.Module]:
    """Map each parameter's dotted name to the module that registers it directly."""
    return {
        f"{module_name}.{p_name}" if module_name else p_name: module
        for module_name, module in model.named_modules()
        for p_name, _ in module.named_parameters(recurse=False)
    }


def param_groups(
    model: nn.Module, *, lr: float, weight_decay: float, lr_scale: Mapping[str, float] | None = None
) -> list[dict]:
    """Split the trainable parameters of `model` into AdamW groups by (lr prefix, decay / no decay).

    Args:
        model: the model; only parameters with ``requires_grad`` are included (frozen parts are skipped).
        lr: the base (peak) learning rate.
        weight_decay: the decay of the "decay" groups; "no_decay" groups get 0.
        lr_scale: module-name prefix → learning-rate multiplier, e.g. ``{"video_encoder": 0.1}``.

    Returns:
        Non-empty groups, each a dict with ``name`` (``"<prefix or default>.decay"`` / ``".no_decay"``),
        ``params`` as ``(name, tensor)`` pairs (torch keeps the names as ``param_names``), ``lr``,
        ``lr_scale`` and ``weight_decay``.

    Raises:
        ValueError: if the model has no trainable parameter, or a prefix of `lr_scale` owns none of them
            (a typo would otherwise train that module at the full learning rate silently).
    """
    lr_scale = dict(lr_scale or {})
    owners = _owners(model)
    groups: dict[str, dict] = {}
    used_prefixes = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix, scale = lr_scale_for(name, lr_scale)
        used_prefixes.add(prefix)
        no_decay = is_no_decay(name, param, owners[name])
        key = f"{prefix or 'default'}.{'no_decay' if no_decay else 'decay'}"
        group = groups.setdefault(
            key,
            {"name": key, "params": [], "lr": lr * scale, "lr_scale": scale,
             "weight_decay": 0.0 if no_decay else weight_decay},
        )
        group["params"].append((name, param))
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameter (all have requires_grad=False)")
    unused = sorted(set(lr_scale) - used_prefixes)
    if unused:
        raise ValueError(f"lr_scale prefix {unused[0]!r} matches no trainable parameter of {type(model).__name__}")
    return list(groups.values())


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    lr_scale: Mapping[str, float] | None = None,
) -> torch.optim.AdamW:
    """AdamW over `param_groups(model, ...)`."""
    groups = param_groups(model, lr=lr, weight_decay=weight_decay, lr_scale=lr_scale)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def warmup_cosine_factor(step: int, *, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """The learning-rate multiplier at optimizer step `step` (0-based: the factor the next update uses).

    Linear from 0 at step 0 to 1 at `warmup_steps`, then a half cosine from 1 to `min_ratio` (= min_lr / lr) at
    `max_steps`, constant after that. With ``warmup_steps=0`` the first update uses the full rate.
    """
    if step < warmup_steps:
        return step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR to be stepped once per optimizer step, scaling every group's lr by `warmup_cosine_factor`."""
    factor = functools.partial(
        warmup_cosine_factor, warmup_steps=warmup_steps, max_steps=max_steps, min_ratio=min_lr / lr
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current learning rate of each named group (for the training log)."""
    return {group["name"]: group["lr"] for group in optimizer.param_groups}

