"""Strict, safetensors-only loading of the study's Hugging Face models and of the checkpoints they start from.

transformers' ``save_pretrained`` / ``from_pretrained`` do the file work (``config.json`` + ``model.safetensors``,
sharding, dtype, meta-device initialisation). Two things are added here, in a few lines each:

- **Strictness.** ``from_pretrained`` only *reports* missing, unexpected and wrongly shaped tensors (a warning
  table) and initialises what is missing. A study must not train on silently re-initialised weights, so
  `check_loading` turns the report into an error that names the tensors and the file:

      CheckpointError: ckpt/model.safetensors: missing tensors ['abstractor.queries'] (in MPLUGVideoModel, not in
      the file)

  except for an explicit allow-list per model class (`StrictPreTrainedModel.task_heads`): a task head that a
  backbone checkpoint does not have yet is initialised, a head of another task is dropped, and both are logged.
- **No pickles.** Only safetensors are read (``use_safetensors=True``; a ``pytorch_model.bin`` is refused by name,
  `weights_file`), and only from local folders: nothing is downloaded.

Saving is atomic per file (`vlstudy.io.staged_directory`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from transformers import PreTrainedModel

from vlstudy.io import staged_directory

__all__ = ["CheckpointError", "weights_file", "check_loading", "load_strict", "StrictPreTrainedModel"]

logger = logging.getLogger("vlstudy.models")

SAFE_NAMES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """A checkpoint whose contents do not fit the model; the message names the file and the tensors."""


def weights_file(directory: str | Path) -> Path:
    """The safetensors weights of a local model folder (``model.safetensors`` or its shard index).

    Raises:
        FileNotFoundError: no such folder, or no weights in it.
        CheckpointError: the folder holds only pickled PyTorch weights (``pytorch_model.bin``), which are never
            loaded (unpickling runs code from the file).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model folder (models load from local folders only)")
    for name in SAFE_NAMES:
        if (directory / name).is_file():
            return directory / name
    for name in PICKLE_NAMES:
        if (directory / name).is_file():
            raise CheckpointError(
                f"{directory / name}: pickled PyTorch weights are not loaded (use_safetensors=True); convert them "
                f"once where the file is trusted, e.g. AutoModel.from_pretrained(dir).save_pretrained(new_dir)")
    raise FileNotFoundError(f"{directory / SAFE_NAMES[0]}: no such file")


def _names(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{keys[:limit]}{more}"


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def check_loading(info: dict, source: Path, model_name: str, allowed_missing: tuple[str, ...] = (),
                  allowed_unexpected: tuple[str, ...] = ()) -> None:
    """Raise unless a ``from_pretrained(..., output_loading_info=True)`` report is clean, allow-lists apart.

    Args:
        info: the loading report: ``missing_keys``, ``unexpected_keys``, ``mismatched_keys`` (key, shape in the
            file, shape in the model) and ``error_msgs``.
        source: the weights file, for the message.
        model_name: the model class, for the message.
        allowed_missing: regexes (``re.match``) of tensors the file may lack; they were initialised (logged).
        allowed_unexpected: regexes of tensors the file may hold that the model does not use (dropped, logged).

    Raises:
        CheckpointError: naming the file and every offending tensor.
    """
    def allowed(key: str, patterns: tuple[str, ...]) -> bool:
        return any(re.match(p, key) for p in patterns)

    missing = [k for k in info["missing_keys"] if not allowed(k, allowed_missing)]
    unexpected = [k for k in info["unexpected_keys"] if not allowed(k, allowed_unexpected)]
    problems = [f"tensor '{key}' has shape {_shape(saved)} in the file but {_shape(wanted)} in the model"
                for key, saved, wanted in sorted(info["mismatched_keys"])]
    if missing:
        problems.append(f"missing tensors {_names(missing)} (in {model_name}, not in the file)")
    if unexpected:
        problems.append(f"unexpected tensors {_names(unexpected)} (in the file, not in {model_name})")
    problems += list(info.get("error_msgs", []))
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))
    initialised = set(info["missing_keys"])
    dropped = set(info["unexpected_keys"])
    if initialised:
        logger.info("%s: %s initialised (not in %s)", model_name, _names(initialised), source)
    if dropped:
        logger.info("%s: %s in %s dropped (not used by this class)", model_name, _names(dropped), source)


def _not_a_load_report(record: logging.LogRecord) -> bool:
    """False for transformers' loading report and its warning that both halves of a tied pair are absent (a task
    head the checkpoint lacks): `check_loading` reports, or refuses, the same tensors itself."""
    message = record.getMessage()
    return "LOAD REPORT" not in message and "This checkpoint seem corrupted" not in message


@contextlib.contextmanager
def _own_report() -> Iterator[None]:
    """Drop transformers' loading-report table for one call: `check_loading` reports (or raises) instead."""
    report = logging.getLogger("transformers.modeling_utils")
    report.addFilter(_not_a_load_report)
    try:
        yield
    finally:
        report.removeFilter(_not_a_load_report)


def load_strict(model_class: Any, directory: str | Path, allowed_missing: tuple[str, ...] = (),
                allowed_unexpected: tuple[str, ...] = (), **kwargs: Any) -> PreTrainedModel:
    """``model_class.from_pretrained(directory)`` from local safetensors only, strictly (see `check_loading`).

    `model_class` may be any transformers class (``AutoModelForCausalLM``, ``CLIPVisionModel``, ...); `kwargs` go
    to ``from_pretrained`` (e.g. ``dtype``).
    """
    source = weights_file(directory)
    with _own_report():
        model, info = model_class.from_pretrained(
            directory, use_safetensors=True, local_files_only=True, output_loading_info=True,
            ignore_mismatched_sizes=True, **kwargs)
    check_loading(info, source, type(model).__name__, allowed_missing, allowed_unexpected)
    return model


class StrictPreTrainedModel(PreTrainedModel):
    """A ``PreTrainedModel`` that loads local safetensors strictly and saves atomically.

    A model family is a backbone class and task classes that add small heads to it (same state-dict names for
    the backbone in every class), so a checkpoint of any class of the family loads into any other:

    - `task_heads`: the head modules this class adds. A checkpoint that lacks them is fine: they are initialised
      and logged (a classification head on a pre-trained backbone).
    - `family_heads`: every head of the family. Those the checkpoint has and this class lacks are dropped and
      logged (the contrastive head of a pre-training checkpoint, loaded for captioning).

    Anything else missing, unexpected or wrongly shaped is a `CheckpointError` naming the tensors and the file.
    """

    task_heads: ClassVar[tuple[str, ...]] = ()
    family_heads: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def allowed_keys(cls) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(allowed missing, allowed unexpected) key regexes of this class."""
        own = tuple(rf"{re.escape(h)}\." for h in cls.task_heads)
        other = tuple(rf"{re.escape(h)}\." for h in cls.family_heads if h not in cls.task_heads)
        return own, other

    @classmethod
    def from_pretrained(cls, directory: str | Path, *args: Any, **kwargs: Any) -> StrictPreTrainedModel:
        """Load a folder written by `save_pretrained` (local safetensors only), strictly.

        Raises:
            FileNotFoundError: no such folder or weights file.
            CheckpointError: pickled weights, or missing / unexpected / wrongly shaped tensors (named, with the
                file), outside this class's allow-lists.
        """
        missing, unexpected = cls.allowed_keys()
        source = weights_file(directory)
        kwargs = {**cls.saved_init_kwargs(directory), **kwargs}
        with _own_report():
            model, info = super().from_pretrained(
                directory, *args, use_safetensors=True, local_files_only=True, output_loading_info=True,
                ignore_mismatched_sizes=True, **kwargs)
        check_loading(info, source, cls.__name__, missing, unexpected)
        return model

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> None:
        """``PreTrainedModel.save_pretrained`` into a staging folder whose files then replace those of
        `directory` one by one (`vlstudy.io.staged_directory`): an interrupted save leaves no half-written file."""
        with staged_directory(directory) as staging:
            super().save_pretrained(staging, **kwargs)
            self.save_extras(staging)

    def save_extras(self, directory: Path) -> None:
        """Files saved beside the weights (e.g. a tokenizer); nothing by default."""

    @classmethod
    def saved_init_kwargs(cls, directory: str | Path) -> dict[str, Any]:
        """Constructor arguments besides the config that a saved folder holds (read back from `save_extras`'s
        files); ``from_pretrained`` passes them, and so can code that builds an untrained model of a saved
        architecture: ``cls(config, **cls.saved_init_kwargs(directory))``."""
        return {}
