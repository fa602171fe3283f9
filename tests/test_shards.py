"""WebDataset shards: packing layout, items equal to VideoDataset's, every sample once over 2 ranks x 2 workers,
bad videos skipped and counted, the command line."""

from __future__ import annotations

import logging
import os
import shutil
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
import webdataset as wds

from vlstudy.data.datasets import VideoDataset
from vlstudy.data.schema import Record, records_to_frame, write_table
from vlstudy.data.shards import ShardDataset, epoch_ranges, main, make_shard_loader, pack_shards, read_index


def _same_item(ours: dict, reference: dict) -> None:
    assert ours.keys() == reference.keys()
    for key, value in reference.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(ours[key], value), key
        elif key == "error":  # same reason, named after the shard member instead of the file
            assert value.split(": ", 1)[1] in ours[key] and ours[key].startswith("shard-")
        else:
            assert ours[key] == value, key


def test_pack_layout_index_and_reproducible_bytes(video_records, tmp_path):
    index = pack_shards(video_records, tmp_path / "a", shard_size=2, progress=False)
    assert [(s.name, s.start, s.count, s.missing) for s in index.shards] == [
        ("shard-000000.tar", 0, 2, 0), ("shard-000001.tar", 2, 2, 0), ("shard-000002.tar", 4, 1, 1)]
    assert read_index(tmp_path / "a") == index and index.total == 5
    with tarfile.open(tmp_path / "a" / "shard-000001.tar") as tar:
        assert tar.getnames() == ["000000002.json", "000000002.mp4", "000000003.json", "000000003.mp4"]
    pack_shards(video_records, tmp_path / "b", shard_size=2, workers=2, progress=False)
    for shard in index.shards:
        assert (tmp_path / "a" / shard.name).read_bytes() == (tmp_path / "b" / shard.name).read_bytes()
    # plain WebDataset shards: the package's own reader sees every sample, the missing video as its record only
    urls = [str(tmp_path / "a" / s.name) for s in index.shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(5)]
    assert "mp4" not in samples[4] and b"file not found" in samples[4]["json"]
    (tmp_path / "a" / "shards.json").unlink()
    with pytest.raises(FileNotFoundError, match="shards.json: no shard index"):
        read_index(tmp_path / "a")


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_shard_items_equal_video_dataset_items(video_records, tmp_path, mode):
    pack_shards(video_records, tmp_path, shard_size=2, progress=False)
    fields = ("title", "label", "captions")
    ours = ShardDataset(tmp_path, num_frames=4, mode=mode, image_size=32, seed=5, fields=fields, rank=0,
                        world_size=1, drop_last=False)
    reference = VideoDataset(video_records, num_frames=4, mode=mode, image_size=32, seed=5, fields=fields)
    ours.set_epoch(3)
    reference.set_epoch(3)
    items = list(ours)
    assert sorted(item["index"] for item in items) == [0, 1, 2, 3, 4]
    for item in items:
        _same_item(item, reference[item["index"]])
    assert [item["index"] for item in items if item["video"] is None] == [3, 4]  # corrupt, missing


def test_epoch_ranges_known_values():
    assert epoch_ranges(10, 3, 2, drop_last=True) == [[(0, 2), (2, 3)], [(3, 5), (5, 6)], [(6, 8), (8, 9)]]
    assert epoch_ranges(10, 3, 2, drop_last=False) == [[(0, 2), (2, 4)], [(4, 6), (6, 7)], [(7, 9), (9, 10)]]
    assert epoch_ranges(4, 1, 3, drop_last=True) == [[(0, 2), (2, 3), (3, 4)]]


@pytest.fixture(scope="module")
def many_records(tmp_path_factory, video_files):
    """23 records over three small good videos, one corrupt file and one missing file (rows 5 and 17)."""
    good = [video_files.long, video_files.short, video_files.wide]
    paths = [video_files.corrupt if i == 5 else video_files.missing if i == 17 else good[i % 3] for i in range(23)]
    table = records_to_frame([Record(video_id=f"v{i:02d}", video_path=os.fspath(p), title=f"t{i}")
                              for i, p in enumerate(paths)])
    folder = tmp_path_factory.mktemp("shards")
    pack_shards(table, folder, shard_size=4, progress=False)
    return table, folder


def _pass(folder, rank: int, epoch: int, drop_last: bool) -> tuple[list[dict], dict[str, str]]:
    """One epoch on `rank` of 2, through a loader with 2 workers: the batches and the loader's skipped videos."""
    dataset = ShardDataset(folder, num_frames=2, mode="train", image_size=32, seed=1, rank=rank, world_size=2,
                           drop_last=drop_last)
    dataset.set_epoch(epoch)
    loader = make_shard_loader(dataset, batch_size=3, num_workers=2)
    return list(loader), loader.skipped


def _rows(batches: list[dict], table: pd.DataFrame) -> list[int]:
    """The table row of every sample read, kept or skipped."""
    ids = table["video_id"].tolist()
    return [row for batch in batches for row in [*batch["index"], *map(ids.index, batch["skipped"])]]


def test_two_ranks_two_workers_see_every_sample_exactly_once(many_records, caplog):
    table, folder = many_records
    with caplog.at_level(logging.WARNING, logger="vlstudy.data"):
        (batches0, skipped0), (batches1, skipped1) = (_pass(folder, rank, 0, drop_last=False) for rank in (0, 1))
    rows0, rows1 = _rows(batches0, table), _rows(batches1, table)
    assert (len(rows0), len(rows1)) == (12, 11)  # 23 = 12 + 11: the first rank takes the remainder
    assert sorted(rows0 + rows1) == list(range(23))
    skipped = {**skipped0, **skipped1}
    assert sorted(skipped) == ["v05", "v17"]
    assert "file not found" in skipped["v17"] and "(packed from " in skipped["v05"]
    assert sum("skipping unreadable video" in r.message for r in caplog.records) == 2  # each logged once

    # training (drop_last): both ranks read 11 samples in as many batches; the one left out is the epoch's last
    for epoch in (0, 1):
        (batches0, _), (batches1, _) = (_pass(folder, rank, epoch, drop_last=True) for rank in (0, 1))
        assert len(batches0) == len(batches1) == 4  # two workers x (3 + 3 or 3 + 2 samples)
        last_shard = int(np.random.default_rng([1, epoch, 2]).permutation(6)[-1])  # the epoch's shard order
        left_out = min(4 * last_shard + 3, 22)  # the last sample of the last shard read
        rows = _rows(batches0, table) + _rows(batches1, table)
        assert len(rows) == 22 and set(rows) == set(range(23)) - {left_out}


def test_shuffle_buffer_changes_the_order_not_the_set(many_records):
    _, folder = many_records

    def indices(buffer: int) -> list[int]:
        dataset = ShardDataset(folder, num_frames=2, mode="eval", image_size=32, rank=0, world_size=1,
                               on_error="skip", shuffle_buffer=buffer)
        return [item["index"] for item in dataset]

    plain, mixed = indices(0), indices(5)
    assert sorted(plain) == sorted(mixed) and plain != mixed and indices(5) == mixed


def test_command_line_packs_a_table_or_the_official_layout(video_files, video_records, tmp_path, capsys):
    write_table(video_records, tmp_path / "table.parquet")
    main(["pack", str(tmp_path / "out"), "--table", str(tmp_path / "table.parquet"), "--shard-size", "3"])
    assert capsys.readouterr().out.strip().endswith("5 samples in 2 shards (1 videos missing)")
    assert [s.count for s in read_index(tmp_path / "out").shards] == [3, 2]
    # the release layout: pretrain.csv beside videos/
    release = tmp_path / "release"
    (release / "videos").mkdir(parents=True)
    shutil.copy(video_files.long, release / "videos" / "a.mp4")
    shutil.copy(video_files.short, release / "videos" / "b.mp4")
    (release / "pretrain.csv").write_text("video_id:FILE,title\na.mp4,标题甲\nb.mp4,标题乙\n", encoding="utf-8")
    main(["pack", str(tmp_path / "pool"), "--youku", str(release), "--task", "pretrain"])
    assert capsys.readouterr().out.strip().endswith("2 samples in 1 shards (0 videos missing)")
    items = list(ShardDataset(tmp_path / "pool", 4, "eval", 32, fields=("title",), rank=0, world_size=1,
                              shuffle=False, drop_last=False))
    assert [(item["video_id"], item["title"], item["video"].shape) for item in items] == [
        ("a.mp4", "标题甲", (4, 3, 32, 32)), ("b.mp4", "标题乙", (4, 3, 32, 32))]
