"""Import ratings exported by the rating page: validate every row against the package, then de-blind with the key.

The CSV format is the page's export (:data:`vlstudy.humaneval.page.RATINGS_COLUMNS`): ``rater, item_id, slot,
grade, best, timestamp``; one file per rater or several raters in one file. A row must name a rater, an item of
the package, one of that item's slots, a grade A–D (letters are upper-cased; the grade may be empty only on a row
that is the rater's best pick) and ``best`` 0 or 1. A (rater, item, slot) may appear once, and a rater picks at
most one best response per item. Every violation is reported as ``<file> row <n>: <problem>``, where ``n`` is the
row number a spreadsheet shows (the header is row 1); all problems are listed in one :class:`RatingsError`.

The de-blinded long table (one row per rater and response) is what :mod:`vlstudy.humaneval.analysis` reads, the
same table that :mod:`vlstudy.humaneval.simulate` produces for its simulated panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vlstudy.humaneval.page import RATINGS_COLUMNS
from vlstudy.humaneval.protocol import GRADES, read_key, read_manifest

__all__ = ["RatingsError", "HUMAN_PANEL", "LONG_COLUMNS", "read_ratings_csv", "validate_ratings", "read_ratings"]

HUMAN_PANEL = "human raters"
LONG_COLUMNS: tuple[str, ...] = ("rater", "item_id", "model", "grade", "best", "simulated")
"""The columns every ratings table has (real or simulated); ``grade`` is None on a best-pick-only row."""

MAX_LISTED = 10


class RatingsError(ValueError):
    """Ratings that do not fit the package; the message names the file and row of every problem."""


def read_ratings_csv(path: str | Path) -> pd.DataFrame:
    """One ratings CSV as strings, with ``source`` (the file name) and ``row`` (spreadsheet row) added.

    Raises:
        RatingsError: the file lacks one of :data:`RATINGS_COLUMNS`.
    """
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in RATINGS_COLUMNS if c not in raw.columns]
    if missing:
        raise RatingsError(f"{path}: missing column(s) {missing} (expected {', '.join(RATINGS_COLUMNS)})")
    raw = raw[list(RATINGS_COLUMNS)].apply(lambda col: col.str.strip())
    raw.insert(0, "row", range(2, len(raw) + 2))
    raw.insert(0, "source", str(path))
    return raw


def validate_ratings(raw: pd.DataFrame, manifest: dict, key: dict) -> pd.DataFrame:
    """Check raw rating rows against the package and de-blind them.

    Args:
        raw: rows from :func:`read_ratings_csv` (several files concatenated is fine).
        manifest: the package's ``items.json``.
        key: the package's blinding key.

    Returns:
        The long table: :data:`LONG_COLUMNS` plus ``slot``, ``video_id``, ``aspect``, ``timestamp``, ``source``
        and ``row``; ``simulated`` is False. ``attrs["source"]`` names the files.

    Raises:
        RatingsError: listing every problem as ``<file> row <n>: …``.
    """
    if key["package_id"] != manifest["package_id"]:
        raise RatingsError(f"the key is for package {key['package_id']}, the ratings' package is "
                           f"{manifest['package_id']}: wrong key file")
    items = {item["item_id"]: item for item in manifest["items"]}
    problems: list[str] = []
    seen: dict[tuple[str, str, str], str] = {}
    best_seen: dict[tuple[str, str], str] = {}
    for r in raw.itertuples(index=False):
        where = f"{r.source} row {r.row}"
        if not r.rater:
            problems.append(f"{where}: missing rater name")
            continue
        if r.item_id not in items:
            problems.append(f"{where}: unknown item_id {r.item_id!r}")
            continue
        slots = list(items[r.item_id]["responses"])
        if r.slot not in slots:
            problems.append(f"{where}: unknown slot {r.slot!r} for item {r.item_id} (slots {', '.join(slots)})")
            continue
        if r.best not in ("0", "1"):
            problems.append(f"{where}: best must be 0 or 1, got {r.best!r}")
            continue
        if r.grade.upper() not in GRADES and not (r.grade == "" and r.best == "1"):
            problems.append(f"{where}: grade {r.grade!r} is not one of {', '.join(GRADES)}")
            continue
        unit = (r.rater, r.item_id, r.slot)
        if unit in seen:
            problems.append(f"{where}: duplicate of {seen[unit]} (rater {r.rater!r}, item {r.item_id}, slot {r.slot})")
            continue
        seen[unit] = where
        if r.best == "1":
            if (r.rater, r.item_id) in best_seen:
                problems.append(f"{where}: a second best pick for item {r.item_id} by rater {r.rater!r} "
                                f"(the first is {best_seen[r.rater, r.item_id]})")
                continue
            best_seen[r.rater, r.item_id] = where
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  … and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise RatingsError(f"{len(problems)} invalid rating row(s):\n  {listed}{more}")
    if raw.empty:
        raise RatingsError("no ratings: the file(s) hold a header only")

    assignment = key["assignment"]
    out = pd.DataFrame({
        "rater": raw["rater"],
        "item_id": raw["item_id"],
        "model": [assignment[i][s] for i, s in zip(raw["item_id"], raw["slot"])],
        "grade": raw["grade"].str.upper().where(raw["grade"] != "", None),
        "best": raw["best"] == "1",
        "simulated": False,
        "slot": raw["slot"],
        "video_id": raw["item_id"].map(lambda i: items[i]["video_id"]),
        "aspect": raw["item_id"].map(lambda i: items[i]["aspect"]),
        "timestamp": raw["timestamp"],
        "source": raw["source"],
        "row": raw["row"],
    }).reset_index(drop=True)
    out.attrs["source"] = f"{HUMAN_PANEL}: {', '.join(dict.fromkeys(raw['source']))}"
    return out


def read_ratings(paths: str | Path | Sequence[str | Path], package_dir: str | Path,
                 key_path: str | Path) -> pd.DataFrame:
    """Read, validate and de-blind one or more ratings CSVs (see :func:`validate_ratings`)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise RatingsError("no ratings file given")
    raw = pd.concat([read_ratings_csv(p) for p in paths], ignore_index=True)
    return validate_ratings(raw, read_manifest(package_dir), read_key(key_path))
