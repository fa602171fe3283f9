"""Panda-70M Table 2 on a set of long videos: splitting methods side by side, and the stitching finding.

Panda-70M (Chen et al., CVPR 2024, Sec. 3.1, Table 2) compares splittings of 1K long videos by Max Running LPIPS
(the largest perceptual change inside a clip, lower = more coherent) and average clip length: PySceneDetect alone
0.247 / 4.1 s, its two-stage splitting 0.256 / 7.9 s ("longer clips at a comparable consistency"). The methods
compared here, each giving per video the segments whose boundaries are scored and the final clips (frames):

* ``shot_detection``: PySceneDetect's ContentDetector scenes (threshold 25, 15 frames), nothing else (the
  paper's "PySceneDetect" row; :func:`vlstudy.panda.splitting.detect_scenes`);
* ``stitching``: the two stages with the paper's settings (5 s pieces, transition / merge / still / redundancy
  checks, min 2.5 s, max 60 s, 10 % trim); boundaries of the stitched events, clips after verification;
* ``stitching_released``: the same with the settings of the released code's call (no trim, min 2 s);
* ``fixed_<w>s``: consecutive windows of ``w`` seconds, blind to content.

The stitching embedder is a parameter (:func:`vlstudy.panda.embedders.load_embedder`): shots are embedded once
and stitched with both settings. :func:`stitching_finding` decides the claim from paired bootstrap intervals over
videos (the same videos split both ways), with the rule stated before any number is seen: stitching's mean clip
length minus shot detection's has its 95 % interval above 0, and its Max Running LPIPS increase has its upper
bound within ``margin`` (10 %) of shot detection's value (the paper's increase is 3.6 %; its subtitle alignment
row is 65 % higher).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlstudy.data.video import read_frames
from vlstudy.metrics.base import MetricResult
from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.panda.lpips import LPIPS, keyframe_indices
from vlstudy.panda.split_quality import Truth, clip_lengths, split_quality
from vlstudy.panda.splitting import PAPER_SETTINGS, RELEASED_SETTINGS, Segment, fixed_windows, split_video, stitch

__all__ = ["SHOT_DETECTION", "STITCHING", "STITCHING_RELEASED", "PAPER_ROWS", "VideoSplit", "split_methods",
           "keyframe_lpips", "method_quality", "stitching_finding"]

SHOT_DETECTION, STITCHING, STITCHING_RELEASED = "shot_detection", "stitching", "stitching_released"
PAPER_ROWS = {SHOT_DETECTION: "shot_detection", STITCHING: "stitching"}  # our method -> Panda Table 2 row


@dataclass
class VideoSplit:
    """Every method's split of one video (frames, end exclusive).

    Attributes:
        video_id: the video's name.
        path: its file.
        fps: frames per second.
        n_frames: frames in the video.
        methods: method -> (segments whose boundaries are scored, final clips).
    """

    video_id: str
    path: str
    fps: float
    n_frames: int
    methods: dict[str, tuple[list[Segment], list[Segment]]]

    def seconds(self, method: str, which: int) -> list[tuple[float, float]]:
        """The method's boundary segments (`which` 0) or clips (1) in seconds."""
        return [Segment(*s).seconds(self.fps) for s in self.methods[method][which]]


def split_methods(path: str | Path, video_id: str, embedder: Callable[[np.ndarray], np.ndarray],
                  windows: Sequence[float], batch_size: int = 64) -> VideoSplit:
    """Split one video by every method of the module docstring (shots detected and embedded once)."""
    result = split_video(path, embedder, PAPER_SETTINGS, batch_size=batch_size)
    released = stitch(result.shots, result.features, result.fps, RELEASED_SETTINGS)
    methods = {SHOT_DETECTION: (result.scenes, result.scenes),
               STITCHING: (result.stitching.events, result.clips),
               STITCHING_RELEASED: (released.events, released.clips)}
    for window in windows:
        spans = fixed_windows(result.n_frames, result.fps, window)
        methods[f"fixed_{window:g}s"] = (spans, spans)
    return VideoSplit(video_id, str(path), result.fps, result.n_frames, methods)


def _shrink(frames: np.ndarray, max_side: int | None) -> np.ndarray:
    """(N, H, W, 3) uint8 scaled down (area) so that the longer side is at most `max_side` (None: unchanged)."""
    height, width = frames.shape[1:3]
    if max_side is None or max(height, width) <= max_side or not len(frames):
        return frames
    scale = max_side / max(height, width)
    size = (max(32, round(height * scale)), max(32, round(width * scale)))
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    pixels = F.interpolate(pixels, size=size, mode="area")
    return pixels.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def keyframe_lpips(split: VideoSplit, model: LPIPS, max_side: int | None = None,
                   batch_size: int = 64) -> dict[str, np.ndarray]:
    """Max Running LPIPS (Panda-70M Eq. 1) of every method's clips of one video: method -> (C,) values.

    The same numbers as :func:`vlstudy.panda.lpips.max_running_lpips` on each clip's frames (NaN for a clip
    under 1 s), computed once per distinct pair of consecutive keyframes over all methods: the once-per-second
    keyframes are decoded once per video, scaled to `max_side`, and each goes through AlexNet once.
    """
    keys = {m: [s + keyframe_indices(e - s, split.fps) for s, e in clips] for m, (_, clips) in split.methods.items()}
    pairs = sorted({(int(a), int(b)) for ks in keys.values() for k in ks for a, b in zip(k[:-1], k[1:])})
    if not pairs:
        return {m: np.full(len(ks), np.nan) for m, ks in keys.items()}
    wanted = np.unique(np.asarray(pairs).ravel())
    frames = _shrink(read_frames(split.path, wanted), max_side)
    row = {int(f): i for i, f in enumerate(wanted)}
    a, b = (np.array([row[p[j]] for p in pairs]) for j in (0, 1))
    distance = dict(zip(pairs, model.pair_distances(frames, a, b, batch_size).tolist()))
    return {m: np.array([max(distance[int(x), int(y)] for x, y in zip(k[:-1], k[1:])) if len(k) >= 2 else np.nan
                         for k in ks], dtype=np.float64) for m, ks in keys.items()}


def method_quality(splits: Sequence[VideoSplit], method: str, lpips: Mapping[str, Mapping[str, np.ndarray]],
                   truths: Mapping[str, Truth] | None, tolerance: float = 0.5) -> MetricResult:
    """One method's quality over videos: :func:`split_quality` with ground truth, :func:`clip_lengths` without.

    Args:
        splits: every video's splits.
        method: the method.
        lpips: video id -> method -> Max Running LPIPS per clip.
        truths: video id -> truth, or None (real videos: length and LPIPS only).
        tolerance: boundary tolerance in seconds.
    """
    clips = {s.video_id: s.seconds(method, 1) for s in splits}
    scores = {s.video_id: lpips[s.video_id][method] for s in splits}
    if truths is None:
        return clip_lengths(clips, scores)
    boundary = {s.video_id: s.seconds(method, 0) for s in splits}
    return split_quality(boundary, clips, truths, tolerance, clip_scores=scores)


def stitching_finding(shot: MetricResult, stitched: MetricResult, rng: np.random.Generator, n_boot: int,
                      margin: float = 0.10) -> dict:
    """Whether stitching gives longer clips than shot detection at a comparable Max Running LPIPS.

    Args:
        shot, stitched: the two methods' quality on the same videos (with the ``clip_score`` = LPIPS measure).
        rng, n_boot: the paired bootstrap over videos.
        margin: the largest LPIPS increase, as a share of shot detection's value, that still counts as
            comparable (the rule in the module docstring).

    Returns:
        ``ours``/``low``/``high``: the mean clip length difference (s, stitching minus shot detection) and its
        interval; ``lpips_increase``/``_low``/``_high``: the LPIPS difference; ``lpips_allowed``: margin x shot
        detection's LPIPS; ``longer``, ``comparable`` and ``holds`` (both).
    """
    diff = paired_differences(stitched, shot, rng=rng, n_boot=n_boot)
    length, lpips = diff.loc["mean_clip_seconds"], diff.loc["clip_score"]
    allowed = margin * float(lpips["b"])
    longer, comparable = bool(length["low"] > 0), bool(lpips["high"] <= allowed)
    return {"ours": float(length["difference"]), "low": float(length["low"]), "high": float(length["high"]),
            "lpips_increase": float(lpips["difference"]), "lpips_increase_low": float(lpips["low"]),
            "lpips_increase_high": float(lpips["high"]), "lpips_allowed": allowed,
            "longer": longer, "comparable": comparable, "holds": longer and comparable}
