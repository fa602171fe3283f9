"""VideoDataset, collate, the sharded sampler, loaders with workers, and the frame cache."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from vlstudy.data.datasets import VideoDataset, collate_videos, make_loader
from vlstudy.data.frame_cache import (
    FrameCache,
    FrameCacheConfig,
    build_frame_cache,
    sample_stored_slots,
    stored_frame_indices,
)
from vlstudy.data.sampler import GlobalBatchSampler
from vlstudy.data.transforms import CLIP_MEAN, CLIP_STD
from vlstudy.data.video import VideoReadError, read_clip, sample_frame_indices, segment_bounds, write_video


def test_tasks_read_the_official_frame_counts():
    """The protocol's frames per clip (official configs: classification 8, captioning 16, retrieval 4; the study's
    pre-training 4) are the defaults of the task configs that the stages use."""
    from vlstudy.tasks.captioning import CaptioningConfig
    from vlstudy.tasks.classification import ClassificationConfig
    from vlstudy.tasks.pretrain_mplug_video import PretrainMPLUGVideoConfig
    from vlstudy.tasks.retrieval import RetrievalConfig

    assert (ClassificationConfig().num_frames, CaptioningConfig().num_frames, RetrievalConfig().num_frames,
            PretrainMPLUGVideoConfig().model.video.num_frames) == (8, 16, 4, 4)


# ---------------------------------------------------------------------------------------------- dataset

def test_eval_item_fields_shapes_and_values(video_files, video_records):
    dataset = VideoDataset(video_records, num_frames=4, mode="eval", image_size=64, fields=("title", "label",
                                                                                             "captions"))
    item = dataset[0]
    assert set(item) == {"video", "index", "video_id", "title", "label", "captions"}
    assert item["video"].shape == (4, 3, 64, 64) and item["video"].dtype == torch.float32
    assert (item["index"], item["video_id"], item["title"], item["label"], item["captions"]) == \
        (0, "long", "标题long", 0, ["字幕long"])
    # middle frames of 40: 4, 14, 24, 34; undo the normalisation and read the grey levels back
    std, mean = torch.tensor(CLIP_STD).view(1, 3, 1, 1), torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    pixels = (item["video"] * std + mean) * 255
    np.testing.assert_allclose(pixels[:, :, 8:].mean(dim=(1, 2, 3)).numpy(),
                               [video_files.level(i) for i in (4, 14, 24, 34)], atol=3)
    assert dataset[1]["video"].shape == (4, 3, 64, 64)              # 48x32 video, square-resized


def test_train_items_are_reproducible_and_vary_with_epoch(video_records):
    def make():
        return VideoDataset(video_records, num_frames=4, mode="train", image_size=32, seed=5)

    first, second = make(), make()
    torch.testing.assert_close(first[0]["video"], second[0]["video"], rtol=0, atol=0)
    first.set_epoch(1)
    assert not torch.equal(first[0]["video"], second[0]["video"])
    second.set_epoch(1)
    torch.testing.assert_close(first[0]["video"], second[0]["video"], rtol=0, atol=0)
    other_seed = VideoDataset(video_records, num_frames=4, mode="train", image_size=32, seed=6)
    assert not torch.equal(other_seed[0]["video"], make()[0]["video"])


def test_bad_video_raise_names_the_file(video_files, video_records):
    dataset = VideoDataset(video_records, num_frames=4, mode="eval", image_size=32, on_error="raise")
    with pytest.raises(VideoReadError) as caught:
        dataset[3]
    assert caught.value.path == str(video_files.corrupt)
    with pytest.raises(VideoReadError, match="file not found"):
        dataset[4]


def test_bad_video_skip_marks_the_item(video_files, video_records):
    item = VideoDataset(video_records, num_frames=4, mode="eval", image_size=32)[4]
    assert item["video"] is None and item["video_id"] == "missing"
    assert item["error"] == f"{video_files.missing}: file not found"


def test_dataset_argument_checks(video_records):
    with pytest.raises(ValueError, match="'headline' is not a record column"):
        VideoDataset(video_records, 4, "eval", 32, fields=("headline",))
    with pytest.raises(ValueError, match="mode must be 'train' or 'eval'"):
        VideoDataset(video_records, 4, "test", 32)
    with pytest.raises(ValueError, match="missing record column"):
        VideoDataset(video_records.drop(columns=["title"]), 4, "eval", 32)


# ---------------------------------------------------------------------------------------------- collate

def test_collate_stacks_videos_and_reports_skips():
    def item(index, video):
        return {"video": video, "index": index, "video_id": f"v{index}", "title": f"t{index}",
                **({"error": f"v{index}.mp4: file not found"} if video is None else {})}

    batch = collate_videos([item(0, torch.zeros(2, 3, 4, 4)), item(1, None), item(2, torch.ones(2, 3, 4, 4))])
    assert batch["video"].shape == (2, 2, 3, 4, 4)
    assert batch["index"] == [0, 2] and batch["title"] == ["t0", "t2"] and batch["video_id"] == ["v0", "v2"]
    assert batch["skipped"] == ["v1"] and batch["errors"] == ["v1.mp4: file not found"]
    empty = collate_videos([item(1, None)])
    assert empty["video"] is None and empty["index"] == [] and empty["skipped"] == ["v1"]


def test_loader_drops_bad_videos_counts_them_and_logs_each_once(video_files, video_records, caplog):
    dataset = VideoDataset(video_records, num_frames=4, mode="eval", image_size=32)
    loader = make_loader(dataset, batch_size=5, shuffle=False, seed=0, num_workers=0, drop_last=False)
    with caplog.at_level(logging.WARNING, logger="vlstudy.data"):
        for epoch in range(2):
            dataset.set_epoch(epoch)
            (batch,) = list(loader)
            assert batch["video"].shape == (3, 4, 3, 32, 32)
            assert batch["video_id"] == ["long", "wide", "short"]
            assert batch["skipped"] == ["corrupt", "missing"]
    assert set(loader.skipped) == {"corrupt", "missing"}
    messages = [r.getMessage() for r in caplog.records if r.name == "vlstudy.data"]
    assert len(messages) == 2
    assert str(video_files.corrupt) in messages[0] and str(video_files.missing) in messages[1]


# ---------------------------------------------------------------------------------------------- sampler
# make_loader uses the trainer's GlobalBatchSampler (sharding and resumption are tested in test_distributed.py).

def test_sampler_covers_everything_without_drop_last():
    sampler = GlobalBatchSampler(10, 4, seed=0, epoch=0, drop_last=False)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 and [len(b) for b in batches] == [4, 4, 2]
    assert sorted(sum(batches, [])) == list(range(10))
    shards = [GlobalBatchSampler(10, 4, seed=0, epoch=0, drop_last=False, rank=r, world_size=3) for r in range(3)]
    lists = [list(s) for s in shards]
    assert [len(x) for x in lists] == [len(s) for s in shards] == [1, 1, 1]     # one padded global batch
    assert sorted(set(sum(sum(lists, []), []))) == list(range(10))


def test_unshuffled_loader_keeps_table_order(video_records):
    dataset = VideoDataset(video_records.iloc[:3], num_frames=2, mode="eval", image_size=16)
    loader = make_loader(dataset, batch_size=2, shuffle=False, seed=5, num_workers=0, drop_last=False)
    assert sum((b["index"] for b in loader), []) == [0, 1, 2]


def test_workers_give_the_same_batches(video_records):
    dataset = VideoDataset(video_records.iloc[:3], num_frames=4, mode="train", image_size=16, seed=2)

    def batches(workers):
        dataset.set_epoch(1)
        loader = make_loader(dataset, batch_size=2, shuffle=True, seed=2, num_workers=workers, drop_last=False)
        return [(b["index"], b["video"]) for b in loader]

    serial, parallel = batches(0), batches(2)
    assert [i for i, _ in serial] == [i for i, _ in parallel]
    for (_, a), (_, b) in zip(serial, parallel):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- frame cache

def test_stored_frame_indices_known_values():
    assert stored_frame_indices(FrameCacheConfig(4, "eval", 8), 10).tolist() == [0, 3, 5, 8]
    # vlen 40, T 4: segments [0,10) ... each with 9 drawable frames; 2 candidates at bin centres a+2, a+6
    assert stored_frame_indices(FrameCacheConfig(4, "train", 8, candidates=2), 40).tolist() == \
        [2, 6, 12, 16, 22, 26, 32, 36]
    # one candidate per segment of vlen 10 (drawable 1, 2, 1, 2 frames)
    assert stored_frame_indices(FrameCacheConfig(4, "train", 8, candidates=1), 10).tolist() == [0, 3, 5, 8]


def test_cached_rand_draws_stay_in_official_ranges():
    config = FrameCacheConfig(8, "train", 8, candidates=3)
    for vlen in range(16, 90):
        bounds = segment_bounds(8, vlen)
        for seed in range(3):
            picked = stored_frame_indices(config, vlen)[sample_stored_slots(config, vlen,
                                                                            np.random.default_rng(seed))]
            assert np.all(bounds[:-1] <= picked) and np.all(picked < bounds[1:] - 1)


@pytest.fixture
def good_records(video_records):
    return video_records.iloc[:3]


def test_eval_cache_equals_direct_decoding(good_records, video_records, tmp_path):
    cache = build_frame_cache(video_records, FrameCacheConfig(4, "eval", size=64), tmp_path, workers=2,
                              progress=False)
    for video_id, path in zip(good_records["video_id"], good_records["video_path"]):
        direct = read_clip(path, lambda vlen: sample_frame_indices(4, vlen, "middle"))
        cached = cache.clip(video_id)
        assert cached.indices.tolist() == direct.indices.tolist()
        if direct.frames.shape[1:3] == (64, 64):
            np.testing.assert_array_equal(cached.frames, direct.frames)
    with_cache = VideoDataset(good_records, 4, "eval", 64, cache=cache)
    without = VideoDataset(good_records, 4, "eval", 64)
    for i in range(3):
        torch.testing.assert_close(with_cache[i]["video"], without[i]["video"], rtol=0, atol=0)
    assert sorted(os.listdir(tmp_path)) == [f"frames-{cache.key}.json", f"frames-{cache.key}.npy"]


def test_cache_flags_unreadable_videos(video_files, video_records, tmp_path):
    cache = build_frame_cache(video_records, FrameCacheConfig(4, "eval", size=16), tmp_path, workers=0,
                              progress=False)
    assert set(cache.missing) == {"corrupt", "missing"} and cache.missing["missing"] == "file not found"
    dataset = VideoDataset(video_records, 4, "eval", 16, cache=cache, on_error="raise")
    with pytest.raises(VideoReadError) as caught:
        dataset[3]
    assert caught.value.path == str(video_files.corrupt)
    assert VideoDataset(video_records, 4, "eval", 16, cache=cache)[4]["error"] == \
        f"{video_files.missing}: file not found"


def test_train_cache_with_every_candidate_reproduces_rand_exactly(video_files, good_records, tmp_path):
    # candidates >= segment length (40 frames / 4 segments = 10): every drawable frame is stored
    config = FrameCacheConfig(4, "train", size=64, candidates=10)
    cache = build_frame_cache(good_records, config, tmp_path, workers=0, progress=False)
    for seed in range(4):
        direct = read_clip(video_files.long, lambda vlen: sample_frame_indices(4, vlen, "rand",
                                                                                np.random.default_rng(seed)))
        cached = cache.clip("long", np.random.default_rng(seed))
        assert cached.indices.tolist() == direct.indices.tolist()
        np.testing.assert_array_equal(cached.frames, direct.frames)
    # the 3-frame video takes the official fallback; 2 candidates hold all its frames
    short = build_frame_cache(good_records, FrameCacheConfig(8, "train", 64, candidates=2), tmp_path, workers=0,
                              progress=False)
    assert short.clip("short", np.random.default_rng(0)).indices.tolist() == \
        sample_frame_indices(8, 3, "rand", np.random.default_rng(0)).tolist()
    with_cache = VideoDataset(good_records, 4, "train", 32, seed=9, cache=cache)
    without = VideoDataset(good_records, 4, "train", 32, seed=9)
    torch.testing.assert_close(with_cache[0]["video"], without[0]["video"], rtol=0, atol=0)


def test_cache_is_reused_and_invalidated_by_a_changed_video(good_records, tmp_path):
    config = FrameCacheConfig(4, "eval", size=16)
    path = tmp_path / "v.mp4"
    write_video(path, np.full((12, 16, 16, 3), 50, np.uint8), fps=4)
    records = good_records.iloc[:1].assign(video_path=str(path))
    first = build_frame_cache(records, config, tmp_path / "cache", workers=0, progress=False)
    again = build_frame_cache(records, config, tmp_path / "cache", workers=0, progress=False)
    assert again.key == first.key
    write_video(path, np.full((20, 16, 16, 3), 200, np.uint8), fps=4)
    os.utime(path, ns=(1, 1))                                       # a different mtime even on coarse clocks
    changed = build_frame_cache(records, config, tmp_path / "cache", workers=0, progress=False)
    assert changed.key != first.key
    assert abs(int(changed.clip("long").frames.mean()) - 200) <= 2 and abs(int(first.clip("long").frames.mean())
                                                                             - 50) <= 2
    assert FrameCache(changed.index_path).config == config


def test_dataset_rejects_a_cache_built_for_other_settings(good_records, video_records, tmp_path):
    cache = build_frame_cache(good_records, FrameCacheConfig(4, "eval", size=16), tmp_path, workers=0,
                              progress=False)
    with pytest.raises(ValueError, match="holds num_frames=4, mode='eval'; the dataset needs num_frames=8"):
        VideoDataset(good_records, 8, "eval", 16, cache=cache)
    with pytest.raises(ValueError, match="lacks video 'corrupt' \\(2 of 5 missing\\)"):
        VideoDataset(video_records, 4, "eval", 16, cache=cache)


def test_flv_videos_go_through_the_loader_and_the_frame_cache(video_files, tmp_path):
    from vlstudy.data.schema import Record, records_to_frame

    records = records_to_frame([Record(video_id=name, video_path=os.fspath(getattr(video_files, name)),
                                       title="标题") for name in ("flv", "flv1", "long")])
    loader = make_loader(VideoDataset(records, 4, "eval", 64, on_error="raise"), batch_size=3, shuffle=False,
                         seed=0, num_workers=0, drop_last=False)
    (batch,) = list(loader)
    assert batch["video"].shape == (3, 4, 3, 64, 64) and batch["skipped"] == [] and loader.skipped == {}
    torch.testing.assert_close(batch["video"][0], batch["video"][2], rtol=0, atol=0.15)  # same frames, two codecs
    cache = build_frame_cache(records, FrameCacheConfig(4, "eval", size=64), tmp_path, workers=0, progress=False)
    assert cache.missing == {}
    for name in ("flv", "flv1"):
        direct = read_clip(getattr(video_files, name), lambda vlen: sample_frame_indices(4, vlen, "middle"))
        cached = cache.clip(name)
        assert cached.indices.tolist() == direct.indices.tolist() == [4, 14, 24, 34]
        np.testing.assert_array_equal(cached.frames, direct.frames)
    cached_batch = next(iter(make_loader(VideoDataset(records, 4, "eval", 64, cache=cache), batch_size=3,
                                         shuffle=False, seed=0, num_workers=0, drop_last=False)))
    torch.testing.assert_close(cached_batch["video"], batch["video"], rtol=0, atol=0)
