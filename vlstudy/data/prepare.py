"""The ``data`` stage's logic: official CSVs → filtered pool + benchmark splits, checked for leakage.

1. Read the four official CSV formats from ``source.root`` (mini-Youku, or the real Youku-mPLUG release: the
   same readers, `vlstudy.data.youku`).
2. For mini-Youku, attach what its ground truth knows beyond the CSVs: the source video of each retrieval clip
   (needed for leakage checks), the VideoMind layers (factual / abstract / intent, 6W tags) and the Panda-style
   description and subtitles. Real data has none of these; the columns stay empty.
3. Run the dataset-construction filters of paper §3.1 on the pre-training pool (`vlstudy.data.filters`), with
   each filter's precision and recall when a ground truth is given.
4. Check that no source video or title falls on both sides of any task's train/val/test split, and that no
   pool video or source appears in a val/test split (`vlstudy.data.splits`). ``leakage="error"`` fails naming
   the offending ids; ``"warn"`` (for official splits one cannot change) records them in ``leakage.csv``.

`write_prepared` writes ``pretrain.parquet`` (the kept pool), ``<task>_<split>.parquet`` (record schema),
``filter_decisions.csv``, ``filter_report.csv``, ``leakage.csv`` and ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from vlstudy.data.filters import FilterConfig, apply_filters
from vlstudy.data.schema import write_table
from vlstudy.data.splits import LeakageError, check_no_leakage, check_pool_disjoint, find_leakage
from vlstudy.data.youku import SPLITS, YoukuSourceConfig, load_benchmark, load_split

__all__ = ["PrepareConfig", "Prepared", "prepare", "write_prepared", "attach_ground_truth", "EXTRA_COLUMNS"]

logger = logging.getLogger("vlstudy.data")

EXTRA_COLUMNS = ("source_id", "factual", "abstract", "intent", "tags_6w", "description", "subtitles")


@dataclass
class PrepareConfig:
    """Attributes:
        source: where the CSVs and videos are (default: the mini_youku stage's output).
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
    """What the data stage produced (all tables in the record schema unless said otherwise)."""

    pool: pd.DataFrame  # the kept pre-training pool
    splits: dict[tuple[str, str], pd.DataFrame]
    has_ground_truth: dict[tuple[str, str], bool]
    decisions: pd.DataFrame  # one row per pool video: the filters' flags
    report: pd.DataFrame  # per filter: removed, precision, recall
    leakage: pd.DataFrame  # offending records (empty when clean)
    raw_pool_size: int
    skipped_pool_rows: int


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


def prepare(config: PrepareConfig) -> Prepared:
    """Read, enrich, filter and check the data; nothing is written."""
    truth = pd.read_csv(config.ground_truth, keep_default_na=False, na_values=[""]) if config.ground_truth else None
    if truth is not None:
        truth["defect"] = truth["defect"].fillna("")
        truth["duplicate_of"] = truth["duplicate_of"].fillna("")
    pool = load_split(config.source, "pretrain")
    benchmark = load_benchmark(config.source)
    splits = {key: s.records for key, s in benchmark.items()}
    if truth is not None:
        splits = {key: attach_ground_truth(df, truth) for key, df in splits.items()}
    kept, decisions, report = apply_filters(pool.records, truth, config.filters)
    if truth is not None:
        kept = attach_ground_truth(kept, truth)
    leakage = _leakage(splits, kept, config.leakage)
    return Prepared(pool=kept, splits=splits, has_ground_truth={k: s.has_ground_truth for k, s in benchmark.items()},
                    decisions=decisions, report=report, leakage=leakage, raw_pool_size=len(pool.records),
                    skipped_pool_rows=pool.skipped)


def write_prepared(prepared: Prepared, out_dir: Path) -> dict:
    """Write the prepared tables into `out_dir`; returns the manifest (also written as manifest.json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(prepared.pool, out_dir / "pretrain.parquet")
    for (task, split), df in prepared.splits.items():
        write_table(df, out_dir / f"{task}_{split}.parquet")
    prepared.decisions.to_csv(out_dir / "filter_decisions.csv", index=False)
    prepared.report.to_csv(out_dir / "filter_report.csv", index=False)
    prepared.leakage.to_csv(out_dir / "leakage.csv", index=False)
    manifest = {
        "pool": {"raw": prepared.raw_pool_size, "kept": len(prepared.pool),
                 "skipped_rows": prepared.skipped_pool_rows},
        "splits": {f"{task}_{split}": {"items": len(df), "has_ground_truth": prepared.has_ground_truth[(task, split)]}
                   for (task, split), df in prepared.splits.items()},
        "leaking_records": len(prepared.leakage),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest
