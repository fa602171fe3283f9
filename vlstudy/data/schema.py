"""One record schema for every task: a video (or clip) with the texts that belong to it.

Each prepared split is a table (pandas DataFrame, stored as Parquet) whose rows are records. Every task reads
the same columns; a task uses the ones it needs and the others are empty:

===============  ===========  =====================================================================
column           type         meaning
===============  ===========  =====================================================================
video_id         str          the id as written in the CSV (``video_id:FILE`` or ``clip_name:FILE``)
video_path       str          where the file is (resolved against the data folder)
source_id        str          the source video a clip was cut from (= video_id for whole videos);
                              splits never separate records of one source
title            str | None   the video title (pre-training, classification)
label            Int64 | NA   class index 0..44 (classification); NA where there is no ground truth
captions         list[str]    reference captions (captioning: 1 in train, several in val/test;
                              retrieval: the clip's caption); [] where there is no ground truth
duration         float | NA   seconds, when known before decoding
factual          str | None   VideoMind layers: what is seen,
abstract         str | None   what it is about,
intent           str | None   why it was made ("[主体]通过[动作]旨在[意图]")
tags_6w          str | None   JSON object of the 6W tags (who/what/when/where/why/how)
description      str | None   Panda-70M style metadata: the video description
subtitles        str | None   and its subtitles
===============  ===========  =====================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from vlstudy.io import write_table as atomic_write_table

__all__ = ["Record", "RECORD_COLUMNS", "records_to_frame", "frame_to_records", "empty_frame", "validate_frame",
           "write_table", "read_table"]


@dataclass
class Record:
    video_id: str
    video_path: str
    source_id: str = ""
    title: str | None = None
    label: int | None = None
    captions: list[str] = field(default_factory=list)
    duration: float | None = None
    factual: str | None = None
    abstract: str | None = None
    intent: str | None = None
    tags_6w: str | None = None
    description: str | None = None
    subtitles: str | None = None

    def __post_init__(self):
        if not self.source_id:
            self.source_id = self.video_id


RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Record))
_STRING_COLUMNS = ("video_id", "video_path", "source_id", "title", "factual", "abstract", "intent", "tags_6w",
                   "description", "subtitles")


def empty_frame() -> pd.DataFrame:
    return records_to_frame([])


def records_to_frame(records: list[Record]) -> pd.DataFrame:
    """Records → a DataFrame with exactly RECORD_COLUMNS and their dtypes."""
    df = pd.DataFrame([asdict(r) for r in records], columns=list(RECORD_COLUMNS))
    return validate_frame(df)


def validate_frame(df: pd.DataFrame, where: str = "records") -> pd.DataFrame:
    """Check columns and coerce dtypes (label → Int64, duration → float, captions → list)."""
    missing = [c for c in RECORD_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing record column(s) {missing}")
    df = df[list(RECORD_COLUMNS)].copy()
    df["label"] = df["label"].astype("Int64")
    df["duration"] = pd.to_numeric(df["duration"], errors="raise").astype("float64")
    df["captions"] = df["captions"].map(lambda v: list(v) if v is not None else [])
    for col in _STRING_COLUMNS:
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    dup = df["video_id"][df["video_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{where}: duplicated video_id {dup.iloc[0]!r} ({len(dup)} duplicates)")
    return df.reset_index(drop=True)


def frame_to_records(df: pd.DataFrame) -> list[Record]:
    out = []
    for row in df.itertuples(index=False):
        d = row._asdict()
        d["label"] = None if pd.isna(d["label"]) else int(d["label"])
        d["duration"] = None if pd.isna(d["duration"]) else float(d["duration"])
        d["captions"] = list(d["captions"])
        out.append(Record(**d))
    return out


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a record table as Parquet, atomically (temporary file + rename)."""
    atomic_write_table(path, validate_frame(df, where=str(path)))


def read_table(path: Path) -> pd.DataFrame:
    """Read a record table written by `write_table`."""
    return validate_frame(pd.read_parquet(path), where=str(path))


def tags_to_json(tags: dict | None) -> str | None:
    return None if tags is None else json.dumps(tags, ensure_ascii=False, sort_keys=True)
