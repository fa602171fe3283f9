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
``YoukuSplit.has_ground_truth = False``: silently for a test split, with a warning naming the file and column
for a train or val split (whose labels the release does have).

Captions, as the official datasets read them: a ``caption`` cell (retrieval, every split) and a captioning
*train* ``golden_caption`` cell are one caption, plain text, even when it starts with ``[`` (``[字幕]一个人在跑步``).
Only captioning val/test ``golden_caption`` cells hold lists (the official code ``ast.literal_eval``\\ s them):
a cell starting with ``[`` is parsed with ``ast.literal_eval`` (literals only, never ``eval``) and must be a
list of non-empty strings; any other cell there is one caption.

A partial copy of the release is fine: `load_benchmark` reads the official CSVs that are present and leaves
the others out (at least one must be present; none at all means a wrong ``root``).

Bad input, and what happens (every message names the file, and the line and column where there is one;
"line" is the file line on which the row starts, the header being line 1, also after a quoted field that
spans lines; vlstudy.data.youku_csv.LineIndex):

- a required column is missing, a file is not UTF-8, a file has no data rows (header only), an id is empty
  or appears twice, a class name is not one of the 45, a val/test caption list does not parse, a labelled
  split has an empty label/caption/title cell: ``YoukuFormatError`` (``UnknownClassError`` for class names).
- a benchmark video that is missing (``check_videos``) or, in the splits ``decode_check`` names, cannot be
  decoded (first and last frame; vlstudy.data.video_check): with ``missing_videos="drop"`` (the default) the
  row is dropped, logged once with CSV line, id, file and reason, and listed in ``YoukuSplit.dropped``;
  with ``"error"``: ``MissingVideoError`` naming CSV, line, column, file and reason. A split none of whose
  videos can be read is a ``MissingVideoError`` either way (a wrong ``video_dir``, not a smaller split).
  Pool videos are checked for existence only when ``check_pretrain_videos`` is set (the same rule applies);
  otherwise the construction filters decode them (vlstudy.data.filters).
- a pre-training row with an empty title: skipped, counted in ``YoukuSplit.skipped`` and logged with the
  file name and lines (the real 10M-row file is web data; one empty title should not stop pre-training).
- an id that leads outside the video folder (``../x.mp4``, an absolute path): read as given, as the official
  ``os.path.join`` does, with one warning per file naming the lines; counted in ``YoukuSplit.outside``.

CSV parsing uses pyarrow (multi-threaded C++; the 10M-row file reads in seconds and its strings stay in
Arrow memory); records are built with vectorised pandas operations.
"""

from __future__ import annotations

import ast
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from vlstudy.data.classes import CLASS_NAMES, class_index
from vlstudy.data.schema import RECORD_COLUMNS, validate_frame
from vlstudy.data.video_check import probe_videos
from vlstudy.data.youku_csv import LineIndex, YoukuFormatError, check_ids, iter_csv_batches, read_csv_columns

__all__ = ["TASKS", "SPLITS", "POOL", "ID_COLUMN", "REQUIRED_COLUMNS", "DROPPED_COLUMNS", "YoukuSourceConfig",
           "YoukuSplit", "YoukuFormatError", "MissingVideoError", "iter_csv_batches", "check_ids",
           "read_csv_columns", "parse_caption_cell", "load_split", "present_splits", "load_benchmark"]

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
DROPPED_COLUMNS = ("task", "split", "row", "line", "video_id", "file", "reason")
"""Columns of ``YoukuSplit.dropped``: ``row`` is the 0-based data row, ``line`` the CSV line it starts on."""
_GROUND_TRUTH_COLUMN = {"classification": "label", "captioning": "golden_caption", "retrieval": "caption"}
_SHOWN = 5  # lines named in a warning


class MissingVideoError(FileNotFoundError):
    """A video named in a CSV is missing or unreadable; the message names the CSV, its line and the path."""


@dataclass
class YoukuSourceConfig:
    """Where the Youku-mPLUG files are: the CSVs and the video folder (mini-Youku writes the same layout).

    Attributes:
        root: the folder holding the CSV files.
        video_dir: the video folder, relative to `root` (or absolute).
        pretrain_file: the pre-training CSV, relative to `root`.
        classification_file, captioning_file, retrieval_file: per-split CSVs; ``{split}`` is replaced by
            train / val / test.
        check_videos: check the video of every benchmark row at ingestion (existence, or a decode probe where
            `decode_check` says so).
        check_pretrain_videos: check that every pool video exists (off: 10M stat calls up front; the filters
            decode the pool anyway).
        decode_check: which checked benchmark splits are probed by decoding their first and last frames rather
            than only stat'ed: ``"eval"`` (val and test: what an evaluation would crash on), ``"all"``, ``"none"``.
        missing_videos: what a missing or undecodable video does: ``"drop"`` its row (logged, listed in
            ``YoukuSplit.dropped``) or ``"error"`` (``MissingVideoError``).
        check_workers: processes for the decode probe.
    """

    root: Path
    video_dir: str = "videos"
    pretrain_file: str = "pretrain.csv"
    classification_file: str = "classification_{split}.csv"
    captioning_file: str = "captioning_{split}.csv"
    retrieval_file: str = "retrieval_{split}.csv"
    check_videos: bool = True
    check_pretrain_videos: bool = False
    decode_check: Literal["eval", "all", "none"] = "eval"
    missing_videos: Literal["drop", "error"] = "drop"
    check_workers: int = 2

    def __post_init__(self):
        self.root = Path(self.root)
        if self.decode_check not in ("eval", "all", "none"):
            raise ValueError(f"decode_check must be 'eval', 'all' or 'none', got {self.decode_check!r}")
        if self.missing_videos not in ("drop", "error"):
            raise ValueError(f"missing_videos must be 'drop' or 'error', got {self.missing_videos!r}")
        if self.check_workers < 1:
            raise ValueError(f"check_workers must be >= 1, got {self.check_workers}")

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
        skipped: rows left out for an empty title (pre-training); logged with the file name.
        rows: the 0-based data row in the CSV of each record, shape (len(records),).
        dropped: rows left out because their video is missing or undecodable (``DROPPED_COLUMNS``).
        outside: ids that resolve outside the video folder (kept, warned about).
        lines: the CSV's line numbers (row -> line), for reports.
    """

    task: str
    split: str
    csv_path: Path
    records: pd.DataFrame
    has_ground_truth: bool
    skipped: int = 0
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(DROPPED_COLUMNS)))
    outside: int = 0
    lines: LineIndex | None = None


def parse_caption_cell(text: str, where: str) -> list[str]:
    """One captioning val/test ``golden_caption`` cell as a list of captions.

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


def _require_filled(df: pd.DataFrame, column: str, path: Path, lines: LineIndex) -> None:
    blank = np.flatnonzero(_blank(df[column]))
    if len(blank):
        raise YoukuFormatError(f"{path}: line {lines(blank[0])}, column {column!r}: empty value "
                               f"({len(blank)} empty row(s); a split with labels must have them in every row)")


def _labels(names: pd.Series, path: Path, lines: LineIndex) -> np.ndarray:
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    labels = names.str.strip().map(index)
    unknown = np.flatnonzero(labels.isna().to_numpy())
    if len(unknown):
        row = unknown[0]
        class_index(names.iloc[row], where=f"{path}: line {lines(row)}, column 'label'")
    return labels.to_numpy(dtype=np.int64)


def _warn_outside(ids: pd.Series, paths: list[str], video_root: str, where: Path, lines: LineIndex) -> int:
    """Warn once about ids that resolve outside the video folder; returns how many do.

    Only ids holding ``..`` or starting with a separator can leave the folder; they alone are resolved (the
    10M-row pool would otherwise cost a path normalisation per row).
    """
    root = os.path.normpath(os.path.abspath(video_root))
    suspects = np.flatnonzero((ids.str.contains("..", regex=False) | ids.str.startswith(("/", os.sep))).to_numpy())
    outside = np.zeros(len(ids), bool)
    outside[suspects] = [os.path.commonpath([root, os.path.normpath(os.path.abspath(paths[i]))]) != root
                         for i in suspects]
    count = int(outside.sum())
    if count:
        first = np.flatnonzero(outside)[:_SHOWN]
        logger.warning("%s: %d id(s) resolve outside the video folder %s (lines %s, e.g. %r -> %s); they are "
                       "read as given, as the official os.path.join does", where, count, video_root,
                       lines.lines(first), ids.iloc[first[0]], paths[first[0]])
    return count


def _check_videos(split: YoukuSplit, config: YoukuSourceConfig, lines: LineIndex, decode: bool) -> YoukuSplit:
    """`split` without the rows whose video cannot be read (or MissingVideoError; module docstring)."""
    records, path, column = split.records, split.csv_path, ID_COLUMN[split.task]
    reasons = np.array(probe_videos(records["video_path"].tolist(), decode, config.check_workers,
                                    desc=f"check {path.name}"), dtype=object)
    bad = np.flatnonzero(reasons != "")
    if not len(bad):
        return split
    first, video = bad[0], records["video_path"].iloc[bad[0]]
    what = "not found" if reasons[first] == "file not found" else f"cannot be read: {reasons[first]}"
    where = f"{path}: line {lines(split.rows[first])}, column {column!r}: video file {video} {what}"
    if len(bad) == len(records):
        raise MissingVideoError(f"{where}; none of the {len(records)} videos of this split can be read: check "
                                f"source.root and source.video_dir (videos are looked up in {config.video_root})")
    if config.missing_videos == "error":
        raise MissingVideoError(f"{where} ({len(bad)} of {len(records)} videos cannot be read; "
                                "source.missing_videos: drop drops such rows instead)")
    dropped = pd.DataFrame({"task": split.task, "split": split.split, "row": split.rows[bad],
                            "line": lines.lines(split.rows[bad]), "video_id": records["video_id"].iloc[bad].to_numpy(),
                            "file": records["video_path"].iloc[bad].to_numpy(), "reason": reasons[bad]})
    for row in dropped.itertuples():
        logger.warning("%s: line %d: dropped %s (%s): %s", path, row.line, row.video_id, row.file, row.reason)
    logger.warning("%s: dropped %d of %d rows whose video cannot be read", path, len(bad), len(records))
    keep = np.ones(len(records), bool)
    keep[bad] = False
    return YoukuSplit(split.task, split.split, path, records[keep].reset_index(drop=True), split.has_ground_truth,
                      split.skipped, split.rows[keep], dropped[list(DROPPED_COLUMNS)], split.outside, lines)


def load_split(config: YoukuSourceConfig, task: str, split: str = POOL) -> YoukuSplit:
    """Read one official CSV into a record table.

    Args:
        config: where the CSVs and videos are, and how videos are checked.
        task: one of ``TASKS``.
        split: ``"pool"`` for pretrain, else one of ``SPLITS``.

    Returns:
        The split with its record table (``video_path`` = video folder / id; ``source_id`` = id, as the
        release carries no source information), its ground-truth flag and what was left out.

    Raises:
        FileNotFoundError, YoukuFormatError, UnknownClassError, MissingVideoError: see the module docstring.
    """
    path = config.csv_path(task, split)
    id_column = ID_COLUMN[task]
    df = read_csv_columns(path, REQUIRED_COLUMNS[task])
    if len(df) == 0:
        raise YoukuFormatError(f"{path}: no data rows (the file holds only its header); delete the file if the "
                               f"{task} {split} split is absent from your copy of the release")
    lines = LineIndex(path, len(df))
    rows = np.arange(len(df))  # data row in the file of each kept row
    skipped = 0
    if task == "pretrain":
        blank = _blank(df["title"])
        skipped = int(blank.sum())
        if skipped == len(df):
            raise YoukuFormatError(f"{path}: column 'title' is empty in every row ({skipped} rows)")
        if skipped:
            logger.warning("%s: skipped %d row(s) with an empty title (first lines: %s)", path, skipped,
                           lines.lines(np.flatnonzero(blank)[:_SHOWN]))
            df, rows = df[~blank].reset_index(drop=True), rows[~blank]
    elif task == "classification":
        _require_filled(df, "title", path, lines)

    gt_column = _GROUND_TRUTH_COLUMN.get(task)
    has_ground_truth = gt_column is None or not bool(_blank(df[gt_column]).all())
    if not has_ground_truth and split != "test":
        logger.warning("%s: column %r is empty in every row: read as a split without ground truth (only the "
                       "official test splits have none; the %s %s split should have it)", path, gt_column, task,
                       split)
    if gt_column is not None and has_ground_truth:
        _require_filled(df, gt_column, path, lines)

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
        out["label"] = pd.array(_labels(df["label"], path, lines), dtype="Int64")
    out["captions"] = [[] for _ in range(n)]
    if task in ("captioning", "retrieval") and has_ground_truth:
        if task == "captioning" and split in ("val", "test"):  # the only cells the official code parses as lists
            where = f"{path}: line {{}}, column {gt_column!r}"
            out["captions"] = [parse_caption_cell(text, where.format(lines(row)))
                               for row, text in enumerate(df[gt_column])]
        else:
            out["captions"] = [[text] for text in df[gt_column].str.strip()]
    out["duration"] = np.nan
    records = validate_frame(out, where=str(path))
    outside = _warn_outside(ids, out["video_path"].tolist(), video_root, path, lines)
    result = YoukuSplit(task, split, path, records, has_ground_truth, skipped, rows, outside=outside, lines=lines)

    check = config.check_pretrain_videos if task == "pretrain" else config.check_videos
    decode = task != "pretrain" and (config.decode_check == "all" or
                                     (config.decode_check == "eval" and split in ("val", "test")))
    return _check_videos(result, config, lines, decode) if check else result


def present_splits(config: YoukuSourceConfig, tasks: tuple[str, ...] = TASKS) -> list[tuple[str, str]]:
    """The (task, split) pairs of `tasks` whose official CSV exists under ``config.root``, in task order."""
    keys = [(task, split) for task in tasks for split in ((POOL,) if task == "pretrain" else SPLITS)]
    return [key for key in keys if config.csv_path(*key).is_file()]


def load_benchmark(config: YoukuSourceConfig, tasks: tuple[str, ...] = TASKS) -> dict[tuple[str, str], YoukuSplit]:
    """Every split of `tasks` whose CSV is present: ``{(task, split): YoukuSplit}`` (pretrain as
    ``("pretrain", "pool")``). Absent CSVs are left out, logged in one line.

    Raises:
        FileNotFoundError: none of the CSVs of `tasks` is present (naming the folder and the expected names).
        YoukuFormatError, UnknownClassError, MissingVideoError: from `load_split`.
    """
    keys = [(task, split) for task in tasks for split in ((POOL,) if task == "pretrain" else SPLITS)]
    present = present_splits(config, tasks)
    if not present:
        names = sorted({config.csv_path(*key).name for key in keys})
        raise FileNotFoundError(f"{config.root}: none of the official CSV files is there (expected any of "
                                f"{names}); check source.root")
    absent = [key for key in keys if key not in present]
    if absent:
        logger.warning("%s: absent from this copy of the release, recorded as absent: %s", config.root,
                       ", ".join(config.csv_path(*key).name for key in absent))
    return {key: load_split(config, *key) for key in present}
