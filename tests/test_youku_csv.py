"""Readers of the official Youku-mPLUG CSVs: formats, class mapping, ground-truth-free splits, bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vlstudy.data.classes import CLASS_NAMES, UnknownClassError
from vlstudy.data.schema import RECORD_COLUMNS
from vlstudy.data.youku import (
    ID_COLUMN,
    REQUIRED_COLUMNS,
    MissingVideoError,
    YoukuFormatError,
    YoukuSourceConfig,
    iter_csv_batches,
    load_benchmark,
    load_split,
    parse_caption_cell,
    read_csv_columns,
)
from vlstudy.data.youku_csv import LineIndex

CAPTIONS_VAL = "\"['一个人在舞台上唱歌', \"\"画面中一位歌手在唱歌\"\"]\""  # CSV-quoted Python list, mixed quotes


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def touch_videos(root: Path, *names: str) -> None:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / "videos" / name).write_bytes(b"")


@pytest.fixture
def release(tmp_path: Path) -> YoukuSourceConfig:
    """A complete tiny release in the official layout (videos are empty files: only existence is checked)."""
    write(tmp_path / "pretrain.csv", "video_id:FILE,title\np1.mp4,今天带大家做一道家常红烧肉\np2.mp4,篮球比赛精彩瞬间合集\n")
    for split, labels in (("train", ("翻唱", "美食测评")), ("val", ("电视剧周边（预告/杂谈）", "MV")), ("test", ("", ""))):
        write(tmp_path / f"classification_{split}.csv",
              f"video_id:FILE,title,label\nc{split}1.mp4,第一个视频的标题,{labels[0]}\nc{split}2.mp4,第二个视频的标题,{labels[1]}\n")
    write(tmp_path / "captioning_train.csv", "video_id:FILE,golden_caption\nk1.mp4,一位厨师在厨房里切菜\n")
    write(tmp_path / "captioning_val.csv", f"video_id:FILE,golden_caption\nk2.mp4,{CAPTIONS_VAL}\n")
    write(tmp_path / "captioning_test.csv", "video_id:FILE,golden_caption\nk3.mp4,\nk4.mp4,\n")
    write(tmp_path / "retrieval_train.csv", "clip_name:FILE,caption\nr1.mp4,一只小猫在草地上玩耍\n")
    write(tmp_path / "retrieval_val.csv", "clip_name:FILE,caption\nr2.mp4,两个人在打篮球\n")
    write(tmp_path / "retrieval_test.csv", "clip_name:FILE,caption\nr3.mp4,\n")
    touch_videos(tmp_path, "p1.mp4", "p2.mp4", *(f"c{s}{i}.mp4" for s in ("train", "val", "test") for i in (1, 2)),
                 "k1.mp4", "k2.mp4", "k3.mp4", "k4.mp4", "r1.mp4", "r2.mp4", "r3.mp4")
    return YoukuSourceConfig(tmp_path, decode_check="none")


def test_official_column_names_and_class_order():
    assert REQUIRED_COLUMNS == {
        "pretrain": ("video_id:FILE", "title"),
        "classification": ("video_id:FILE", "title", "label"),
        "captioning": ("video_id:FILE", "golden_caption"),
        "retrieval": ("clip_name:FILE", "caption"),
    }
    assert ID_COLUMN["retrieval"] == "clip_name:FILE"
    assert len(CLASS_NAMES) == 45
    assert (CLASS_NAMES[0], CLASS_NAMES[2], CLASS_NAMES[11], CLASS_NAMES[44]) == (
        "翻唱", "电视剧周边（预告/杂谈）", "电影周边（预告/杂谈）", "美食测评")


def test_reads_every_format_into_one_record_schema(release: YoukuSourceConfig):
    splits = load_benchmark(release)
    assert set(splits) == {("pretrain", "pool"), *((t, s) for t in ("classification", "captioning", "retrieval")
                                                  for s in ("train", "val", "test"))}
    for split in splits.values():
        assert list(split.records.columns) == list(RECORD_COLUMNS)

    pool = splits[("pretrain", "pool")].records
    assert pool["video_id"].tolist() == ["p1.mp4", "p2.mp4"]
    assert pool["video_path"].tolist() == [str(release.root / "videos" / v) for v in ("p1.mp4", "p2.mp4")]
    assert pool["source_id"].tolist() == pool["video_id"].tolist()
    assert pool["title"].iloc[1] == "篮球比赛精彩瞬间合集"

    assert splits[("classification", "train")].records["label"].tolist() == [0, 44]
    assert splits[("classification", "val")].records["label"].tolist() == [2, 23]
    assert splits[("captioning", "train")].records["captions"].iloc[0] == ["一位厨师在厨房里切菜"]
    assert splits[("captioning", "val")].records["captions"].iloc[0] == ["一个人在舞台上唱歌", "画面中一位歌手在唱歌"]
    assert splits[("retrieval", "val")].records["captions"].iloc[0] == ["两个人在打篮球"]


def test_split_without_ground_truth_is_flagged_not_an_error(release: YoukuSourceConfig):
    cls = load_split(release, "classification", "test")
    assert not cls.has_ground_truth
    assert cls.records["label"].isna().all()
    assert cls.records["title"].tolist() == ["第一个视频的标题", "第二个视频的标题"]
    cap = load_split(release, "captioning", "test")
    assert not cap.has_ground_truth and cap.records["captions"].tolist() == [[], []]
    assert not load_split(release, "retrieval", "test").has_ground_truth
    assert load_split(release, "captioning", "val").has_ground_truth


def test_file_names_and_video_folder_are_configurable(tmp_path: Path):
    write(tmp_path / "csv" / "cls-val.csv", "video_id:FILE,title,label\nv.mp4,一个标题很好,篮球\n")
    touch_videos(tmp_path / "media", "v.mp4")
    (tmp_path / "media" / "videos" / "v.mp4").rename(tmp_path / "media" / "v.mp4")
    config = YoukuSourceConfig(tmp_path / "csv", video_dir=str(tmp_path / "media"),
                               classification_file="cls-{split}.csv", decode_check="none")
    split = load_split(config, "classification", "val")
    assert split.records["label"].tolist() == [12]
    assert split.records["video_path"].iloc[0] == str(tmp_path / "media" / "v.mp4")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        config.csv_path("classification", "dev")


def test_caption_lists_are_parsed_as_literals_never_evaluated(tmp_path: Path):
    where = "x.csv: line 2, column 'golden_caption'"
    assert parse_caption_cell("['a', \"b\"]", where) == ["a", "b"]
    assert parse_caption_cell("  一句话的描述 ", where) == ["一句话的描述"]
    marker = tmp_path / "pwned"
    with pytest.raises(YoukuFormatError, match=r"x\.csv: line 2, column 'golden_caption': caption list does not parse"):
        parse_caption_cell(f"[__import__('pathlib').Path({str(marker)!r}).touch()]", where)
    assert not marker.exists()
    with pytest.raises(YoukuFormatError, match="expected a list of strings"):
        parse_caption_cell("[1, 2]", where)
    with pytest.raises(YoukuFormatError, match="empty caption"):
        parse_caption_cell("['好', '  ']", where)
    with pytest.raises(YoukuFormatError, match="does not parse"):
        parse_caption_cell("['没有结尾的列表'", where)


def test_missing_required_column_names_file_and_column(tmp_path: Path):
    path = write(tmp_path / "classification_train.csv", "video_id:FILE,title\nv.mp4,一个标题\n")
    with pytest.raises(YoukuFormatError) as e:
        load_split(YoukuSourceConfig(tmp_path), "classification", "train")
    assert str(e.value) == (f"{path}: missing required column(s) ['label']; found columns ['video_id:FILE', 'title'], "
                            "expected ['video_id:FILE', 'title', 'label']")


def test_unknown_class_name_names_file_line_and_column(tmp_path: Path):
    path = write(tmp_path / "classification_val.csv", "video_id:FILE,title,label\na.mp4,标题一,篮球\nb.mp4,标题二,体育\n")
    touch_videos(tmp_path, "a.mp4", "b.mp4")
    with pytest.raises(UnknownClassError, match=rf"{path}: line 3, column 'label': unknown class '体育'"):
        load_split(YoukuSourceConfig(tmp_path), "classification", "val")


def test_empty_pretrain_title_is_a_counted_logged_skip(tmp_path: Path, caplog):
    path = write(tmp_path / "pretrain.csv", "video_id:FILE,title\na.mp4,正常的标题\nb.mp4,\nc.mp4,\"  \"\nd.mp4,另一个标题\n")
    with caplog.at_level(logging.WARNING, logger="vlstudy.data.youku"):
        split = load_split(YoukuSourceConfig(tmp_path), "pretrain")
    assert split.skipped == 2
    assert split.records["video_id"].tolist() == ["a.mp4", "d.mp4"]
    assert f"{path}: skipped 2 row(s) with an empty title (first lines: [3, 4])" in caplog.text


@pytest.mark.parametrize("task, header, row, column", [
    ("classification", "video_id:FILE,title,label", "b.mp4,,篮球", "title"),
    ("classification", "video_id:FILE,title,label", "b.mp4,标题,", "label"),
    ("captioning", "video_id:FILE,golden_caption", "b.mp4,", "golden_caption"),
    ("retrieval", "clip_name:FILE,caption", "b.mp4,", "caption"),
])
def test_empty_cell_in_a_labelled_split_is_an_error(tmp_path: Path, task, header, row, column):
    first = {"classification": "a.mp4,标题,篮球", "captioning": "a.mp4,一句描述", "retrieval": "a.mp4,一句描述"}[task]
    path = write(tmp_path / f"{task}_val.csv", f"{header}\n{first}\n{row}\n")
    with pytest.raises(YoukuFormatError, match=rf"{path}: line 3, column '{column}': empty value"):
        load_split(YoukuSourceConfig(tmp_path, check_videos=False), task, "val")


def test_non_utf8_csv_names_the_line(tmp_path: Path):
    path = write(tmp_path / "pretrain.csv", "video_id:FILE,title\na.mp4,ascii only title\nb.mp4,中文标题用GBK编码\n",
                 encoding="gbk")
    with pytest.raises(YoukuFormatError, match=rf"{path}: line 3 is not valid UTF-8 .*re-encode the file as UTF-8"):
        load_split(YoukuSourceConfig(tmp_path), "pretrain")


def test_duplicated_ids_name_the_id_and_lines(tmp_path: Path):
    path = write(tmp_path / "retrieval_train.csv", "clip_name:FILE,caption\nx.mp4,一\ny.mp4,二\nx.mp4,三\n")
    with pytest.raises(YoukuFormatError, match=rf"{path}: column 'clip_name:FILE': id 'x.mp4' appears on "
                                               r"lines \[2, 4\]"):
        read_csv_columns(path, REQUIRED_COLUMNS["retrieval"])


def test_empty_id_names_the_line(tmp_path: Path):
    path = write(tmp_path / "pretrain.csv", "video_id:FILE,title\na.mp4,一个标题\n  ,另一个标题\n")
    with pytest.raises(YoukuFormatError, match=rf"{path}: line 3, column 'video_id:FILE': empty id \(1 row"):
        load_split(YoukuSourceConfig(tmp_path), "pretrain")


def test_missing_video_names_csv_line_and_path(tmp_path: Path):
    path = write(tmp_path / "retrieval_val.csv", "clip_name:FILE,caption\nhere.mp4,一\ngone.mp4,二\n")
    touch_videos(tmp_path, "here.mp4")
    with pytest.raises(MissingVideoError, match=rf"{path}: line 3, column 'clip_name:FILE': video file "
                                                rf"{tmp_path / 'videos' / 'gone.mp4'} not found"):
        load_split(YoukuSourceConfig(tmp_path, decode_check="none", missing_videos="error"), "retrieval", "val")


def test_pretrain_videos_are_checked_only_on_request(tmp_path: Path):
    write(tmp_path / "pretrain.csv", "video_id:FILE,title\nskipped.mp4,\ngone.mp4,一个标题\n")
    assert len(load_split(YoukuSourceConfig(tmp_path), "pretrain").records) == 1
    with pytest.raises(MissingVideoError, match="line 3"):  # the file's line, though a row above was skipped
        load_split(YoukuSourceConfig(tmp_path, check_pretrain_videos=True, missing_videos="error"), "pretrain")


# -- bad-input hardening ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, split", [("classification", "val"), ("retrieval", "train"), ("pretrain", "pool")])
def test_header_only_csv_is_an_error_naming_the_file(tmp_path: Path, task, split):
    config = YoukuSourceConfig(tmp_path)
    path = write(config.csv_path(task, split), ",".join(REQUIRED_COLUMNS[task]) + "\n")
    with pytest.raises(YoukuFormatError) as e:
        load_split(config, task, split)
    assert str(e.value) == (f"{path}: no data rows (the file holds only its header); delete the file if the "
                            f"{task} {split} split is absent from your copy of the release")


@pytest.mark.parametrize("task, header, column", [("classification", "video_id:FILE,title,label", "label"),
                                                  ("captioning", "video_id:FILE,golden_caption", "golden_caption"),
                                                  ("retrieval", "clip_name:FILE,caption", "caption")])
def test_all_blank_ground_truth_warns_for_train_and_val_only(tmp_path: Path, caplog, task, header, column):
    row = {"classification": "a.mp4,一个标题,", "captioning": "a.mp4,", "retrieval": "a.mp4,"}[task]
    config = YoukuSourceConfig(tmp_path, check_videos=False)
    for split in ("train", "val", "test"):
        write(config.csv_path(task, split), f"{header}\n{row}\n")
    with caplog.at_level(logging.WARNING, logger="vlstudy.data.youku"):
        splits = {split: load_split(config, task, split) for split in ("train", "val", "test")}
    assert not any(s.has_ground_truth for s in splits.values())
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [f"{config.csv_path(task, split)}: column {column!r} is empty in every row: read as a split "
                      "without ground truth (only the official test splits have none; the "
                      f"{task} {split} split should have it)" for split in ("train", "val")]


def test_line_numbers_count_the_lines_of_multiline_quoted_fields(tmp_path: Path):
    text = ("video_id:FILE,title,label\na.mp4,一个标题,篮球\nb.mp4,\"两行的\n标题\",篮球\n\nc.mp4,标题三,体育\n"
            "b.mp4,\"又一个\r\n两行标题\",篮球\n")
    path = write(tmp_path / "classification_val.csv", text)
    with pytest.raises(YoukuFormatError, match=r"id 'b.mp4' appears on lines \[3, 7\]"):
        read_csv_columns(path, REQUIRED_COLUMNS["classification"])
    write(path, text.replace("b.mp4,\"又一个", "d.mp4,\"又一个"))
    with pytest.raises(UnknownClassError, match=rf"{path}: line 6, column 'label': unknown class '体育'"):
        load_split(YoukuSourceConfig(tmp_path, check_videos=False), "classification", "val")
    assert LineIndex(path, 4).lines([3, 0, 2, 1]) == [7, 2, 6, 3]
    assert LineIndex(write(tmp_path / "plain.csv", "a,b\n1,2\n3,4"), 2).lines([0, 1]) == [2, 3]


@pytest.mark.parametrize("task, split, column", [("retrieval", "train", "caption"), ("retrieval", "val", "caption"),
                                                ("captioning", "train", "golden_caption")])
def test_a_caption_starting_with_a_bracket_is_plain_text(tmp_path: Path, task, split, column):
    config = YoukuSourceConfig(tmp_path, check_videos=False)
    write(config.csv_path(task, split), f"{ID_COLUMN[task]},{column}\na.mp4,[字幕]一个人在跑步\nb.mp4,\"['a', 'b']\"\n")
    assert load_split(config, task, split).records["captions"].tolist() == [["[字幕]一个人在跑步"], ["['a', 'b']"]]


def test_captioning_val_and_test_still_parse_list_literals(tmp_path: Path):
    config = YoukuSourceConfig(tmp_path, check_videos=False)
    for split in ("val", "test"):
        write(config.csv_path("captioning", split),
              f"video_id:FILE,golden_caption\na.mp4,{CAPTIONS_VAL}\nb.mp4,一句描述\n")
        assert load_split(config, "captioning", split).records["captions"].tolist() == [
            ["一个人在舞台上唱歌", "画面中一位歌手在唱歌"], ["一句描述"]]
    path = write(config.csv_path("captioning", "val"), "video_id:FILE,golden_caption\na.mp4,[字幕]一个人在跑步\n")
    with pytest.raises(YoukuFormatError, match=rf"{path}: line 2, column 'golden_caption': caption list does not "
                                               "parse"):
        load_split(config, "captioning", "val")


def test_ids_outside_the_video_folder_are_read_and_warned_about_once(tmp_path: Path, caplog):
    path = write(tmp_path / "retrieval_train.csv",
                 "clip_name:FILE,caption\nok.mp4,一\n../up.mp4,二\nsub/../../up2.mp4,三\n/abs/x.mp4,四\n")
    with caplog.at_level(logging.WARNING, logger="vlstudy.data.youku"):
        split = load_split(YoukuSourceConfig(tmp_path, check_videos=False), "retrieval", "train")
    videos = tmp_path / "videos"
    assert split.records["video_path"].tolist() == [str(videos / "ok.mp4"), str(videos / "../up.mp4"),
                                                    str(videos / "sub/../../up2.mp4"), "/abs/x.mp4"]
    assert split.outside == 3
    assert [r.getMessage() for r in caplog.records] == [(
        f"{path}: 3 id(s) resolve outside the video folder {videos} (lines [3, 4, 5], e.g. '../up.mp4' -> "
        f"{videos / '../up.mp4'}); they are read as given, as the official os.path.join does")]


def test_multiline_fields_stream_across_block_boundaries(tmp_path: Path):
    rows = "".join(f'v{i}.mp4,"第{i}行\n续行{i}"\n' for i in range(60))
    path = write(tmp_path / "retrieval_train.csv", "clip_name:FILE,caption\n" + rows)
    batches = [batch for _, batch in iter_csv_batches(path, REQUIRED_COLUMNS["retrieval"], block_bytes=200)]
    assert len(batches) > 1  # several blocks, the boundaries fall inside quoted fields
    captions = [c for batch in batches for c in batch.column("caption").to_pylist()]
    assert captions == [f"第{i}行\n续行{i}" for i in range(60)]
    assert LineIndex(path, 60).lines([0, 59]) == [2, 120]
