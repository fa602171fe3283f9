"""The ``data`` stage's logic: official CSVs → filtered pool + benchmark splits, checked for leakage.

1. Read the official CSV files present under ``source.root`` (mini-Youku, or the real Youku-mPLUG release, whole
   or in part: the same readers, `vlstudy.data.youku`). A task/split whose CSV is absent is recorded as absent
   in the manifest (``present: false`` and the ``absent`` list), not an error, so later stages can skip it with
   a line in their report; at least one official CSV must be present. Benchmark rows whose video is missing or
   undecodable are dropped (``source.missing_videos: drop``, the default) or stop the stage (``error``).
2. For mini-Youku, attach what its ground truth knows beyond the CSVs: the source video of each retrieval clip
   (needed for leakage checks), the VideoMind layers (factual / abstract / intent, 6W tags) and the Panda-style
   description and subtitles. Real data has none of these; the columns stay empty.
3. Run the dataset-construction filters of paper §3.1 on the pre-training pool (`vlstudy.data.filters`), with
   each filter's precision and recall when a ground truth is given. Unreadable pool videos (missing,
   undecodable, no frames, frames under 8 px) are removed by the ``unreadable`` filter, each logged once by
   name.
4. Check that no source video or title falls on both sides of any task's train/val/test split, and that no
   pool video or source appears in a val/test split (`vlstudy.data.splits`). ``leakage="error"`` fails naming
   the offending ids; ``"warn"`` (for official splits one cannot change) records them in ``leakage.csv``.

`write_prepared` writes ``pretrain.parquet`` (the kept pool, when the pool is present), ``<task>_<split>.parquet``
(record schema, present splits only), ``filter_decisions.csv``, ``filter_report.csv``, ``leakage.csv``,
``missing_videos.csv`` (every video left out for being unreadable: ``task, split, row, line, video_id, file,
reason``; pool videos the filters found unreadable included) and ``manifest.json``, whose ``skips`` section
holds every skip count (`Prepared.skip_counts`) for the stage's metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from vlstudy.data.filters import FilterConfig, apply_filters
from vlstudy.data.schema import empty_frame, write_table
from vlstudy.data.splits import LeakageError, check_no_leakage, check_pool_disjoint, find_leakage
from vlstudy.data.youku import (
    DROPPED_COLUMNS,
    POOL,
    SPLITS,
    TASKS,
    MissingVideoError,
    YoukuSourceConfig,
    YoukuSplit,
    load_benchmark,
)
from vlstudy.io import write_json
from vlstudy.io import write_table as write_csv

__all__ = ["PrepareConfig", "Prepared", "prepare", "write_prepared", "attach_ground_truth", "EXTRA_COLUMNS",
           "BENCHMARK_KEYS",
           "MISSING_VIDEOS_FILE"]

logger = logging.getLogger("vlstudy.data")

EXTRA_COLUMNS = ("source_id", "factual", "abstract", "intent", "tags_6w", "description", "subtitles")
BENCHMARK_KEYS = tuple((task, split) for task in TASKS if task != "pretrain" for split in SPLITS)
"""The nine benchmark (task, split) pairs, in manifest order."""
MISSING_VIDEOS_FILE = "missing_videos.csv"


@dataclass
class PrepareConfig:
    """Attributes:
        source: where the CSVs and videos are, and how benchmark videos are checked (default: the mini_youku
            stage's output).
        ground_truth: mini-Youku's ``ground_truth.csv`` (filter precision/recall, clip sources, VideoMind
            layers); None for real data.
        filters: the §3.1 filter thresholds.
        leakage: what a leaking split does: ``error`` stops the stage naming the ids; ``warn`` records them.
    """

    source: YoukuSourceConfig = field(default_factory=lambda: YoukuSourceConfig(root=Path("data/mini_youku")))
    ground_truth: str | None = "data/mini_youku/ground_truth.csv"
    filters: FilterConfig = field(default_factory=FilterConfig)
    leakage: Literal["error", "warn"] = "error"


@dataclass
class Prepared:
    """What the data stage produced (all tables in the record schema unless said otherwise).

    ``splits`` and ``has_ground_truth`` hold the present benchmark splits only; ``csv_files`` names the CSV of
    every (task, split) of ``TASKS``, present or not.
    """

    pool: pd.DataFrame  # the kept pre-training pool (empty when the pool is absent)
    splits: dict[tuple[str, str], pd.DataFrame]
    has_ground_truth: dict[tuple[str, str], bool]
    decisions: pd.DataFrame  # one row per pool video: the filters' flags
    report: pd.DataFrame  # per filter: removed, precision, recall
    leakage: pd.DataFrame  # offending records (empty when clean)
    raw_pool_size: int
    skipped_pool_rows: int
    pool_present: bool = True
    csv_files: dict[tuple[str, str], str] = field(default_factory=dict)
    missing_videos: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(DROPPED_COLUMNS)))
    outside: dict[tuple[str, str], int] = field(default_factory=dict)  # ids outside the video folder

    def absent(self) -> list[str]:
        """Names (``<task>_<split>``, ``pretrain_pool``) of the official CSVs not in this copy of the release."""
        names = [] if self.pool_present else [f"pretrain_{POOL}"]
        return names + [f"{task}_{split}" for task, split in BENCHMARK_KEYS if (task, split) not in self.splits]

    def skip_counts(self) -> dict:
        """Every count of rows or videos left out, for the stage's metrics (all ints).

        ``pool_empty_title_rows``: pool rows without a title; ``pool_unreadable_videos``: pool videos missing,
        undecodable, frameless or under 8 px (removed); ``benchmark_dropped_videos``: benchmark rows dropped for
        a missing/undecodable video, also ``dropped_videos_by_split``; ``absent_splits``: official CSVs not
        present; ``ids_outside_video_folder``: ids read from outside the video folder (kept).
        """
        missing = self.missing_videos
        benchmark = missing[missing["task"] != "pretrain"]
        by_split = benchmark.groupby(["task", "split"]).size()
        return {
            "pool_empty_title_rows": int(self.skipped_pool_rows),
            "pool_unreadable_videos": int((missing["task"] == "pretrain").sum()),
            "benchmark_dropped_videos": len(benchmark),
            "dropped_videos_by_split": {f"{t}_{s}": int(by_split.get((t, s), 0)) for t, s in self.splits},
            "absent_splits": len(self.absent()),
            "ids_outside_video_folder": int(sum(self.outside.values())),
        }


def attach_ground_truth(records: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """Fill `EXTRA_COLUMNS` of `records` from mini-Youku's ground truth (matched by video id)."""
    truth = ground_truth.set_index("video_id")
    missing = records.loc[~records["video_id"].isin(truth.index), "video_id"]
    if len(missing):
        raise ValueError(f"ground truth has no row for video {missing.iloc[0]!r} ({len(missing)} missing)")
    out = records.copy()
    for column in EXTRA_COLUMNS:
        if column in truth.columns:
            values = truth.loc[out["video_id"], column].to_numpy()
            out[column] = [v if isinstance(v, str) and v else None for v in values]
    out["source_id"] = out["source_id"].fillna(out["video_id"])
    return out


def _leakage(splits: dict[tuple[str, str], pd.DataFrame], pool: pd.DataFrame, mode: str) -> pd.DataFrame:
    tasks = sorted({task for task, _ in splits})
    found = []
    for task in tasks:
        by_split = {split: splits[(task, split)] for split in SPLITS if (task, split) in splits}
        leaks = find_leakage(by_split)
        if len(leaks):
            found.append(leaks.assign(task=task))
            if mode == "error":
                check_no_leakage(by_split)  # raises LeakageError naming the ids
    evaluation = {f"{task}/{split}": df for (task, split), df in splits.items() if split in ("val", "test")}
    try:
        check_pool_disjoint(pool, evaluation)
    except LeakageError as e:
        if mode == "error":
            raise
        logger.warning("leakage between the pool and evaluation splits: %s", e)
        found.append(pd.DataFrame({"key": ["pool"], "value": [str(e)], "split": ["pool"], "video_id": [""],
                                   "task": ["pretrain"]}))
    columns = ["task", "key", "value", "split", "video_id"]
    return pd.concat(found, ignore_index=True)[columns] if found else pd.DataFrame(columns=columns)


def _unreadable_pool(pool: YoukuSplit, decisions: pd.DataFrame) -> pd.DataFrame:
    """The pool videos the filters found unreadable, as ``DROPPED_COLUMNS`` rows (CSV row and line included)."""
    bad = np.flatnonzero(decisions["error"].to_numpy() != "")
    rows = pool.rows[bad]
    return pd.DataFrame({"task": "pretrain", "split": POOL, "row": rows, "line": pool.lines.lines(rows),
                         "video_id": pool.records["video_id"].iloc[bad].to_numpy(),
                         "file": pool.records["video_path"].iloc[bad].to_numpy(),
                         "reason": decisions["error"].iloc[bad].to_numpy()}, columns=list(DROPPED_COLUMNS))


def prepare(config: PrepareConfig) -> Prepared:
    """Read, enrich, filter and check the data; nothing is written."""
    truth = pd.read_csv(config.ground_truth, keep_default_na=False, na_values=[""]) if config.ground_truth else None
    if truth is not None:
        truth["defect"] = truth["defect"].fillna("")
        truth["duplicate_of"] = truth["duplicate_of"].fillna("")
    loaded = load_benchmark(config.source)
    pool = loaded.pop(("pretrain", POOL), None)
    splits = {key: s.records for key, s in loaded.items()}
    if truth is not None:
        splits = {key: attach_ground_truth(df, truth) for key, df in splits.items()}
    kept, decisions, report = apply_filters(pool.records if pool else empty_frame(), truth, config.filters)
    if pool is not None and len(decisions) and (decisions["error"] != "").all():
        raise MissingVideoError(f"{pool.csv_path}: none of the {len(decisions)} pool videos can be read (first: "
                                f"{pool.records['video_path'].iloc[0]}: {decisions['error'].iloc[0]}); check "
                                "source.root and source.video_dir")
    if truth is not None:
        kept = attach_ground_truth(kept, truth)
    leakage = _leakage(splits, kept, config.leakage)
    present = [s for s in (pool, *loaded.values()) if s is not None]
    missing = [s.dropped for s in present] + ([_unreadable_pool(pool, decisions)] if pool is not None else [])
    missing = [m for m in missing if len(m)]
    return Prepared(
        pool=kept, splits=splits, has_ground_truth={k: s.has_ground_truth for k, s in loaded.items()},
        decisions=decisions, report=report, leakage=leakage, raw_pool_size=len(pool.records) if pool else 0,
        skipped_pool_rows=pool.skipped if pool else 0, pool_present=pool is not None,
        csv_files={key: str(config.source.csv_path(*key)) for key in (("pretrain", POOL), *BENCHMARK_KEYS)},
        missing_videos=(pd.concat(missing, ignore_index=True) if missing
                        else pd.DataFrame(columns=list(DROPPED_COLUMNS))),
        outside={(s.task, s.split): s.outside for s in present})


def _split_entry(prepared: Prepared, key: tuple[str, str]) -> dict:
    present = key in prepared.splits
    dropped = prepared.skip_counts()["dropped_videos_by_split"].get(f"{key[0]}_{key[1]}", 0)
    return {"present": present, "csv": prepared.csv_files.get(key, ""),
            "items": len(prepared.splits[key]) if present else 0,
            "has_ground_truth": prepared.has_ground_truth.get(key, False), "dropped_videos": dropped}


def write_prepared(prepared: Prepared, out_dir: Path) -> dict:
    """Write the prepared tables into `out_dir`; returns the manifest (also written as manifest.json).

    Tables of absent splits are not written (a stale one from an earlier run is removed); the manifest says
    which are absent.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {"pretrain.parquet": prepared.pool if prepared.pool_present else None}
    tables.update({f"{t}_{s}.parquet": prepared.splits.get((t, s)) for t, s in BENCHMARK_KEYS})
    for name, df in tables.items():
        if df is not None:
            write_table(df, out_dir / name)
        else:
            (out_dir / name).unlink(missing_ok=True)
    write_csv(out_dir / "filter_decisions.csv", prepared.decisions)
    write_csv(out_dir / "filter_report.csv", prepared.report)
    write_csv(out_dir / "leakage.csv", prepared.leakage)
    write_csv(out_dir / MISSING_VIDEOS_FILE, prepared.missing_videos)
    skips = prepared.skip_counts()
    manifest = {
        "pool": {"present": prepared.pool_present, "csv": prepared.csv_files.get(("pretrain", POOL), ""),
                 "raw": prepared.raw_pool_size, "kept": len(prepared.pool), "skipped_rows": prepared.skipped_pool_rows,
                 "unreadable_videos": skips["pool_unreadable_videos"]},
        "splits": {f"{t}_{s}": _split_entry(prepared, (t, s)) for t, s in BENCHMARK_KEYS},
        "absent": prepared.absent(),
        "skips": skips,
        "missing_videos_file": MISSING_VIDEOS_FILE,
        "leaking_records": len(prepared.leakage),
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest
