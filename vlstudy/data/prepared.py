"""Reading what the ``data`` stage wrote: the prepared record tables and their manifest.

A light module on purpose: every training and evaluation task reads prepared splits, and DVC derives each stage's
code dependencies from its imports (`vlstudy.pipeline.deps`), so reading must not import the construction filters
(`vlstudy.data.prepare` writes; this module reads).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vlstudy.data.schema import read_table
from vlstudy.io import read_json

__all__ = ["POOL", "AbsentSplitError", "read_manifest", "present_in_manifest", "has_split", "require_present", "load_split",
           "parse_split", "load_splits"]

POOL = "pool"
_TASKS, _SPLITS = ("classification", "captioning", "retrieval"), ("train", "val", "test")


class AbsentSplitError(FileNotFoundError):
    """A stage asked for a split that the ingested copy of the release does not include (manifest.json)."""


def read_manifest(data_dir: str | Path) -> dict:
    """The ``manifest.json`` of a prepared data folder (written by `write_prepared`)."""
    return read_json(Path(data_dir) / "manifest.json")


def present_in_manifest(manifest: dict, task: str, split: str = POOL) -> bool:
    """Whether the prepared data holds `task`/`split` (``"pretrain", "pool"`` for the pool): a later stage asks
    this and skips, with a line in its report, what the release did not include."""
    entry = manifest["pool"] if task == "pretrain" else manifest["splits"].get(f"{task}_{split}", {"present": False})
    return bool(entry.get("present", True))  # manifests before partial releases held every split


def has_split(data_dir: str | Path, task: str, split: str = POOL) -> bool:
    """Whether `task`/`split` is in the prepared data (True without a manifest: not prepared yet). An optional
    output, such as test-split predictions, is left out when the release holds no such split."""
    return not (Path(data_dir) / "manifest.json").is_file() or present_in_manifest(read_manifest(data_dir), task,
                                                                                   split)


def require_present(data_dir: str | Path, task: str, split: str = POOL) -> None:
    """Raise `AbsentSplitError` when the prepared data in `data_dir` records `task`/`split` as absent.

    A folder without a manifest (not prepared yet) passes: the caller's own "file not found" then applies.
    """
    if not (Path(data_dir) / "manifest.json").is_file():
        return
    if not present_in_manifest(read_manifest(data_dir), task, split):
        name = "the pre-training pool" if task == "pretrain" else f"the {task} {split} split"
        raise AbsentSplitError(f"{data_dir}: {name} is absent from the ingested copy of the release (manifest.json "
                               "lists it under 'absent'); skip this stage or add its CSV to source.root")


def load_split(data_dir: str | Path, task: str, split: str) -> pd.DataFrame:
    """The prepared record table ``<data_dir>/<task>_<split>.parquet`` (``pretrain.parquet`` for the pool)."""
    name = "pretrain.parquet" if task == "pretrain" else f"{task}_{split}.parquet"
    path = Path(data_dir) / name
    require_present(data_dir, task, split)  # AbsentSplitError: the release holds no such split
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prepared split; run the data stage first (dvc repro data)")
    return read_table(path)


def parse_split(spec: str, where: str = "split") -> tuple[str, tuple[str, ...]]:
    """``"captioning/val+test"`` → ``("captioning", ("val", "test"))``: one benchmark task's splits, pooled in order.

    Raises:
        ValueError: not ``task/split[+split...]`` with a benchmark task and distinct train / val / test splits,
            naming `where`.
    """
    task, sep, splits = str(spec).partition("/")
    parts = tuple(splits.split("+")) if sep else ()
    if task not in _TASKS or not parts or any(s not in _SPLITS for s in parts) or len(set(parts)) < len(parts):
        raise ValueError(f"{where}: {spec!r} is not 'task/split[+split...]' with a task of {', '.join(_TASKS)} and "
                         f"distinct splits of {', '.join(_SPLITS)} (e.g. 'captioning/test', 'captioning/val+test')")
    return task, parts


def load_splits(data_dir: str | Path, spec: str) -> pd.DataFrame:
    """The prepared records of the splits `spec` names (:func:`parse_split`), concatenated in order."""
    task, splits = parse_split(spec)
    return pd.concat([load_split(data_dir, task, split) for split in splits], ignore_index=True)
