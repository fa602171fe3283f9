"""Panda-70M's semantics-aware splitting: shot detection, then event stitching (Chen et al., CVPR 2024, Sec. 3.1).

Follows the released code step for step (snap-research/Panda-70M, ``splitting/cutscene_detect.py`` and
``splitting/event_stitching.py``); frame indices, comparisons (``>`` / ``<``) and integer roundings are theirs.

1. **Shots** (``cutscene_detection``): PySceneDetect ``detect(path, ContentDetector(threshold=25,
   min_scene_len=15), start_in_scene=True)``; then, walking the scene ends, while more than
   ``max_shot + 2`` seconds (7 s) remain since the last cut, cut ``int(max_shot * fps)`` frames (5 s) later.
2. **Frame features** (``extract_cutscene_feature``): two frames per shot ``[s, e)``, ``int(0.95 s + 0.05 (e-1))``
   and ``int(0.05 s + 0.95 (e-1))``, embedded (ImageBind, unit vectors); distances are Euclidean.
3. **Transitions** (``verify_cutscene``): a shot whose start-end distance is ``> transition_threshold`` holds a
   transition and is dropped.
4. **Stitching** (``cutscene_stitching``): a shot extends the current event when it starts where the event ends
   and the distance from the event's last feature to the shot's first is ``<= merge_threshold``.
5. **Events** (``verify_event``): drop events shorter than ``min_event``; drop static events (first-last
   distance ``< still_threshold``); drop events whose mean feature is ``< redundant_threshold`` from a kept
   event's; cap the length at ``max_event`` (the start stays); trim ``int(trim * length)`` frames at each end.

Two presets. ``PAPER_SETTINGS`` are the parameters Panda-70M was built with (the commented-out line 200 of
``event_stitching.py``, which its README names): min 2.5 s, max 60 s, redundancy 0.3, trim 10 %, still 0.15.
``RELEASED_SETTINGS`` are the call the released script makes: min 2.0 s, max 1200 s, redundancy 0.0 (never
fires: no distance is < 0), trim 0, still 0.15. Shot detection (25, 15 frames, 5 s pieces), the transition
threshold (1.0) and the merge threshold (0.6) are the same in both. (The functions' own defaults --
threshold 27, 10 s pieces, transition 0.8, min 1.5 s, redundancy 0.4, still 0.1 -- are overridden by both calls.)

Deliberate differences: the embedder is a parameter (:mod:`vlstudy.panda.embedders`; ImageBind is not available
here); frames are decoded with :func:`vlstudy.data.video.read_frames`, not OpenCV seeking (the official code then
resizes to 224x224 itself; here that is the embedder's preprocessing); a video whose every shot is dropped gives
no events instead of the official ``IndexError`` (``events[-1]`` of an empty list); unreadable frames raise
instead of silently dropping the shot. ``min_scene_len`` is in frames as in the official code: 15 frames are
0.5 s at 30 fps but 3.75 s at the kit's 4 fps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from vlstudy.data.video import read_frames

__all__ = ["Embedder", "Segment", "SplitSettings", "PAPER_SETTINGS", "RELEASED_SETTINGS", "Stitching", "SplitResult",
           "detect_scenes", "cut_long_shots", "shot_feature_frames", "stitch", "split_video", "fixed_windows"]

Embedder = Callable[[np.ndarray], np.ndarray]  # (N, H, W, 3) uint8 RGB -> (N, D) float features


class Segment(NamedTuple):
    """Frames ``[start, end)`` of a video."""

    start: int
    end: int

    def seconds(self, fps: float) -> tuple[float, float]:
        return self.start / fps, self.end / fps


@dataclass(frozen=True)
class SplitSettings:
    """Parameters of the two stages (seconds unless named frames). Defaults: the paper's (module docstring)."""

    cut_threshold: float = 25.0
    min_scene_frames: int = 15
    max_shot: float = 5.0  # shots longer than max_shot + 2 s are cut into max_shot pieces
    transition_threshold: float = 1.0
    merge_threshold: float = 0.6
    still_threshold: float = 0.15
    redundant_threshold: float = 0.3
    min_event: float = 2.5
    max_event: float = 60.0
    trim: float = 0.1


PAPER_SETTINGS = SplitSettings()
RELEASED_SETTINGS = SplitSettings(min_event=2.0, max_event=1200.0, redundant_threshold=0.0, trim=0.0)


# ---------------------------------------------------------------------------------------------- 1. shots
def detect_scenes(path: str | Path, threshold: float = 25.0, min_scene_frames: int = 15,
                  backend: Literal["opencv", "pyav"] = "opencv") -> tuple[list[Segment], float]:
    """PySceneDetect's ContentDetector scenes, as ``cutscene_detection`` calls it (``start_in_scene=True``).

    Returns:
        (scenes covering every frame in order, frames per second).
    """
    from scenedetect import ContentDetector, detect

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    scenes = detect(str(path), ContentDetector(threshold=threshold, min_scene_len=min_scene_frames),
                    start_in_scene=True, backend=backend)
    if not scenes:
        raise ValueError(f"{path}: PySceneDetect read no frames")
    return [Segment(a.frame_num, b.frame_num) for a, b in scenes], float(scenes[0][0].frame_rate)


def cut_long_shots(scenes: Sequence[Segment], fps: float, max_shot: float = 5.0) -> list[Segment]:
    """The official piece cutting: while more than ``(max_shot + 2) * fps`` frames remain since the last cut,
    cut ``int(max_shot * fps)`` frames after it. E.g. at 4 fps a 30-frame scene becomes 20 + 10 frames."""
    ends = [0]
    for scene in scenes:
        while scene.end - ends[-1] > (max_shot + 2) * fps:
            ends.append(ends[-1] + int(max_shot * fps))
        ends.append(scene.end)
    return [Segment(a, b) for a, b in zip(ends[:-1], ends[1:])]


# ---------------------------------------------------------------------------------------------- 2-5. stitching
def shot_feature_frames(shots: Sequence[Segment]) -> np.ndarray:
    """(S, 2) the frames embedded per shot: ``int(0.95 s + 0.05 (e-1))`` and ``int(0.05 s + 0.95 (e-1))``."""
    return np.array([[int(0.95 * s + 0.05 * (e - 1)), int(0.05 * s + 0.95 * (e - 1))] for s, e in shots],
                    dtype=np.int64).reshape(-1, 2)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum()))


@dataclass
class Stitching:
    """What each step of the stitching kept (frames, end exclusive).

    Attributes:
        kept_shots: shots left after the transition filter.
        events: stitched events before verification (contiguous runs of merged shots).
        clips: the final clips (verified, capped, trimmed).
        dropped: for each stitched event that is not a clip, why: ``short``, ``static`` or ``redundant``.
    """

    kept_shots: list[Segment] = field(default_factory=list)
    events: list[Segment] = field(default_factory=list)
    clips: list[Segment] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)


def stitch(shots: Sequence[Segment], features: np.ndarray, fps: float,
           settings: SplitSettings = PAPER_SETTINGS) -> Stitching:
    """Steps 3-5 of the module docstring on given shot features.

    Args:
        shots: the shots in order (frames).
        features: (S, 2, D) start and end frame features of each shot.
        fps: frames per second (event lengths are compared in frames, ``length < min_event * fps``).
        settings: thresholds and lengths.

    Returns:
        A :class:`Stitching`; no shots, or every shot dropped, gives empty lists.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.shape[:2] != (len(shots), 2):
        raise ValueError(f"features must be (S={len(shots)}, 2, D), got {features.shape}")
    out = Stitching()
    kept = [k for k in range(len(shots)) if _distance(features[k, 0], features[k, 1]) <= settings.transition_threshold]
    out.kept_shots = [Segment(*shots[k]) for k in kept]
    runs: list[list[int]] = []  # shot indices of each event
    for k in kept:
        if runs and shots[k][0] == shots[runs[-1][-1]][1] \
                and _distance(features[runs[-1][-1], 1], features[k, 0]) <= settings.merge_threshold:
            runs[-1].append(k)
        else:
            runs.append([k])
    kept_means: list[np.ndarray] = []
    for i, run in enumerate(runs):
        start, end = shots[run[0]][0], shots[run[-1]][1]
        out.events.append(Segment(start, end))
        mean = features[run].reshape(-1, features.shape[-1]).mean(axis=0)
        if end - start < settings.min_event * fps:
            out.dropped[i] = "short"
        elif _distance(features[run[0], 0], features[run[-1], 1]) < settings.still_threshold:
            out.dropped[i] = "static"
        elif any(_distance(kept_mean, mean) < settings.redundant_threshold for kept_mean in kept_means):
            out.dropped[i] = "redundant"
        else:
            end = start + min(int(settings.max_event * fps), end - start)
            trim = int(settings.trim * (end - start))
            out.clips.append(Segment(start + trim, end - trim))
            kept_means.append(mean)
    return out


@dataclass
class SplitResult:
    """Every stage of splitting one video (frames; ``.seconds`` converts).

    Attributes:
        fps: frames per second.
        n_frames: frames in the video.
        scenes: PySceneDetect's scenes.
        shots: scenes with long ones cut into pieces (the official ``cutscene_frame_idx``).
        stitching: the stitching steps (events, clips).
        features: (S, 2, D) the start and end frame features of each shot, so that other settings can be
            stitched without embedding again (``stitch(result.shots, result.features, result.fps, settings)``).
    """

    fps: float
    n_frames: int
    scenes: list[Segment]
    shots: list[Segment]
    stitching: Stitching
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 0)))

    @property
    def clips(self) -> list[Segment]:
        return self.stitching.clips

    def seconds(self, segments: Sequence[Segment]) -> list[tuple[float, float]]:
        return [Segment(*s).seconds(self.fps) for s in segments]


def split_video(path: str | Path, embedder: Embedder, settings: SplitSettings = PAPER_SETTINGS,
                backend: Literal["opencv", "pyav"] = "opencv", batch_size: int = 64) -> SplitResult:
    """Split one video file: shots (PySceneDetect + pieces), frame features, stitching.

    Args:
        path: the video.
        embedder: frames (N, H, W, 3) uint8 RGB -> (N, D) features (unit vectors, as ImageBind's).
        settings: :data:`PAPER_SETTINGS` or :data:`RELEASED_SETTINGS` (or your own).
        backend: PySceneDetect's decoder for shot detection (the official code uses OpenCV).
        batch_size: frames per embedder call.
    """
    scenes, fps = detect_scenes(path, settings.cut_threshold, settings.min_scene_frames, backend)
    shots = cut_long_shots(scenes, fps, settings.max_shot)
    frames = shot_feature_frames(shots)  # (S, 2)
    unique, inverse = np.unique(frames, return_inverse=True)
    pixels = read_frames(path, unique)
    embedded = np.concatenate([np.asarray(embedder(pixels[i:i + batch_size]), dtype=np.float64)
                               for i in range(0, len(unique), batch_size)])
    features = embedded[inverse.reshape(-1)].reshape(len(shots), 2, -1)
    return SplitResult(fps, scenes[-1].end, scenes, shots, stitch(shots, features, fps, settings), features)


def fixed_windows(n_frames: int, fps: float, window: float) -> list[Segment]:
    """The baseline: consecutive windows of `window` seconds; the last one keeps the remainder if it is at least
    half a window, otherwise it joins the previous window."""
    size = max(1, int(round(window * fps)))
    starts = list(range(0, n_frames, size))
    if len(starts) > 1 and n_frames - starts[-1] < size / 2:
        starts.pop()
    return [Segment(a, b) for a, b in zip(starts, [*starts[1:], n_frames])]
