"""Panda-70M Table 2 glue: every method on a generated long video, batched Max Running LPIPS equal to Eq. 1 clip by
clip, the truth-free measures, the stitching finding's rule, and the embedder loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer

from vlstudy.data.mini_youku.longform import LongformConfig, generate_longform
from vlstudy.data.video import read_frames
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.panda.embedders import PixelStatsEmbedder, VideoModuleEmbedder, load_embedder
from vlstudy.panda.lpips import load_lpips, max_running_lpips
from vlstudy.panda.split_quality import clip_lengths
from vlstudy.panda.split_study import (
    SHOT_DETECTION,
    STITCHING,
    STITCHING_RELEASED,
    keyframe_lpips,
    method_quality,
    split_methods,
    stitching_finding,
)
from vlstudy.panda.splitting import Segment


@pytest.fixture(scope="module")
def longform(tmp_path_factory):
    folder = tmp_path_factory.mktemp("longform")
    return folder, generate_longform(LongformConfig(sources=2, duration=(30.0, 40.0)), folder)


@pytest.fixture(scope="module")
def splits(longform):
    folder, manifest = longform
    return [split_methods(folder / s["file"], s["video_id"], PixelStatsEmbedder(), [5.0])
            for s in manifest["sources"]]


def test_every_method_splits_the_video(splits, longform):
    split = splits[0]
    assert list(split.methods) == [SHOT_DETECTION, STITCHING, STITCHING_RELEASED, "fixed_5s"]
    scenes = split.methods[SHOT_DETECTION][1]
    assert scenes[0].start == 0 and scenes[-1].end == split.n_frames  # scenes cover the video
    windows = split.methods["fixed_5s"][1]
    assert all(b - a == 20 for a, b in windows[:-1]) and windows[-1].end == split.n_frames
    for boundary, clips in split.methods.values():
        assert all(0 <= a < b <= split.n_frames for a, b in [*boundary, *clips])
    assert split.seconds(SHOT_DETECTION, 1)[0] == (0.0, scenes[0].end / 4)


def test_batched_lpips_equals_eq1_clip_by_clip(splits):
    model = load_lpips(seed=0)
    split = splits[0]
    values = keyframe_lpips(split, model)
    frames = read_frames(split.path, np.arange(split.n_frames))
    for method, (_, clips) in split.methods.items():
        expected = max_running_lpips([frames[a:b] for a, b in clips], split.fps, model).values
        np.testing.assert_allclose(values[method], expected, rtol=1e-5, atol=1e-6)
    shrunk = keyframe_lpips(split, model, max_side=32)  # scaled keyframes: other values, same shape
    assert shrunk[STITCHING].shape == values[STITCHING].shape


def test_quality_with_and_without_ground_truth(splits, longform):
    from vlstudy.panda.split_quality import truth_from_source

    lpips = {s.video_id: keyframe_lpips(s, load_lpips(seed=0)) for s in splits}
    truths = {s["video_id"]: truth_from_source(s) for s in longform[1]["sources"]}
    with_truth = method_quality(splits, STITCHING, lpips, truths)
    without = method_quality(splits, STITCHING, lpips, None)
    assert {"precision", "recall", "F1", "purity"} <= set(with_truth.summary)
    assert set(without.summary) == {"mean_clip_seconds", "clip_score", "n_videos", "n_clips"}
    for key in ("mean_clip_seconds", "clip_score", "n_clips"):
        assert without.summary[key] == pytest.approx(with_truth.summary[key])


def test_clip_lengths_are_ratios_of_sums_over_videos():
    result = clip_lengths({"a": [(0, 2), (2, 6)], "b": [(0, 9)]}, {"a": [0.1, np.nan], "b": [0.4]})
    assert result.summary["mean_clip_seconds"] == pytest.approx(5.0)  # (2 + 4 + 9) / 3 clips
    assert result.summary["clip_score"] == pytest.approx(0.25)  # NaN left out
    assert result.summary["n_clips"] == 3 and result.summary["n_videos"] == 2
    with pytest.raises(ValueError, match="video 'a': 1 clip scores for 2 clips"):
        clip_lengths({"a": [(0, 2), (2, 6)]}, {"a": [0.1]})


def _videos(lengths: list[float], lpips: float, n: int = 12) -> dict:
    rng = np.random.default_rng(len(lengths))
    clips, scores = {}, {}
    for v in range(n):
        spans, start = [], 0.0
        for length in lengths:
            length = length * rng.uniform(0.9, 1.1)
            spans.append((start, start + length))
            start += length
        clips[f"v{v}"], scores[f"v{v}"] = spans, list(lpips * rng.uniform(0.95, 1.05, len(spans)))
    return clips, scores


def test_stitching_finding_needs_longer_clips_and_comparable_lpips():
    shot = clip_lengths(*_videos([4.0] * 6, 0.20))
    longer_same = clip_lengths(*_videos([8.0] * 3, 0.205))
    longer_worse = clip_lengths(*_videos([8.0] * 3, 0.30))
    good = stitching_finding(shot, longer_same, np.random.default_rng(0), 500)
    assert good["longer"] and good["comparable"] and good["holds"] and good["low"] > 3.0
    assert good["lpips_allowed"] == pytest.approx(0.1 * shot.summary["clip_score"])
    worse = stitching_finding(shot, longer_worse, np.random.default_rng(0), 500)
    assert worse["longer"] and not worse["comparable"] and not worse["holds"]
    shorter = stitching_finding(longer_same, shot, np.random.default_rng(0), 500)
    assert not shorter["longer"] and shorter["high"] < 0


def test_load_embedder_reads_the_kits_video_encoder(tmp_path):
    torch.manual_seed(0)
    model = MPLUGVideoModel(mplug_config(save_tiny_lm("gpt2", tokenizer(), tmp_path / "lm")))
    model.save_pretrained(tmp_path / "model")
    embedder = load_embedder(str(tmp_path / "model"), batch_size=2)
    assert isinstance(embedder, VideoModuleEmbedder) and embedder.num_frames == 2
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    expected = VideoModuleEmbedder(model.video_encoder, 2, 32)(frames)
    np.testing.assert_allclose(embedder(frames), expected, rtol=1e-5, atol=1e-6)
    assert isinstance(load_embedder("pixel_stats"), PixelStatsEmbedder)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        load_embedder(str(tmp_path / "missing"))


def test_segments_in_seconds():
    assert Segment(8, 20).seconds(4.0) == (2.0, 5.0)
