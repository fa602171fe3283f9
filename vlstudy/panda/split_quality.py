"""How well a splitting recovers the true structure of long videos: boundaries, purity, length (Panda-70M Table 2).

Panda-70M (Chen et al., CVPR 2024, Sec. 3.1, Table 2) compares splittings by clip length and Max Running LPIPS
(:mod:`vlstudy.panda.lpips`); with generated videos (:mod:`vlstudy.data.mini_youku.longform`) the truth is known,
so this module also measures

* **boundary precision / recall / F1** against the true boundaries (event boundaries by default), one-to-one:
  a predicted boundary matches at most one true boundary within ``tolerance`` seconds (0.5 s), and the matching
  maximises the number of matches (``scipy.optimize.linear_sum_assignment``). Between two consecutive
  predicted segments the predicted boundary is the point where they touch, or, when the splitting dropped
  what lies between them (a transition shot, a static or short event), the whole gap: a true boundary
  inside the gap (widened by the tolerance) matches it. Evaluate boundaries on contiguous output (shots,
  windows, stitched events), not on trimmed clips, whose every gap would "contain" boundaries;
* **purity**: the share of clips that lie inside one true event, up to ``tolerance`` seconds of overlap with
  the others;
* **mean clip length** in seconds; **event coverage**, the share of moving (non-static) true events that some
  clip is mostly about; the share of static-event time that ended up in clips; and the number of clips whose
  subject an earlier clip of the same video already showed (``repeat_of`` in the ground truth).

Results are :class:`vlstudy.metrics.base.MetricResult`s with one row per video (the bootstrap unit); every
headline is a ratio of per-video sums, so its interval resamples videos. Videos without ground truth (a folder of
real videos) get the truth-free part only: :func:`clip_lengths`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from vlstudy.metrics.base import ID_COLUMN, MetricResult

__all__ = ["Truth", "truth_from_source", "boundary_intervals", "match_boundaries", "clip_purity", "split_quality",
           "clip_lengths"]

Span = tuple[float, float]


@dataclass(frozen=True)
class Truth:
    """The true structure of one video, in seconds.

    Attributes:
        boundaries: true boundary times (event boundaries, or also shot boundaries).
        events: (start, end) of each true event, in order, covering the video.
        static: whether each event is static.
        group: each event's subject: its own index, or the index of the event it repeats.
    """

    boundaries: tuple[float, ...]
    events: tuple[Span, ...]
    static: tuple[bool, ...]
    group: tuple[int, ...]


def truth_from_source(source: Mapping, level: str = "event") -> Truth:
    """The :class:`Truth` of one source of a long-form manifest; `level` ``event`` or ``shot`` (events + shots)."""
    if level not in ("event", "shot"):
        raise ValueError(f"level must be 'event' or 'shot', got {level!r}")
    events = source["events"]
    return Truth(
        boundaries=tuple(b["time"] for b in source["boundaries"] if level == "shot" or b["level"] == "event"),
        events=tuple((e["start"], e["end"]) for e in events), static=tuple(bool(e["static"]) for e in events),
        group=tuple(e["index"] if e["repeat_of"] is None else e["repeat_of"] for e in events))


def boundary_intervals(segments: Sequence[Span]) -> list[Span]:
    """Predicted boundaries of sorted, non-overlapping segments: ``(end_i, start_i+1)`` for each neighbour pair
    (a point when they touch, the dropped gap otherwise)."""
    ordered = sorted(segments)
    return [(a[1], b[0]) for a, b in zip(ordered[:-1], ordered[1:])]


def match_boundaries(predicted: Sequence[Span], truth: Sequence[float], tolerance: float = 0.5
                     ) -> tuple[int, int, int]:
    """One-to-one matching with the most matches (module docstring).

    Returns:
        (true positives, false positives, false negatives).
    """
    if not len(predicted) or not len(truth):
        return 0, len(predicted), len(truth)
    lo = np.array([p[0] for p in predicted])[:, None]
    hi = np.array([p[1] for p in predicted])[:, None]
    t = np.asarray(truth, dtype=np.float64)[None, :]
    distance = np.maximum(0.0, np.maximum(lo - t, t - hi))  # (P, B): 0 inside the interval
    allowed = distance <= tolerance + 1e-9
    rows, cols = linear_sum_assignment(np.where(allowed, distance, 1e6))
    tp = int(allowed[rows, cols].sum())
    return tp, len(predicted) - tp, len(truth) - tp


def clip_purity(clips: Sequence[Span], events: Sequence[Span], tolerance: float = 0.5
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: whether it lies inside one event (up to `tolerance` s outside it), and its dominant event.

    Returns:
        (pure (C,) bool, dominant (C,) int: the event it overlaps most).
    """
    if not len(clips):
        return np.zeros(0, bool), np.zeros(0, np.int64)
    c = np.asarray(clips, dtype=np.float64)[:, None, :]
    e = np.asarray(events, dtype=np.float64)[None, :, :]
    overlap = np.clip(np.minimum(c[..., 1], e[..., 1]) - np.maximum(c[..., 0], e[..., 0]), 0, None)  # (C, E)
    dominant = overlap.argmax(axis=1)
    outside = (c[:, 0, 1] - c[:, 0, 0]) - overlap.max(axis=1)
    return outside <= tolerance + 1e-9, dominant


class _Ratio:
    """``scale * (w @ numerator) / (w @ denominator)`` over reweighted videos (a bootstrap statistic)."""

    def __init__(self, numerator: np.ndarray, denominator: np.ndarray, scale: float = 1.0):
        self.numerator, self.denominator, self.scale = numerator, denominator, scale
        self.n_units = len(numerator)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.scale * (weights @ self.numerator) / (weights @ self.denominator)


def split_quality(boundary_segments: Mapping[str, Sequence[Span]], clips: Mapping[str, Sequence[Span]],
                  truths: Mapping[str, Truth], tolerance: float = 0.5,
                  clip_scores: Mapping[str, Sequence[float]] | None = None) -> MetricResult:
    """Boundary P/R/F1, purity, clip length (and a per-clip score such as Max Running LPIPS) over videos.

    Args:
        boundary_segments: video id -> segments (s) whose neighbour boundaries are evaluated (e.g. shots, or the
            stitched events before trimming).
        clips: video id -> final clips (s): purity, length, static share and repeats are measured on these.
        truths: video id -> :class:`Truth`; defines the videos.
        tolerance: seconds.
        clip_scores: video id -> one score per clip (NaN = undefined, left out); its mean over clips is the
            ``clip_score`` headline.

    Returns:
        MetricResult: summary ``precision``, ``recall``, ``F1``, ``purity``, ``event_coverage``, ``static_in_clips``
        (percent),
        ``mean_clip_seconds``, ``clip_score`` (if given), ``n_videos``, ``n_clips``, ``n_repeated_clips``; one row per
        video with its counts.
    """
    rows = []
    for video, truth in truths.items():
        if video not in boundary_segments or video not in clips:
            raise KeyError(f"video {video!r}: no predicted segments")
        tp, fp, fn = match_boundaries(boundary_intervals(boundary_segments[video]), truth.boundaries, tolerance)
        spans = list(clips[video])
        pure, dominant = clip_purity(spans, truth.events, tolerance)
        groups = [truth.group[d] for d in dominant]
        repeated = sum(g in groups[:i] for i, g in enumerate(groups))
        static_total = sum(e - s for (s, e), st in zip(truth.events, truth.static) if st)
        static_in = sum(max(0.0, min(b, e) - max(a, s)) for a, b in spans
                        for (s, e), st in zip(truth.events, truth.static) if st)
        scores = np.asarray(clip_scores[video] if clip_scores is not None else [], dtype=np.float64)
        if clip_scores is not None and len(scores) != len(spans):
            raise ValueError(f"video {video!r}: {len(scores)} clip scores for {len(spans)} clips")
        moving = [i for i, st in enumerate(truth.static) if not st]
        covered = len(set(dominant.tolist()) & set(moving))
        rows.append({ID_COLUMN: str(video), "tp": tp, "fp": fp, "fn": fn, "n_clips": len(spans),
                     "moving_events": len(moving), "covered_events": covered,
                     "n_pure": int(pure.sum()), "clip_seconds": float(sum(b - a for a, b in spans)),
                     "static_seconds": static_total, "static_in_clips": static_in, "n_repeated": repeated,
                     "score_sum": float(np.nansum(scores)), "n_scored": int(np.isfinite(scores).sum())})
    per_item = pd.DataFrame(rows)
    col = {k: per_item[k].to_numpy(dtype=np.float64) for k in per_item.columns if k != ID_COLUMN}
    ratios = {"precision": _Ratio(col["tp"], col["tp"] + col["fp"], 100.0),
              "recall": _Ratio(col["tp"], col["tp"] + col["fn"], 100.0),
              "F1": _Ratio(2 * col["tp"], 2 * col["tp"] + col["fp"] + col["fn"], 100.0),
              "purity": _Ratio(col["n_pure"], col["n_clips"], 100.0),
              "event_coverage": _Ratio(col["covered_events"], col["moving_events"], 100.0),
              "static_in_clips": _Ratio(col["static_in_clips"], col["static_seconds"], 100.0),
              "mean_clip_seconds": _Ratio(col["clip_seconds"], col["n_clips"])}
    if clip_scores is not None:
        ratios["clip_score"] = _Ratio(col["score_sum"], col["n_scored"])
    ones = np.ones((1, len(per_item)))
    summary = {name: float(ratio(ones)[0]) for name, ratio in ratios.items()}
    statistics = {name: ratio for name, ratio in ratios.items() if np.isfinite(summary[name])}
    summary.update(n_videos=len(per_item), n_clips=int(col["n_clips"].sum()),
                   n_repeated_clips=int(col["n_repeated"].sum()))
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)


def clip_lengths(clips: Mapping[str, Sequence[Span]],
                 clip_scores: Mapping[str, Sequence[float]] | None = None) -> MetricResult:
    """Mean clip length (and the mean of a per-clip score such as Max Running LPIPS) over videos without truth.

    Args:
        clips: video id -> clips (s); defines the videos.
        clip_scores: video id -> one score per clip (NaN = undefined, left out).

    Returns:
        MetricResult: summary ``mean_clip_seconds``, ``clip_score`` (if given), ``n_videos``, ``n_clips``; one row
        per video; the same statistics as :func:`split_quality` (ratios of per-video sums).
    """
    rows = []
    for video, spans in clips.items():
        scores = np.asarray(clip_scores[video] if clip_scores is not None else [], dtype=np.float64)
        if clip_scores is not None and len(scores) != len(spans):
            raise ValueError(f"video {video!r}: {len(scores)} clip scores for {len(spans)} clips")
        rows.append({ID_COLUMN: str(video), "n_clips": len(spans), "clip_seconds": float(sum(b - a for a, b in spans)),
                     "score_sum": float(np.nansum(scores)), "n_scored": int(np.isfinite(scores).sum())})
    per_item = pd.DataFrame(rows, columns=[ID_COLUMN, "n_clips", "clip_seconds", "score_sum", "n_scored"])
    col = {k: per_item[k].to_numpy(dtype=np.float64) for k in per_item.columns if k != ID_COLUMN}
    ratios = {"mean_clip_seconds": _Ratio(col["clip_seconds"], col["n_clips"])}
    if clip_scores is not None:
        ratios["clip_score"] = _Ratio(col["score_sum"], col["n_scored"])
    summary = {name: float(ratio(np.ones((1, len(per_item))))[0]) for name, ratio in ratios.items()}
    statistics = {name: ratio for name, ratio in ratios.items() if np.isfinite(summary[name])}
    summary.update(n_videos=len(per_item), n_clips=int(col["n_clips"].sum()))
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)
