"""Readers for the official Youku-mPLUG CSV files: each split becomes a record table (vlstudy.data.schema).

Formats follow the official code (X-PLUG/Youku-mPLUG, ``dataset/video_downstream_datasets.py``); the ``:FILE``
suffix is part of the column name:

==============  ===============================  ==========================================================
task            columns                          value
==============  ===============================  ==========================================================
pretrain        ``video_id:FILE``, ``title``     one title per video (``pretrain.csv``, 10,009,370 rows)
classification  ``video_id:FILE``, ``title``,    ``label`` is the Chinese class name of ``classname.json``
                ``label``                        (index order: vlstudy.data.classes.CLASS_NAMES)
captioning      ``video_id:FILE``,               train: one caption; val/test: a Python-style list of
                ``golden_caption``               captions in one string, e.g. ``"['一个人在跳舞', '...']"``
retrieval       ``clip_name:FILE``, ``caption``  one caption per clip
==============  ===============================  ==========================================================

The id is a file name relative to the video folder (``os.path.join(video_root, video_id)`` in the official
code). A label or caption column that is empty in *every* row means the split has no ground truth: the
official test splits, whose labels were never released (issue X-PLUG/Youku-mPLUG#8; the official code sets
label -1 / keeps the empty caption). Such a split reads with label NA and captions [] and
``YoukuSplit.has_ground_truth = False``; it is not an error.

Caption lists are parsed with ``ast.literal_eval`` (literals only, never ``eval``) and must be a list of
non-empty strings. A cell is read as a list when it starts with ``[``; any other cell is one caption. This
agrees with the official rule (train: string, val/test: list) on the released files without depending on
the file name.

Bad input, and what happens (every message names the file, and the line and column where there is one;
"line" counts the header as line 1, so data row i is line i + 2, assuming no quoted field spans lines):

- a required column is missing, a file is not UTF-8, an id is empty or appears twice, a class name is not
  one of the 45, a caption list does not parse, a labelled split has an empty label/caption/title cell:
  ``YoukuFormatError`` (``UnknownClassError`` for class names).
- a downstream video file is missing: ``MissingVideoError`` (checked for every row when
  ``YoukuSourceConfig.check_videos`` is on, the default). The 10M-row pre-training CSV is not checked up
  front unless ``check_pretrain_videos`` is set; an unreadable pool video is found later by the filters.
- a pre-training row with an empty title: skipped, counted in ``YoukuSplit.skipped`` and logged with the
  file name (the real 10M-row file is web data; one empty title should not stop pre-training).

CSV parsing uses pyarrow (multi-threaded C++; the 10M-row file reads in seconds and its strings stay in
Arrow memory); records are built with vectorised pandas operations.
"""

from __future__ import annotations

import ast
import csv
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from vlstudy.data.classes import CLASS_NAMES, class_index
from vlstudy.data.schema import RECORD_COLUMNS, validate_frame

__all__ = ["TASKS", "SPLITS", "POOL", "ID_COLUMN", "REQUIRED_COLUMNS", "YoukuSourceConfig", "YoukuSplit",
           "YoukuFormatError", "MissingVideoError", "iter_csv_batches", "check_ids", "read_csv_columns",
           "parse_caption_cell", "load_split",
           "load_benchmark"]

logger = logging.getLogger(__name__)

TASKS = ("pretrain", "classification", "captioning", "retrieval")
SPLITS = ("train", "val", "test")
POOL = "pool"
"""The split name of the pre-training pool (pretrain.csv is one unsplit file)."""

ID_COLUMN = {"pretrain": "video_id:FILE", "classification": "video_id:FILE", "captioning": "video_id:FILE",
             "retrieval": "clip_name:FILE"}
REQUIRED_COLUMNS = {
    "pretrain": ("video_id:FILE", "title"),
    "classification": ("video_id:FILE", "title", "label"),
    "captioning": ("video_id:FILE", "golden_caption"),
    "retrieval": ("clip_name:FILE", "caption"),
}
_GROUND_TRUTH_COLUMN = {"classification": "label", "captioning": "golden_caption", "retrieval": "caption"}


class YoukuFormatError(ValueError):
    """A CSV that does not follow the official format; the message names the file, line and column."""


class MissingVideoError(FileNotFoundError):
    """A video named in a CSV is not in the video folder; the message names the CSV, its line and the path."""


@dataclass
class YoukuSourceConfig:
    """Where the Youku-mPLUG files are: the CSVs and the video folder (mini-Youku writes the same layout).

    Attributes:
        root: the folder holding the CSV files.
        video_dir: the video folder, relative to `root` (or absolute).
        pretrain_file: the pre-training CSV, relative to `root`.
        classification_file, captioning_file, retrieval_file: per-split CSVs; ``{split}`` is replaced by
            train / val / test.
        check_videos: check that every video of a downstream split exists (error names CSV file and line).
        check_pretrain_videos: the same for the pre-training CSV (off: 10M stat calls up front).
    """

    root: Path
    video_dir: str = "videos"
    pretrain_file: str = "pretrain.csv"
    classification_file: str = "classification_{split}.csv"
    captioning_file: str = "captioning_{split}.csv"
    retrieval_file: str = "retrieval_{split}.csv"
    check_videos: bool = True
    check_pretrain_videos: bool = False

    def __post_init__(self):
        self.root = Path(self.root)

    @property
    def video_root(self) -> Path:
        return self.root / self.video_dir

    def csv_path(self, task: str, split: str = POOL) -> Path:
        """The CSV file of one task and split (``split`` is ``"pool"`` for pretrain)."""
        if task == "pretrain":
            if split != POOL:
                raise ValueError(f"pretrain has one split, {POOL!r}; got {split!r}")
            return self.root / self.pretrain_file
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} of {task}; expected one of {SPLITS}")
        pattern = {"classification": self.classification_file, "captioning": self.captioning_file,
                   "retrieval": self.retrieval_file}[task]
        return self.root / pattern.format(split=split)


@dataclass(frozen=True)
class YoukuSplit:
    """One split read from its CSV.

    Attributes:
        task: pretrain / classification / captioning / retrieval.
        split: pool / train / val / test.
        csv_path: the file it was read from.
        records: the record table (vlstudy.data.schema.RECORD_COLUMNS), one row per video or clip.
        has_ground_truth: False when the label / caption column is empty in every row (official test splits).
        skipped: rows left out (pre-training rows with an empty title); logged with the file name.
    """

    task: str
    split: str
    csv_path: Path
    records: pd.DataFrame
    has_ground_truth: bool
    skipped: int = 0


def _line(row: int) -> int:
    """File line of data row `row` (0-based): the header is line 1."""
    return int(row) + 2


def _read_header(path: Path) -> list[str]:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YoukuFormatError(f"{path}: line 1 is not valid UTF-8 ({e.reason} at byte {e.start}); "
                               "re-encode the file as UTF-8 (e.g. iconv -f GBK -t UTF-8)") from None
    return next(csv.reader([text]), [])


def _first_non_utf8_line(path: Path) -> tuple[int, str]:
    """Line number (1-based) and decoder message of the first line that is not UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return number, f"{e.reason} at byte {e.start} of the line"
    return 0, "no undecodable line found"


def _invalid_csv(path: Path, error: pa.ArrowInvalid) -> YoukuFormatError:
    if "UTF8" in str(error):
        line, reason = _first_non_utf8_line(path)
        return YoukuFormatError(f"{path}: line {line} is not valid UTF-8 ({reason}); re-encode the file as UTF-8 "
                                "(e.g. iconv -f GBK -t UTF-8)")
    return YoukuFormatError(f"{path}: cannot parse as CSV: {error}")


def iter_csv_batches(path: str | Path, columns: tuple[str, ...],
                     block_bytes: int = 64 * 2**20) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Stream the named columns of a CSV as Arrow record batches (strings; empty cells are null).

    Memory stays at a few blocks whatever the file size (the 10M-row pre-training CSV is 1.2 GB).

    Args:
        path: the CSV file.
        columns: required column names (exact, e.g. ``video_id:FILE``).
        block_bytes: bytes of CSV parsed per batch.

    Yields:
        (index of the batch's first data row, the batch with exactly `columns`).

    Raises:
        FileNotFoundError: the file does not exist.
        YoukuFormatError: a column is missing or the file is not UTF-8 (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV file not found")
    header = _read_header(path)
    missing = [c for c in columns if c not in header]
    if missing:
        raise YoukuFormatError(f"{path}: missing required column(s) {missing}; found columns {header}, "
                               f"expected {list(columns)}")
    convert = pacsv.ConvertOptions(include_columns=list(columns), column_types={c: pa.string() for c in columns},
                                   null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_bytes),
                                convert_options=convert)
        row = 0
        for batch in reader:
            yield row, batch
            row += batch.num_rows
    except pa.ArrowInvalid as e:
        raise _invalid_csv(path, e) from None


def check_ids(ids: pa.ChunkedArray | pa.Array, path: Path, column: str) -> pa.ChunkedArray:
    """Strip the ids and check that none is empty and none repeats (vectorised Arrow kernels).

    Args:
        ids: the id column, in file order.
        path, column: named in errors.

    Returns:
        The stripped ids.

    Raises:
        YoukuFormatError: naming the line of the first empty id, or the first repeated id and its lines.
    """
    stripped = pc.utf8_trim_whitespace(ids)
    empty = pc.fill_null(pc.equal(stripped, ""), True)
    if pc.any(empty).as_py():
        first = pc.index(empty, True).as_py()
        raise YoukuFormatError(f"{path}: line {_line(first)}, column {column!r}: empty id "
                               f"({pc.sum(empty).as_py()} row(s) without an id)")
    if pc.count_distinct(stripped).as_py() < len(stripped):
        counts = pc.value_counts(stripped)  # distinct values in order of first appearance
        repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
        first = repeated.field("values")[0].as_py()
        lines = [_line(r) for r in pc.indices_nonzero(pc.equal(stripped, first)).to_pylist()]
        raise YoukuFormatError(f"{path}: column {column!r}: id {first!r} appears on lines {lines} "
                               f"({pc.sum(repeated.field('counts')).as_py()} rows share an id with another row)")
    return stripped if isinstance(stripped, pa.ChunkedArray) else pa.chunked_array([stripped])


def read_csv_columns(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read the named columns of a CSV as strings, with the format checks every task shares.

    Args:
        path: the CSV file.
        columns: required column names (exact, e.g. ``video_id:FILE``); the first one is the id column.

    Returns:
        A DataFrame with exactly `columns` (Arrow-backed strings; empty cells are missing; ids stripped) and a
        RangeIndex (data row i is file line i + 2).

    Raises:
        FileNotFoundError: the file does not exist.
        YoukuFormatError: a column is missing, the file is not UTF-8, or an id is empty or duplicated.
    """
    path = Path(path)
    batches = [batch for _, batch in iter_csv_batches(path, columns)]
    schema = pa.schema([(c, pa.string()) for c in columns])
    table = pa.Table.from_batches(batches, schema=schema).select(list(columns))
    table = table.set_column(0, columns[0], check_ids(table.column(columns[0]), path, columns[0]))
    return table.to_pandas()


def parse_caption_cell(text: str, where: str) -> list[str]:
    """One ``golden_caption`` / ``caption`` cell as a list of captions.

    Args:
        text: the cell; a value starting with ``[`` is a Python-style list literal, anything else is one caption.
        where: how errors name the cell, e.g. ``"captioning_val.csv: line 7, column 'golden_caption'"``.

    Returns:
        The captions, each stripped and non-empty.

    Raises:
        YoukuFormatError: a list that does not parse as a literal, is not a list of strings, or holds an
            empty caption.
    """
    text = text.strip()
    if not text.startswith("["):
        return [text]
    try:
        value = ast.literal_eval(text)  # literals only: no names, calls or attribute access are evaluated
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise YoukuFormatError(f"{where}: caption list does not parse as a list literal "
                               f"({type(e).__name__}): {text[:80]!r}") from None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise YoukuFormatError(f"{where}: expected a list of strings, got {text[:80]!r}")
    captions = [c.strip() for c in value]
    if not captions or not all(captions):
        raise YoukuFormatError(f"{where}: caption list is empty or holds an empty caption: {text[:80]!r}")
    return captions


def _blank(values: pd.Series) -> np.ndarray:
    """Row mask of missing or whitespace-only cells."""
    stripped = values.str.strip()
    return (stripped.isna() | (stripped == "")).to_numpy()


def _require_filled(df: pd.DataFrame, column: str, path: Path) -> None:
    blank = np.flatnonzero(_blank(df[column]))
    if len(blank):
        raise YoukuFormatError(f"{path}: line {_line(blank[0])}, column {column!r}: empty value "
                               f"({len(blank)} empty row(s); a split with labels must have them in every row)")


def _labels(names: pd.Series, path: Path) -> np.ndarray:
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    labels = names.str.strip().map(index)
    unknown = np.flatnonzero(labels.isna().to_numpy())
    if len(unknown):
        row = unknown[0]
        class_index(names.iloc[row], where=f"{path}: line {_line(row)}, column 'label'")
    return labels.to_numpy(dtype=np.int64)


def _check_videos(paths: pd.Series, rows: np.ndarray, csv_path: Path, id_column: str) -> None:
    """Every video exists; `rows` are the data rows (in the file) of `paths`."""
    for row, video in zip(rows, paths):
        if not os.path.isfile(video):
            raise MissingVideoError(f"{csv_path}: line {_line(row)}, column {id_column!r}: video file {video} "
                                    "not found")


def load_split(config: YoukuSourceConfig, task: str, split: str = POOL) -> YoukuSplit:
    """Read one official CSV into a record table.

    Args:
        config: where the CSVs and videos are.
        task: one of ``TASKS``.
        split: ``"pool"`` for pretrain, else one of ``SPLITS``.

    Returns:
        The split with its record table (``video_path`` = video folder / id; ``source_id`` = id, as the
        release carries no source information) and its ground-truth flag.

    Raises:
        FileNotFoundError, YoukuFormatError, UnknownClassError, MissingVideoError: see the module docstring.
    """
    path = config.csv_path(task, split)
    id_column = ID_COLUMN[task]
    df = read_csv_columns(path, REQUIRED_COLUMNS[task])
    rows = np.arange(len(df))  # data row in the file of each kept row
    skipped = 0
    if task == "pretrain":
        blank = _blank(df["title"])
        skipped = int(blank.sum())
        if skipped:
            lines = [_line(r) for r in np.flatnonzero(blank)[:5]]
            logger.warning("%s: skipped %d row(s) with an empty title (first lines: %s)", path, skipped, lines)
            df, rows = df[~blank].reset_index(drop=True), rows[~blank]
    elif task == "classification":
        _require_filled(df, "title", path)

    gt_column = _GROUND_TRUTH_COLUMN.get(task)
    has_ground_truth = gt_column is None or not bool(_blank(df[gt_column]).all()) or len(df) == 0
    if gt_column is not None and has_ground_truth:
        _require_filled(df, gt_column, path)

    n = len(df)
    ids = df[id_column].astype(object)
    out = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in RECORD_COLUMNS})
    out["video_id"] = ids.to_numpy()
    out["source_id"] = ids.to_numpy()
    video_root = str(config.video_root)
    out["video_path"] = [os.path.join(video_root, v) for v in ids]
    if "title" in df:
        out["title"] = df["title"].str.strip().astype(object).to_numpy()
    out["label"] = pd.array([pd.NA] * n, dtype="Int64")
    if task == "classification" and has_ground_truth:
        out["label"] = pd.array(_labels(df["label"], path), dtype="Int64")
    out["captions"] = [[] for _ in range(n)]
    if task in ("captioning", "retrieval") and has_ground_truth:
        where = f"{path}: line {{}}, column {gt_column!r}"
        out["captions"] = [parse_caption_cell(text, where.format(_line(row)))
                           for row, text in enumerate(df[gt_column])]
    out["duration"] = np.nan
    records = validate_frame(out, where=str(path))

    check = config.check_pretrain_videos if task == "pretrain" else config.check_videos
    if check:
        _check_videos(records["video_path"], rows, path, id_column)
    return YoukuSplit(task, split, path, records, has_ground_truth, skipped)


def load_benchmark(config: YoukuSourceConfig, tasks: tuple[str, ...] = TASKS) -> dict[tuple[str, str], YoukuSplit]:
    """Every split of `tasks`: ``{(task, split): YoukuSplit}`` (pretrain as ``("pretrain", "pool")``)."""
    out = {}
    for task in tasks:
        for split in ((POOL,) if task == "pretrain" else SPLITS):
            out[(task, split)] = load_split(config, task, split)
    return out
