"""Leakage-free splits: groups by shared source or title, assignment, and the loud checkers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlstudy.data.splits import (
    LeakageError,
    assign_splits,
    check_no_leakage,
    check_pool_disjoint,
    find_leakage,
    leakage_groups,
)


def table(rows: list[tuple[str, str, str | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video_id", "source_id", "title", "label"])


def test_groups_join_shared_sources_and_titles_transitively():
    df = table([
        ("a", "s1", "猫咪日常", 0),
        ("b", "s1", "另一只猫", 0),   # same source as a
        ("c", "s2", "另一只猫", 1),   # same title as b -> joins a's group
        ("d", "s3", "篮球比赛", 2),
        ("e", "s4", None, 2),         # no title: links nothing
        ("f", "s5", "  ", 2),         # blank title: links nothing
        ("g", "s6", None, 3),
    ])
    groups = leakage_groups(df)
    assert groups.tolist() == [0, 0, 0, 1, 2, 3, 4]
    assert leakage_groups(df, keys=("source_id",)).tolist() == [0, 0, 1, 2, 3, 4, 5]


def test_assign_splits_keeps_groups_whole_hits_fractions_and_is_reproducible():
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({
        "video_id": [f"v{i}" for i in range(n)],
        "source_id": [f"s{i // 3}" for i in range(n)],  # 3 clips per source
        "title": [f"标题{i // 2}" if i % 5 else None for i in range(n)],
        "label": rng.integers(0, 4, n),
    })
    splits = assign_splits(df, {"train": 0.7, "val": 0.15, "test": 0.15}, np.random.default_rng(1), stratify="label")
    assert splits.index.equals(df.index)
    share = splits.value_counts(normalize=True)
    assert abs(share["train"] - 0.7) < 0.03 and abs(share["val"] - 0.15) < 0.03 and abs(share["test"] - 0.15) < 0.03
    per_group = pd.Series(splits.to_numpy()).groupby(leakage_groups(df)).nunique()
    assert (per_group == 1).all()
    for label, rows in df.groupby("label"):  # approximately stratified
        assert abs((splits[rows.index] == "train").mean() - 0.7) < 0.1, label
    again = assign_splits(df, {"train": 0.7, "val": 0.15, "test": 0.15}, np.random.default_rng(1), stratify="label")
    assert again.equals(splits)
    other = assign_splits(df, {"train": 0.7, "val": 0.15, "test": 0.15}, np.random.default_rng(2), stratify="label")
    assert not other.equals(splits)
    check_no_leakage({name: df[splits == name] for name in ("train", "val", "test")})


def test_assign_splits_rejects_bad_fractions():
    df = table([("a", "s1", "t", 0)])
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(df, {"train": 0.8, "val": 0.1}, np.random.default_rng(0))


def test_check_no_leakage_names_the_offending_ids_and_splits():
    train = table([("a", "s1", "猫咪日常", 0), ("b", "s2", "篮球比赛", 1)])
    test = table([("c", "s1", "别的标题", 0), ("d", "s3", "篮球比赛", 1), ("b", "s9", "独一无二", 1)])
    with pytest.raises(LeakageError) as e:
        check_no_leakage({"train": train, "test": test})
    message = str(e.value)
    assert "1 video_id value(s) in more than one split: 'b' in test (b) and train (b)" in message
    assert "1 source_id value(s) in more than one split: 's1' in test (c) and train (a)" in message
    assert "1 title value(s) in more than one split: '篮球比赛' in test (d) and train (b)" in message
    leaks = find_leakage({"train": train, "test": test})
    assert sorted(map(tuple, leaks.values.tolist())) == [
        ("source_id", "s1", "test", "c"), ("source_id", "s1", "train", "a"), ("title", "篮球比赛", "test", "d"),
        ("title", "篮球比赛", "train", "b"), ("video_id", "b", "test", "b"), ("video_id", "b", "train", "b")]


def test_check_no_leakage_passes_clean_splits_and_ignores_missing_titles():
    train = table([("a", "s1", None, 0), ("b", "s2", "一", 1)])
    val = table([("c", "s3", None, 0), ("d", "s4", "二", 1)])
    check_no_leakage({"train": train, "val": val})
    assert find_leakage({"train": train, "val": val}).empty


def test_pool_must_not_share_videos_or_sources_with_evaluation_splits():
    pool = table([("p1", "p1", "预训练标题", 0), ("p2", "src", "另一个", 0)])
    val = table([("v1", "v1", "验证集", 0)])
    check_pool_disjoint(pool, {"classification/val": val})
    leaked = table([("p1", "p1", "x", 0), ("v2", "src", "y", 0)])
    with pytest.raises(LeakageError, match=r"video_id 'p1' of the pre-training pool also in captioning/test; "
                                           r"source_id 'p1', 'src' of the pre-training pool also in captioning/test"):
        check_pool_disjoint(pool, {"classification/val": val, "captioning/test": leaked})
