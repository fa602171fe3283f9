"""Atomic file writes and JSON: the one place where vlstudy writes a file so that readers never see half of it.

Every writer here writes a temporary sibling (a name starting with ``.`` and ending in ``.tmp``, unique per
process) and moves it into place with ``os.replace``, which is atomic on POSIX and Windows within one file
system. A process killed at any instant therefore leaves either the old file, the new file, or a stray hidden
``.tmp`` file, never a truncated file under the final name. `staged_directory` does the same for a folder of
files (a model checkpoint): nothing reaches the final folder until every file was written.

This module imports nothing of vlstudy; every other layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_text", "write_bytes", "write_json", "read_json", "write_table", "staged_directory",
           "to_jsonable"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on an exception it is removed.

    Usage: ``with atomic_path(out) as tmp: figure.savefig(tmp)``. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically; returns `path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically; returns `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values: numpy/torch scalars become numbers, paths strings, tuples lists, and NaN or
    infinity None (JSON has no such numbers; ``dvc metrics`` could not read them)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:  # numpy / torch scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` (see `to_jsonable`) as indented UTF-8 JSON, atomically; returns `path`."""
    return write_text(path, json.dumps(to_jsonable(data), ensure_ascii=False, indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; the error names the file and the position of a syntax error."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def write_table(path: str | Path, table, writer: Callable[[Any, Path], None] | None = None) -> Path:
    """Write a pandas DataFrame atomically: CSV (no index) or Parquet, chosen by the suffix of `path`.

    Args:
        path: the target; ``.csv`` or ``.parquet``.
        table: the DataFrame.
        writer: another ``writer(table, tmp_path)`` for other formats.
    """
    path = Path(path)
    if writer is None:
        if path.suffix == ".csv":
            def writer(t, p):
                t.to_csv(p, index=False)
        elif path.suffix == ".parquet":
            def writer(t, p):
                t.to_parquet(p, index=False)
        else:
            raise ValueError(f"{path}: write_table writes .csv or .parquet; pass a writer for {path.suffix!r}")
    with atomic_path(path) as tmp:
        writer(table, tmp)
    return path


@contextlib.contextmanager
def staged_directory(directory: str | Path) -> Iterator[Path]:
    """Write a folder's files into a temporary sibling folder, then move each into `directory` (atomic per file).

    Usage: ``with staged_directory(out) as tmp: model.save_pretrained(tmp)``. On an exception nothing is moved.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory.parent))
    try:
        yield staging
        for source in sorted(staging.rglob("*")):
            if source.is_file():
                target = directory / source.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
