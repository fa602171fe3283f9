"""Leakage-free splits: records that share a source video or a title never fall on both sides of a split.

Youku-mPLUG's benchmarks cut several clips from one source video, and popular titles repeat; a split that puts
one clip in train and its sibling in test measures memorisation (the retrieval and captioning splits of MSR-VTT
and VATEX are made per source video for this reason). Records are tied into *leakage groups*: two records are
in one group when they share a value of any key (``source_id`` or an identical ``title`` by default), and
transitively so. The groups are the connected components of the bipartite graph records <-> key values
(scipy.sparse.csgraph), which is union-find without a hand-written loop.

`assign_splits` deals whole groups to splits; `check_no_leakage` and `check_pool_disjoint` verify any
given splits (also the official ones) and raise `LeakageError` naming the offending ids and splits;
`find_leakage` lists the offending records instead, for splits a stage reports on but cannot change. All
work with vectorised pandas group-bys, so they run on the real benchmark sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["LeakageError", "LEAKAGE_KEYS", "leakage_groups", "assign_splits", "find_leakage", "check_no_leakage",
           "check_pool_disjoint"]

LEAKAGE_KEYS: tuple[str, ...] = ("source_id", "title")
"""Keys that must not be shared across splits (besides ``video_id`` itself)."""

_SHOWN = 5  # offending values named in an error message


class LeakageError(ValueError):
    """Records that share a key fall in different splits; the message names the ids and splits."""


def _key_values(column: pd.Series) -> pd.Series:
    """Values that link records: missing and blank values link nothing."""
    values = column.astype(object).where(column.notna(), None)
    return values.map(lambda v: None if v is None or (isinstance(v, str) and not v.strip()) else v)


def leakage_groups(df: pd.DataFrame, keys: Sequence[str] = LEAKAGE_KEYS) -> np.ndarray:
    """Group records that share a value of any key, transitively.

    Args:
        df: a record table (any table with the `keys` columns).
        keys: columns whose shared values tie records together; missing or blank values tie nothing.

    Returns:
        int64 group label per row, shape (len(df),), numbered 0..G-1 in order of first appearance.
    """
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise KeyError(f"leakage_groups: missing column(s) {missing}")
    n = len(df)
    rows, nodes, offset = [], [], n
    for key in keys:
        values = _key_values(df[key])
        present = np.flatnonzero(values.notna().to_numpy())
        codes, uniques = pd.factorize(values.iloc[present])
        rows.append(present)
        nodes.append(offset + codes)
        offset += len(uniques)
    rows_all = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    nodes_all = np.concatenate(nodes) if nodes else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(rows_all)), (rows_all, nodes_all)), shape=(offset, offset))
    labels = connected_components(graph, directed=False)[1][:n]
    return pd.factorize(labels)[0].astype(np.int64)


def assign_splits(df: pd.DataFrame, fractions: Mapping[str, float], rng: np.random.Generator,
                  stratify: str | None = None, keys: Sequence[str] = LEAKAGE_KEYS) -> pd.Series:
    """Deal whole leakage groups to splits so that split sizes approach `fractions`.

    Groups are visited in a random order (largest first within a stratum, so big groups do not overshoot at
    the end) and each goes to the split furthest below its target share. With `stratify`, this runs per
    stratum, the stratum of a group being its most common value of that column, so each split gets about
    `fractions` of every stratum (approximately: a group is never cut).

    Args:
        df: the records to split.
        fractions: split name -> share, e.g. ``{"train": 0.8, "val": 0.1, "test": 0.1}``; must sum to 1.
        rng: the random generator (the only source of randomness).
        stratify: a column (e.g. ``label``) to balance across splits, or None.
        keys: the leakage keys (see `leakage_groups`).

    Returns:
        The split name of each row, indexed like `df`.
    """
    names = list(fractions)
    shares = np.array([fractions[s] for s in names], dtype=np.float64)
    if len(names) == 0 or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {dict(fractions)}")
    group = leakage_groups(df, keys)
    sizes = np.bincount(group)
    if stratify is None:
        stratum = np.zeros(len(sizes), np.int64)
    else:
        codes = pd.factorize(df[stratify].astype(object).where(df[stratify].notna(), "<NA>"))[0]
        table = pd.crosstab(group, codes)  # groups x strata counts
        stratum = table.to_numpy().argmax(axis=1)
    split_of_group = np.empty(len(sizes), np.int64)
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        members = members[rng.permutation(len(members))]
        members = members[np.argsort(-sizes[members], kind="stable")]
        target = shares * sizes[members].sum()
        filled = np.zeros(len(names))
        for g in members:
            choice = int(np.argmax((target - filled) / np.maximum(target, 1e-12)))
            split_of_group[g] = choice
            filled[choice] += sizes[g]
    return pd.Series(np.array(names, dtype=object)[split_of_group[group]], index=df.index, name="split")


def find_leakage(splits: Mapping[str, pd.DataFrame], keys: Sequence[str] = LEAKAGE_KEYS,
                 id_column: str = "video_id") -> pd.DataFrame:
    """Every record whose id, or value of a key, also occurs in another split.

    Args:
        splits: split name -> its records.
        keys: columns that must not be shared (missing / blank values are ignored); `id_column` is always checked.
        id_column: the record id column.

    Returns:
        One row per offending (key, record): columns ``key``, ``value``, ``split``, and the record's `id_column`;
        empty when the splits are clean. (A stage can log it for official splits it cannot change.)
    """
    columns = ["key", "value", "split", id_column]
    frames = [pd.DataFrame({"split": name, id_column: df[id_column].to_numpy(),
                            **{k: _key_values(df[k]).to_numpy() for k in keys if k != id_column}})
              for name, df in splits.items()]
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True)
    found = []
    for key in (id_column, *(k for k in keys if k != id_column)):
        present = table[table[key].notna()]
        n_splits = present.groupby(key, sort=False)["split"].transform("nunique")
        shared = present[n_splits > 1]
        found.append(pd.DataFrame({"key": key, "value": shared[key].to_numpy(), "split": shared["split"].to_numpy(),
                                   id_column: shared[id_column].to_numpy()}))
    return pd.concat(found, ignore_index=True)[columns]


def _describe(value, owners: pd.DataFrame, id_column: str) -> str:
    parts = []
    for split, rows in owners.groupby("split", sort=True):
        ids = rows[id_column].astype(str).tolist()
        shown = ", ".join(ids[:3]) + (f", ... ({len(ids)} records)" if len(ids) > 3 else "")
        parts.append(f"{split} ({shown})")
    return f"{value!r} in " + " and ".join(parts)


def check_no_leakage(splits: Mapping[str, pd.DataFrame], keys: Sequence[str] = LEAKAGE_KEYS,
                     id_column: str = "video_id") -> None:
    """Fail loudly when a split shares an id, or a value of any key, with another split.

    Args:
        splits: split name -> its records.
        keys: columns that must not be shared (missing / blank values are ignored); `id_column` is always checked.
        id_column: the record id column, named in the message.

    Raises:
        LeakageError: naming, per offending key, up to five shared values with the ids and splits holding them.
    """
    leaks = find_leakage(splits, keys, id_column)
    problems = []
    for key, rows in leaks.groupby("key", sort=False):
        shared = rows["value"].drop_duplicates()
        shown = [_describe(v, rows[rows["value"] == v], id_column) for v in shared.iloc[:_SHOWN]]
        more = f"; and {len(shared) - _SHOWN} more" if len(shared) > _SHOWN else ""
        problems.append(f"{len(shared)} {key} value(s) in more than one split: " + "; ".join(shown) + more)
    if problems:
        raise LeakageError("split leakage: " + " | ".join(problems))


def check_pool_disjoint(pool: pd.DataFrame, evaluation: Mapping[str, pd.DataFrame],
                        keys: Sequence[str] = ("video_id", "source_id")) -> None:
    """Fail loudly when a pre-training pool video or source also appears in an evaluation split.

    Args:
        pool: the pre-training records.
        evaluation: split name (e.g. ``"classification/val"``) -> its records.
        keys: columns compared between the pool and each evaluation split.

    Raises:
        LeakageError: naming the shared values and the evaluation splits that hold them.
    """
    problems = []
    for key in keys:
        in_pool = set(_key_values(pool[key]).dropna())
        for name, df in evaluation.items():
            values = _key_values(df[key]).dropna()
            shared = sorted(set(values) & in_pool, key=str)
            if shared:
                shown = ", ".join(repr(v) for v in shared[:_SHOWN])
                more = f" and {len(shared) - _SHOWN} more" if len(shared) > _SHOWN else ""
                problems.append(f"{key} {shown}{more} of the pre-training pool also in {name}")
    if problems:
        raise LeakageError("pre-training pool leaks into evaluation: " + "; ".join(problems))
