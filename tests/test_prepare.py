"""The data stage on real-release layouts: partial releases, missing and undecodable videos, the skip report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlstudy.data.filters import FilterConfig
from vlstudy.data.prepare import BENCHMARK_KEYS, PrepareConfig, prepare, write_prepared
from vlstudy.data.prepared import AbsentSplitError, present_in_manifest, read_manifest
from vlstudy.data.schema import read_table
from vlstudy.data.video import write_video
from vlstudy.data.youku import MissingVideoError, YoukuSourceConfig
from vlstudy.tasks.common import load_split as load_prepared

# Every official CSV of a tiny release: file name -> CSV text. Pool titles pass the §3.1 title rules; no title or
# video is shared between the pool and any benchmark split (leakage checks pass). The pool's row 1 has no title.
RELEASE = {
    "pretrain.csv": "video_id:FILE,title\np1.mp4,今天带大家看一场精彩的篮球比赛\np0.mp4,\np2.mp4,周末和朋友一起去海边旅游拍照\n"
                    "p3.mp4,可爱的小猫咪在家里玩毛线球\np4.mp4,一起来看看这道美食怎么做吧\np5.mp4,今天带大家做一道家常红烧肉\n",
    "classification_train.csv": "video_id:FILE,title,label\nct1.mp4,训练集的第一个标题,篮球\nct2.mp4,训练集的第二个标题,宠物\n",
    "classification_val.csv": "video_id:FILE,title,label\ncv1.mp4,验证集的第一个标题,篮球\ncv2.mp4,\"验证集的\n第二个标题\",宠物\n"
                              "cv3.mp4,验证集的第三个标题,MV\n",
    "classification_test.csv": "video_id:FILE,title,label\ncs1.mp4,测试集的一个标题,\n",
    "captioning_train.csv": "video_id:FILE,golden_caption\nkt1.mp4,[字幕]一位厨师在厨房里切菜\n",
    "captioning_val.csv": "video_id:FILE,golden_caption\nkv1.mp4,\"['一个人在舞台上唱歌', '一位歌手在唱歌']\"\n",
    "captioning_test.csv": "video_id:FILE,golden_caption\nks1.mp4,\n",
    "retrieval_train.csv": "clip_name:FILE,caption\nrt1.mp4,一只小猫在草地上玩耍\n",
    "retrieval_val.csv": "clip_name:FILE,caption\nrv1.mp4,两个人在打篮球\n",
    "retrieval_test.csv": "clip_name:FILE,caption\nrs1.mp4,\n",
}
MISSING = {"p4.mp4", "cv2.mp4"}  # named in the CSVs, no file
CORRUPT = {"p5.mp4", "cv3.mp4"}  # random bytes


def make_release(root: Path, files=tuple(RELEASE)) -> Path:
    """The CSVs named in `files`, and every video of the full release (good, corrupt or missing)."""
    videos = root / "videos"
    videos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [line.split(",")[0] for text in RELEASE.values() for line in text.splitlines()[1:] if ".mp4" in line]
    for video_id in ids:
        if video_id in CORRUPT:
            (videos / video_id).write_bytes(rng.bytes(2000))
        elif video_id not in MISSING:  # 11 s at 4 fps, 16x16, random content: no two alike
            write_video(videos / video_id, rng.integers(0, 256, (44, 16, 16, 3), dtype=np.uint8), fps=4,
                        options={"preset": "ultrafast", "threads": "1"})
    for name in files:
        (root / name).write_text(RELEASE[name], encoding="utf-8")
    return root


def config_for(root: Path, **source) -> PrepareConfig:
    return PrepareConfig(source=YoukuSourceConfig(root, **source), ground_truth=None,
                         filters=FilterConfig(num_workers=1, similarity_quantile=0.0))


def test_full_release_drops_unreadable_videos_lists_them_and_counts_every_skip(tmp_path: Path, caplog):
    root = make_release(tmp_path / "release")
    with caplog.at_level(logging.WARNING, logger="vlstudy.data"):
        prepared = prepare(config_for(root))
    manifest = write_prepared(prepared, tmp_path / "prepared")

    assert read_table(tmp_path / "prepared" / "classification_val.parquet")["video_id"].tolist() == ["cv1.mp4"]
    assert prepared.pool["video_id"].tolist() == ["p1.mp4", "p2.mp4", "p3.mp4"]
    missing = pd.read_csv(tmp_path / "prepared" / "missing_videos.csv")
    assert missing[["task", "split", "row", "line", "video_id"]].values.tolist() == [
        ["classification", "val", 1, 3, "cv2.mp4"], ["classification", "val", 2, 5, "cv3.mp4"],  # line 3-4: 2 lines
        ["pretrain", "pool", 4, 6, "p4.mp4"], ["pretrain", "pool", 5, 7, "p5.mp4"]]
    assert missing["file"].tolist() == [str(root / "videos" / v) for v in missing["video_id"]]
    assert missing["reason"].iloc[0] == "file not found" and missing["reason"].iloc[2] == "file not found"
    assert "InvalidDataError" in missing["reason"].iloc[1] and "InvalidDataError" in missing["reason"].iloc[3]

    assert manifest["skips"] == {
        "pool_empty_title_rows": 1, "pool_unreadable_videos": 2, "benchmark_dropped_videos": 2,
        "dropped_videos_by_split": {f"{t}_{s}": 2 if (t, s) == ("classification", "val") else 0
                                    for t, s in BENCHMARK_KEYS},
        "absent_splits": 0, "ids_outside_video_folder": 0}
    assert manifest["absent"] == [] and manifest["pool"]["unreadable_videos"] == 2
    assert manifest["splits"]["classification_val"] == {
        "present": True, "csv": str(root / "classification_val.csv"), "items": 1, "has_ground_truth": True,
        "dropped_videos": 2}
    assert json.loads((tmp_path / "prepared" / "manifest.json").read_text(encoding="utf-8")) == manifest
    # plain-text caption that starts with "[" (captioning train), a list literal (captioning val)
    assert prepared.splits[("captioning", "train")]["captions"].tolist() == [["[字幕]一位厨师在厨房里切菜"]]
    assert prepared.splits[("captioning", "val")]["captions"].tolist() == [["一个人在舞台上唱歌", "一位歌手在唱歌"]]
    # every unreadable video is named once in the log
    named = [r.getMessage() for r in caplog.records if "p4.mp4" in r.getMessage() or "cv3.mp4" in r.getMessage()]
    assert named == [(f"{root / 'classification_val.csv'}: line 5: dropped cv3.mp4 ({root / 'videos' / 'cv3.mp4'}): "
                      f"{missing['reason'].iloc[1]}"),
                     f"unreadable pool video p4.mp4 ({root / 'videos' / 'p4.mp4'}), removed: file not found"]


def test_missing_videos_error_mode_stops_naming_csv_line_and_file(tmp_path: Path):
    root = make_release(tmp_path / "release", files=("classification_val.csv",))
    with pytest.raises(MissingVideoError) as e:
        prepare(config_for(root, missing_videos="error"))
    assert str(e.value) == (f"{root / 'classification_val.csv'}: line 3, column 'video_id:FILE': video file "
                            f"{root / 'videos' / 'cv2.mp4'} not found (2 of 3 videos cannot be read; "
                            "source.missing_videos: drop drops such rows instead)")


@pytest.mark.parametrize("files", [
    ("classification_val.csv", "classification_test.csv", "captioning_val.csv", "captioning_test.csv",
     "retrieval_val.csv", "retrieval_test.csv"),  # the evaluation files only
    ("pretrain.csv",),  # the pool only
    ("classification_train.csv", "retrieval_val.csv"),  # odd pieces
])
def test_a_partial_release_is_ingested_and_the_absent_splits_recorded(tmp_path: Path, files):
    root = make_release(tmp_path / "release", files)
    prepared = prepare(config_for(root))
    manifest = write_prepared(prepared, tmp_path / "prepared")
    expected_absent = [name.removesuffix(".csv") for name in RELEASE if name not in files]
    expected_absent = ["pretrain_pool" if name == "pretrain" else name for name in expected_absent]
    assert manifest["absent"] == expected_absent
    assert manifest["skips"]["absent_splits"] == len(expected_absent)
    written = sorted(p.name for p in (tmp_path / "prepared").glob("*.parquet"))
    assert written == sorted("pretrain.parquet" if n == "pretrain.csv" else n.replace(".csv", ".parquet")
                             for n in files)
    for task, split in [("pretrain", "pool"), *BENCHMARK_KEYS]:
        name = "pretrain.csv" if task == "pretrain" else f"{task}_{split}.csv"
        assert present_in_manifest(read_manifest(tmp_path / "prepared"), task, split) == (name in files)
    assert manifest["pool"]["present"] == ("pretrain.csv" in files)
    assert manifest["pool"]["kept"] == (3 if "pretrain.csv" in files else 0)
    task, split = ("captioning", "train") if "pretrain.csv" in files else ("pretrain", "pool")
    with pytest.raises(AbsentSplitError, match=rf"{tmp_path / 'prepared'}: the .* is absent from the ingested copy"):
        load_prepared(tmp_path / "prepared", task, split)


def test_an_earlier_table_of_a_now_absent_split_is_removed(tmp_path: Path):
    write_prepared(prepare(config_for(make_release(tmp_path / "full"))), tmp_path / "prepared")
    assert (tmp_path / "prepared" / "retrieval_train.parquet").is_file()
    write_prepared(prepare(config_for(make_release(tmp_path / "part", ("retrieval_val.csv",)))), tmp_path / "prepared")
    assert sorted(p.name for p in (tmp_path / "prepared").glob("*.parquet")) == ["retrieval_val.parquet"]


def test_no_official_csv_at_all_names_the_folder(tmp_path: Path):
    root = make_release(tmp_path / "release", files=())
    with pytest.raises(FileNotFoundError, match=rf"{root}: none of the official CSV files is there \(expected any "
                                                r"of \['captioning_test.csv', .*'retrieval_val.csv'\]\); check "
                                                "source.root"):
        prepare(config_for(root))


def test_a_split_none_of_whose_videos_can_be_read_is_an_error_not_an_empty_split(tmp_path: Path):
    root = make_release(tmp_path / "release", files=("retrieval_val.csv", "pretrain.csv"))
    with pytest.raises(MissingVideoError, match=r"none of the 1 videos of this split can be read: check source.root "
                                                "and source.video_dir"):
        prepare(config_for(root, video_dir="elsewhere"))
    (root / "retrieval_val.csv").unlink()
    with pytest.raises(MissingVideoError, match=rf"{root / 'pretrain.csv'}: none of the 5 pool videos can be read "
                                                rf"\(first: {root / 'elsewhere' / 'p1.mp4'}: file not found\)"):
        prepare(config_for(root, video_dir="elsewhere"))
