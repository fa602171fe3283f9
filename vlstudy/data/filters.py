"""Dataset-construction filters of Youku-mPLUG §3.1, with a report of what each removed and how well.

The paper keeps videos of 10-120 s whose titles have 5-30 words (jieba) and at least 5 Chinese characters,
drops advertising and meaningless titles, near-duplicate videos, and pairs whose video and title disagree
(Chinese-CLIP similarity). The thresholds are `FilterConfig` fields; the rules only look at observable data
(titles, decoded videos, durations), never at ground-truth flags.

Filters, in the order that attributes a removal (``FILTERS``; a video's ``first_reason`` is the first that
flags it):

=================  ==============================================================  =======================
filter             flags a video when                                              ground-truth defects
=================  ==============================================================  =======================
unreadable         the file is missing, cannot be decoded, or its frames are       corrupt
                   smaller than `min_frame_side` (nothing to fingerprint or score)
duration           decoded duration < min_duration_s or > max_duration_s           too_short, too_long
meaningless_title  the title has no content (``is_meaningless_title``)             meaningless_title
ad_title           the title has an advertising word or pattern (``is_ad_title``)  ad_title
title_length       not min..max jieba words, or < min_cjk_chars CJK characters     short_title, long_title
duplicate          a near-copy of a kept video (vlstudy.data.fingerprint)          duplicate
low_similarity     lowest video-text scores (vlstudy.data.similarity)              mismatched_title
=================  ==============================================================  =======================

The per-video rules (the first five) are evaluated on every video. The pool-level filters see only the
videos that passed them: ``duplicate`` groups near-copies among those and keeps the longest of each group
(a trimmed copy is shorter than its source; ties keep the earlier row), and ``low_similarity`` fits its scorer
on them and removes the lowest ``similarity_quantile`` of their scores (or those below
``similarity_threshold`` when set).

The title rules (word count, advertising, meaningless titles) live in `vlstudy.data.title_rules`.

Precision and recall against the generator's ground truth (`filter_report`). A removal is *attributed* to
its first reason. For filter f with defect set D_f:

- precision_f = (removals attributed to f whose video has a defect in D_f) / (removals attributed to f);
- recall_f = (videos with a defect in D_f whose removal is attributed to f) / (videos with a defect in D_f).

Duplicates are counted per ground-truth group g (an original and its copies): a group needs |g| - 1
removals, and tp_g = min(removals in g attributed to ``duplicate``, |g| - 1). Which copy survives does not
matter (they are interchangeable; removing every copy loses one). precision = sum tp_g / removals attributed
to ``duplicate``; recall = sum tp_g / sum (|g| - 1) (= the number of videos flagged ``duplicate``). The row
``any`` pools the filters: true positives summed over filters, over all removals (precision) and over all
videos with a defect (recall).

Videos are decoded by at most two worker processes (``num_workers``), with a tqdm progress bar; where Python
starts workers by spawning (macOS, Windows), a script calling `apply_filters` needs the usual
``if __name__ == "__main__":`` guard (notebooks do not).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm  # text bars: readable in terminals, logs and rendered notebooks alike

from vlstudy.data.fingerprint import (
    THUMB_SIZE,
    DedupConfig,
    Fingerprint,
    central_window,
    duplicate_groups,
    find_near_duplicates,
    fingerprint,
    sample_indices,
)
from vlstudy.data.schema import validate_frame
from vlstudy.data.similarity import SimilarityConfig, VideoTextScorer, make_scorer
from vlstudy.data.title_rules import cjk_count, is_ad_title, is_meaningless_title, title_word_count, title_words
from vlstudy.data.video import VideoReadError, read_frames, video_info

__all__ = ["FilterConfig", "Filter", "FILTERS", "DEFECTS", "VideoEvidence", "min_frame_side", "inspect_video", "inspect_videos",
           "flag_rules", "flag_duplicates", "flag_low_similarity", "apply_filters", "filter_report"]

MAX_WORKERS = 2
"""Videos are decoded by at most this many processes."""

logger = logging.getLogger("vlstudy.data")


@dataclass
class FilterConfig:
    """Thresholds of the §3.1 filters (paper values as defaults).

    Attributes:
        min_title_words, max_title_words: allowed title length in jieba words (`title_word_count`).
        min_cjk_chars: a title needs at least this many CJK characters.
        min_duration_s, max_duration_s: allowed video duration in seconds (inclusive).
        dedup: near-duplicate search settings (fingerprint rate, Hamming threshold, LSH bands).
        similarity: which video-text scorer runs, and its settings.
        similarity_quantile: share of the scored videos with the lowest scores that is removed.
        similarity_threshold: when set, remove scores below it instead of a quantile.
        num_workers: decoding processes (1 = in this process; at most 2).
        seed: seeds the similarity scorer's k-means.
    """

    min_title_words: int = 5
    max_title_words: int = 30
    min_cjk_chars: int = 5
    min_duration_s: float = 10.0
    max_duration_s: float = 120.0
    dedup: DedupConfig = field(default_factory=DedupConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)
    similarity_quantile: float = 0.05
    similarity_threshold: float | None = None
    num_workers: int = 2
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.num_workers <= MAX_WORKERS:
            raise ValueError(f"num_workers must be 1..{MAX_WORKERS}, got {self.num_workers}")
        if not 0 <= self.similarity_quantile < 1:
            raise ValueError(f"similarity_quantile must be in [0, 1), got {self.similarity_quantile}")
        if self.min_title_words > self.max_title_words or self.min_duration_s > self.max_duration_s:
            raise ValueError("a minimum is larger than its maximum")


@dataclass(frozen=True)
class Filter:
    """One filter of the catalogue: its column name, the reason it states, the defects it should catch."""

    name: str
    reason: str
    defects: tuple[str, ...]


FILTERS: tuple[Filter, ...] = (
    Filter("unreadable", "video file missing, undecodable or too small", ("corrupt",)),
    Filter("duration", "duration outside the allowed range", ("too_short", "too_long")),
    Filter("meaningless_title", "meaningless title", ("meaningless_title",)),
    Filter("ad_title", "advertising title", ("ad_title",)),
    Filter("title_length", "title too short or too long", ("short_title", "long_title")),
    Filter("duplicate", "near-duplicate of a kept video", ("duplicate",)),
    Filter("low_similarity", "video and title disagree", ("mismatched_title",)),
)
DEFECTS: tuple[str, ...] = tuple(d for f in FILTERS for d in f.defects)
"""Every defect flag the mini-Youku ground truth may carry ('' = none)."""
_RULES = ("unreadable", "duration", "meaningless_title", "ad_title", "title_length")

# -- videos ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoEvidence:
    """What decoding one video tells the filters.

    Attributes:
        duration: seconds (NaN when unreadable).
        fingerprint: for the near-duplicate search (None when unreadable).
        features: the similarity scorer's video features (None when unreadable).
        error: why the video is unreadable ('' when it is readable).
    """

    duration: float
    fingerprint: Fingerprint | None
    features: np.ndarray | None
    error: str = ""


def _middle_indices(num_frames: int, k: int) -> np.ndarray:
    """'middle' sampling: the centre frame of each of k equal segments, shape (k,)."""
    edges = np.linspace(0, num_frames, k + 1).astype(np.int64)
    return np.minimum((edges[:-1] + edges[1:]) // 2, num_frames - 1)


def min_frame_side(scorer: VideoTextScorer) -> int:
    """Smallest frame height and width the filters can use: the fingerprint's thumbnail side (below it the
    thumbnail only repeats pixels and unrelated videos look alike) or the scorer's minimum, whichever is larger."""
    return max(THUMB_SIZE, scorer.min_side)


def inspect_video(path: str | Path, dedup: DedupConfig, scorer: VideoTextScorer) -> VideoEvidence:
    """Decode what the filters need from one video, in one read.

    The fingerprint needs the ``dedup.window`` central frames of those sampled at ``dedup.fps``; the scorer
    the 'middle' frames of ``scorer.num_frames`` equal segments. A video is readable when its metadata opens
    and these frames decode; it is usable when its frames are at least `min_frame_side` pixels high and wide.

    Returns:
        The evidence; ``error`` is set (no exception) when the file is missing, undecodable or too small.
    """
    try:
        info = video_info(path)
        sampled = sample_indices(info.num_frames, info.fps, dedup.fps)
        window = sampled[slice(*central_window(len(sampled), dedup.window))]
        wanted = np.concatenate([window, _middle_indices(info.num_frames, scorer.num_frames)])
        unique, position = np.unique(wanted, return_inverse=True)
        frames = read_frames(path, unique)[position]  # (len(window) + num_frames, H, W, 3)
    except VideoReadError as e:
        return VideoEvidence(float("nan"), None, None, e.reason)
    (height, width), side = frames.shape[1:3], min_frame_side(scorer)
    if min(height, width) < side:
        return VideoEvidence(info.duration, None, None, f"frames of {width}x{height} px are too small to fingerprint "
                                                        f"and score (at least {side}x{side} px)")
    features = scorer.video_features(frames[len(window):])
    return VideoEvidence(info.duration, fingerprint(frames[:len(window)], dedup), features)


def inspect_videos(paths: Sequence[str], dedup: DedupConfig, scorer: VideoTextScorer,
                   num_workers: int = MAX_WORKERS) -> list[VideoEvidence]:
    """`inspect_video` over many files, in order, by up to two worker processes, with a progress bar."""
    work = partial(inspect_video, dedup=dedup, scorer=scorer)
    progress = partial(tqdm, total=len(paths), desc="decode videos", unit="video")
    if min(num_workers, MAX_WORKERS) <= 1:
        return [work(p) for p in progress(paths)]
    with ProcessPoolExecutor(min(num_workers, MAX_WORKERS)) as pool:
        return list(progress(pool.map(work, paths, chunksize=8)))


# -- the filters -----------------------------------------------------------------------------------------------


def flag_rules(titles: pd.Series, durations: np.ndarray, errors: Sequence[str], config: FilterConfig) -> pd.DataFrame:
    """The per-video rules on every video.

    Args:
        titles: one title per video (None or blank counts as meaningless).
        durations: decoded durations in seconds, shape (N,) (NaN when unreadable).
        errors: decoding errors ('' = readable), length N.
        config: thresholds.

    Returns:
        Boolean columns ``unreadable, duration, meaningless_title, ad_title, title_length`` (True = flagged)
        and the integer column ``title_words``.
    """
    text = titles.fillna("").astype(str).str.strip().tolist()
    words = np.array([title_word_count(t) for t in text], dtype=np.int64)
    cjk = np.array([cjk_count(t) for t in text], dtype=np.int64)
    readable = np.array([not e for e in errors], dtype=bool)
    with np.errstate(invalid="ignore"):
        bad_duration = readable & ((durations < config.min_duration_s) | (durations > config.max_duration_s))
    return pd.DataFrame({
        "unreadable": ~readable,
        "duration": bad_duration,
        "meaningless_title": [not t or is_meaningless_title(t) for t in text],
        "ad_title": [is_ad_title(t) for t in text],
        "title_length": (words < config.min_title_words) | (words > config.max_title_words)
                        | (cjk < config.min_cjk_chars),
        "title_words": words,
    }, index=titles.index)


def flag_duplicates(fingerprints: Sequence[Fingerprint | None], durations: np.ndarray, candidates: np.ndarray,
                    config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicates among the candidate videos; the longest of each group is kept.

    Args:
        fingerprints: one per video (None for unreadable ones, which must not be candidates), length N.
        durations: seconds, shape (N,).
        candidates: boolean mask (N,) of the videos that take part.
        config: search settings.

    Returns:
        ``flagged`` (N,) bool and ``keeper`` (N,) int64: position of the kept video of each flagged video's
        group (-1 where not flagged).
    """
    where = np.flatnonzero(candidates)
    pairs = find_near_duplicates([fingerprints[i] for i in where], config)
    group = duplicate_groups(len(where), pairs)
    order = pd.DataFrame({"group": group, "duration": durations[where], "row": where})
    # The keeper of a group: longest duration, then the earliest row.
    keeper_row = order.sort_values(["duration", "row"], ascending=[False, True]).groupby("group")["row"].first()
    keeper = keeper_row.loc[group].to_numpy()
    flagged = np.zeros(len(fingerprints), bool)
    keeper_of = np.full(len(fingerprints), -1, np.int64)
    is_copy = keeper != where
    flagged[where[is_copy]] = True
    keeper_of[where[is_copy]] = keeper[is_copy]
    return flagged, keeper_of


def flag_low_similarity(scores: np.ndarray, candidates: np.ndarray, quantile: float,
                        threshold: float | None) -> np.ndarray:
    """Candidates whose score is below `threshold`, or (threshold None) in the lowest `quantile` of theirs.

    Args:
        scores: video-text scores, shape (N,) (NaN = not scored, never flagged).
        candidates: boolean mask (N,) of the videos that take part.
        quantile: share of the scored candidates to remove when no threshold is given.
        threshold: an absolute score threshold, or None.

    Returns:
        Boolean flags, shape (N,).
    """
    scored = candidates & ~np.isnan(scores)
    if threshold is None:
        if not scored.any() or quantile == 0:
            return np.zeros(len(scores), bool)
        threshold = float(np.quantile(scores[scored], quantile))
        return scored & (scores <= threshold)
    return scored & (scores < threshold)


def apply_filters(records: pd.DataFrame, ground_truth: pd.DataFrame | None = None,
                  config: FilterConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run the §3.1 filters over a pool of records.

    Args:
        records: a record table (vlstudy.data.schema); ``video_path`` and ``title`` are used.
        ground_truth: optional mini-Youku ``ground_truth.csv`` table (``video_id, defect, duplicate_of``);
            only the report uses it.
        config: thresholds; defaults to the paper's.

    Returns:
        ``kept``: the records that pass every filter (``duration`` filled with the decoded duration);
        ``decisions``: one row per video: ``video_id``, one boolean column per filter (``FILTERS`` order; True =
        flagged), ``first_reason`` ('' when kept), ``duration_s`` (decoded), ``title_words``, ``duplicate_of`` (the kept
        copy's id, '' otherwise), ``similarity`` (NaN where not scored) and ``error``;
        ``report``: `filter_report` of the decisions.
    """
    config = config or FilterConfig()
    records = validate_frame(records)
    scorer = make_scorer(config.similarity, title_words, np.random.default_rng(config.seed))
    evidence = inspect_videos(records["video_path"].tolist(), config.dedup, scorer, config.num_workers)
    durations = np.array([e.duration for e in evidence], dtype=np.float64)
    errors = [e.error for e in evidence]
    for video_id, path, error in zip(records["video_id"], records["video_path"], errors):
        if error:
            logger.warning("unreadable pool video %s (%s), removed: %s", video_id, path, error)

    decisions = flag_rules(records["title"], durations, errors, config)
    passed = ~decisions[list(_RULES)].to_numpy().any(axis=1)
    duplicate, keeper = flag_duplicates([e.fingerprint for e in evidence], durations, passed, config.dedup)
    passed &= ~duplicate
    scores = np.full(len(records), np.nan)
    where = np.flatnonzero(passed)
    if len(where):
        scores[where] = scorer.score([evidence[i].features for i in where], records["title"].iloc[where].tolist())
    low = flag_low_similarity(scores, passed, config.similarity_quantile, config.similarity_threshold)

    decisions.insert(0, "video_id", records["video_id"].to_numpy())
    decisions["duplicate"] = duplicate
    decisions["low_similarity"] = low
    flags = decisions[[f.name for f in FILTERS]].to_numpy()
    first = np.where(flags.any(axis=1), flags.argmax(axis=1), -1)
    decisions["first_reason"] = [FILTERS[i].name if i >= 0 else "" for i in first]
    decisions["duration_s"] = durations
    ids = records["video_id"].to_numpy()
    decisions["duplicate_of"] = [ids[k] if k >= 0 else "" for k in keeper]
    decisions["similarity"] = scores
    decisions["error"] = errors
    decisions = decisions[["video_id", *(f.name for f in FILTERS), "first_reason", "duration_s", "title_words",
                           "duplicate_of", "similarity", "error"]].reset_index(drop=True)

    kept_mask = first < 0
    kept = records[kept_mask].copy()
    kept["duration"] = kept["duration"].fillna(pd.Series(durations[kept_mask], index=kept.index))
    return validate_frame(kept), decisions, filter_report(decisions, ground_truth)


def _ground_truth_defects(decisions: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """The ground-truth ``defect`` and ``duplicate_of`` of each decided video (errors name the missing key)."""
    missing = [c for c in ("video_id", "defect", "duplicate_of") if c not in ground_truth.columns]
    if missing:
        raise ValueError(f"ground truth: missing column(s) {missing}")
    truth = ground_truth.set_index(ground_truth["video_id"].astype(str))[["defect", "duplicate_of"]]
    truth = truth.fillna("").astype(str)
    absent = decisions.loc[~decisions["video_id"].isin(truth.index), "video_id"]
    if len(absent):
        raise ValueError(f"ground truth: no row for video_id {absent.iloc[0]!r} ({len(absent)} videos missing)")
    unknown = sorted(set(truth["defect"]) - set(DEFECTS) - {""})
    if unknown:
        raise ValueError(f"ground truth: unknown defect value(s) {unknown}; known: {list(DEFECTS)}")
    return truth.loc[decisions["video_id"]].reset_index(drop=True)


def _duplicate_true_positives(decisions: pd.DataFrame, truth: pd.DataFrame) -> tuple[int, int]:
    """(sum of tp_g, sum of |g| - 1) over ground-truth duplicate groups (module docstring)."""
    is_copy = truth["defect"] == "duplicate"
    group = truth["duplicate_of"].where(is_copy, decisions["video_id"])  # a copy joins its original's group
    removed = decisions["first_reason"] == "duplicate"
    table = pd.DataFrame({"group": group, "removed": removed, "copy": is_copy})
    per_group = table.groupby("group").agg(removed=("removed", "sum"), copies=("copy", "sum"))
    return int(np.minimum(per_group["removed"], per_group["copies"]).sum()), int(per_group["copies"].sum())


def filter_report(decisions: pd.DataFrame, ground_truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """Counts per filter and, given the ground truth, each filter's precision and recall (module docstring).

    Args:
        decisions: the decisions table of `apply_filters`.
        ground_truth: optional table with ``video_id, defect, duplicate_of`` for every decided video.

    Returns:
        One row per filter plus ``any``: ``filter, reason, flagged`` (videos it flags), ``removed`` (removals
        attributed to it); with ground truth also ``defects, support, true_positives, precision, recall``
        (NaN where undefined).
    """
    rows = []
    for f in FILTERS:
        rows.append({"filter": f.name, "reason": f.reason, "flagged": int(decisions[f.name].sum()),
                     "removed": int((decisions["first_reason"] == f.name).sum())})
    removed_any = decisions["first_reason"] != ""
    rows.append({"filter": "any", "reason": "removed for any reason", "flagged": int(removed_any.sum()),
                 "removed": int(removed_any.sum())})
    report = pd.DataFrame(rows)
    if ground_truth is None:
        return report

    truth = _ground_truth_defects(decisions, ground_truth)
    stats = []
    for f in FILTERS:
        if f.name == "duplicate":
            tp, support = _duplicate_true_positives(decisions, truth)
        else:
            has_defect = truth["defect"].isin(f.defects)
            tp = int(((decisions["first_reason"] == f.name) & has_defect).sum())
            support = int(has_defect.sum())
        stats.append((",".join(f.defects), support, tp))
    stats.append(("any", int(truth["defect"].ne("").sum()), sum(tp for _, _, tp in stats)))
    report["defects"], report["support"], report["true_positives"] = zip(*stats)
    with np.errstate(invalid="ignore", divide="ignore"):
        report["precision"] = np.where(report["removed"] > 0, report["true_positives"] / report["removed"], np.nan)
        report["recall"] = np.where(report["support"] > 0, report["true_positives"] / report["support"], np.nan)
    return report
