"""Checkpoint files shared by the vlstudy models: a JSON config beside a safetensors file of weights.

A model directory holds ``config.json`` (the model's dataclass config, written with `vlstudy.config.to_dict`
and read back with `vlstudy.config.from_dict`, so a bad key is named) and ``model.safetensors``. Writes are
atomic: files are written into a temporary sibling folder and each is moved into place with `os.replace`, so
an interrupted save never leaves a half-written file under the final name.

Loading is strict, and every failure names the file and the tensor:

    CheckpointError: ckpt/model.safetensors: tensor 'abstractor.queries' has shape (1, 32, 128) in the file
    but (1, 16, 128) in the model

`torch.nn.Module.load_state_dict` reports the same problems, but lists all keys at once without the file; the
checks here are a few lines that give one precise message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vlstudy.config import from_dict, to_dict
from vlstudy.io import staged_directory

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CheckpointError", "staged_directory", "write_checkpoint", "read_config",
           "read_tensors", "load_tensors_into"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

C = TypeVar("C")


class CheckpointError(ValueError):
    """A checkpoint whose contents do not fit the model; the message names the file and the tensor."""


def write_checkpoint(folder: Path, config: object, tensors: dict[str, torch.Tensor]) -> None:
    """Write `config` (a dataclass) as ``config.json`` and `tensors` as ``model.safetensors`` into `folder`.

    Call it on the folder `staged_directory` yields, so the files reach their final place atomically.
    """
    (folder / CONFIG_NAME).write_text(json.dumps(to_dict(config), ensure_ascii=False, indent=2) + "\n",
                                      encoding="utf-8")
    save_file({name: t.detach().contiguous().cpu() for name, t in tensors.items()}, str(folder / WEIGHTS_NAME))


def read_config(directory: str | Path, cls: type[C]) -> C:
    """The dataclass config saved in ``directory/config.json``; errors name the file and the key."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
    return from_dict(cls, data, where=str(path))


def read_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``directory/model.safetensors``, on the CPU."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(n) for n in t.shape) + ")"


def load_tensors_into(module: nn.Module, tensors: dict[str, torch.Tensor], source: str | Path,
                      skip_prefixes: tuple[str, ...] = ()) -> None:
    """Copy `tensors` into `module`'s parameters and buffers, strictly.

    Args:
        module: the model to fill.
        tensors: name → tensor, names as in ``module.state_dict()``.
        source: the file the tensors came from, for error messages.
        skip_prefixes: state-dict names starting with one of these are not expected in `tensors` (a frozen part
            saved elsewhere, such as the mPLUG-video LM).

    Raises:
        CheckpointError: a tensor missing from `tensors`, one the module does not have, or a shape mismatch.
    """
    expected = {name: t for name, t in module.state_dict().items() if not name.startswith(skip_prefixes)}
    for name in tensors:
        if name not in expected:
            raise CheckpointError(f"{source}: unexpected tensor '{name}' (not in {type(module).__name__})")
    for name, target in expected.items():
        if name not in tensors:
            raise CheckpointError(f"{source}: missing tensor '{name}'")
        if tensors[name].shape != target.shape:
            raise CheckpointError(f"{source}: tensor '{name}' has shape {_shape(tensors[name])} in the file "
                                  f"but {_shape(target)} in the model")
    module.load_state_dict(tensors, strict=False)
