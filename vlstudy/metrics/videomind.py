"""VideoMind multi-layer retrieval metrics (Yang et al., 2025, Tables 2 and 3), pure functions of scores.

VideoMind describes each video at three layers: factual (what is seen), abstract (what it is about) and
intent (why it was made). No official code was released; the definitions followed here are those of the
paper as summarised in DESIGN.md ("VideoMind facts"):

* Table 2, text -> video, per layer: each layer's text queries the videos; R@1/5/10 (percent) and MeanR (mean
  1-based rank); any -> video: the queries of all layers pooled into one query set (R@K and MeanR over all).
* Table 3, video -> text with one ground truth per layer (three in VideoMind): a video ranks all layers' texts
  of all videos; its ground truths sit at ranks r1 <= r2 <= r3. hit-any R@K = share of videos with r1 <= K
  (K = 1, 5, 10), hit-all R@K = share with r3 <= K (K = 3, 5, 10), TopR = mean r1, LowestR = mean r3,
  AvgR = mean of (r1 + r2 + r3) / 3.

Ties. Ranks use the pessimistic convention of ``retrieval.py`` (the official Youku-mPLUG / ALBEF ``argsort``
orders equal scores arbitrarily; a pessimistic rank is deterministic and never flatters a model that scores
everything alike): a text query's rank is the number of videos scoring at least as high as its own video;
a video's k-th ground truth has rank k + the number of *wrong* texts scoring at least as high as it. Ties
among a video's own ground truths do not matter (they take ranks k, k+1, ... in any order). Equivalently:
sort the candidates by score, wrong candidates before right ones on equal scores, and read the positions.

Bootstrap unit: the video with its texts (a cluster bootstrap; ``per_item`` has one row per video, and the
pooled any -> video statistics weight each query by its video's count), so ``bootstrap.metric_intervals`` gives
95 % intervals over videos for every number of both tables; :func:`videomind_tables` does it in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vlstudy.metrics.base import ID_COLUMN, Mean, MetricError, MetricResult, as_array
from vlstudy.metrics.bootstrap import metric_intervals
from vlstudy.metrics.retrieval import check_similarity, text_to_video_ranks

__all__ = ["LAYERS", "VideoMindTables", "videomind_metrics", "videomind_tables", "layer_similarities",
           "ground_truth_rank_profile", "text_to_video_table", "video_to_text_table", "tie_broken_summary"]

LAYERS = ("factual", "abstract", "intent")
"""VideoMind's layers, in the paper's order (Table 2 columns)."""


def ground_truth_rank_profile(video_to_text: np.ndarray, truth_scores: np.ndarray) -> np.ndarray:
    """Ranks of each video's ground-truth texts, best first.

    Args:
        video_to_text: (V, C) score of every candidate text for each video (ground truths included).
        truth_scores: (V, G) scores of each video's G ground-truth texts (entries of ``video_to_text``).

    Returns:
        (V, G) int ranks r_1 <= ... <= r_G: r_k = k + number of wrong texts scoring >= the k-th best ground truth.
    """
    best_first = -np.sort(-truth_scores, axis=1)  # (V, G)
    ranks = np.empty(best_first.shape, dtype=np.int64)
    for k in range(best_first.shape[1]):  # G is the number of layers (3): a loop over layers, not over videos
        threshold = best_first[:, k:k + 1]
        at_least = (video_to_text >= threshold).sum(axis=1)
        truths_at_least = (truth_scores >= threshold).sum(axis=1)
        ranks[:, k] = (k + 1) + at_least - truths_at_least
    return ranks


def videomind_metrics(similarities: Mapping[str, Any], *, video_ids: Sequence[str] | None = None,
                      t2v_ks: tuple[int, ...] = (1, 5, 10), hit_any_ks: tuple[int, ...] = (1, 5, 10),
                      hit_all_ks: tuple[int, ...] = (3, 5, 10)) -> MetricResult:
    """VideoMind's per-layer, pooled and multi-ground-truth retrieval metrics (Tables 2 and 3).

    Args:
        similarities: layer name -> (V, V) scores (numpy or torch), in layer order (e.g. :data:`LAYERS`): entry
            [i, j] is the score of video i's text of that layer for video j, so the ground truth is the
            diagonal. Video->text uses the same scores (the pooled matrix transposed).
        video_ids: V ids (default "0".."V-1").
        t2v_ks: the K of text->video R@K (Table 2).
        hit_any_ks: the K of video->text hit-any R@K (Table 3: 1, 5, 10).
        hit_all_ks: the K of video->text hit-all R@K (Table 3: 3, 5, 10).

    Returns:
        MetricResult with summary ``t2v_{layer}_R@K``, ``t2v_{layer}_MeanR``, ``any2v_R@K``, ``any2v_MeanR``,
        ``v2t_hit_any_R@K``, ``v2t_hit_all_R@K``, ``v2t_TopR``, ``v2t_LowestR``, ``v2t_AvgR``, ``n_videos``;
        per_item (one row per video): ``item_id``, ``t2v_rank_{layer}``, ``v2t_r1`` .. ``v2t_r{G}``.

    Raises:
        MetricError: no layer, a non-square or mismatched matrix, non-finite scores, wrong number of ids.
    """
    if not similarities:
        raise MetricError("videomind_metrics: no layer similarity matrix given")
    layers = list(similarities)
    matrices = [check_similarity(similarities[layer], f"similarities[{layer!r}]") for layer in layers]
    num_videos = matrices[0].shape[0]
    for layer, s in zip(layers, matrices):
        if s.shape != (num_videos, num_videos):
            raise MetricError(f"similarities[{layer!r}] must be ({num_videos}, {num_videos}) (texts of layer x "
                              f"videos, ground truth on the diagonal), got {s.shape}")
    video_ids = [str(i) for i in range(num_videos)] if video_ids is None else [str(i) for i in video_ids]
    if len(video_ids) != num_videos:
        raise MetricError(f"got {len(video_ids)} video ids for {num_videos} videos")

    videos = np.arange(num_videos)
    t2v = {layer: text_to_video_ranks(s, videos) for layer, s in zip(layers, matrices)}
    pooled = np.concatenate(matrices, axis=0)  # (G*V, V): all layers' queries
    profile = ground_truth_rank_profile(pooled.T, np.stack([s[videos, videos] for s in matrices], axis=1))

    per_item = pd.DataFrame({ID_COLUMN: video_ids})
    summary: dict[str, float] = {}
    statistics = {}

    def add(name: str, statistic: Mean) -> None:
        statistics[name] = statistic
        summary[name] = float(statistic(np.ones((1, num_videos), dtype=np.int64))[0])

    for layer in layers:
        per_item[f"t2v_rank_{layer}"] = t2v[layer]
        for k in t2v_ks:
            add(f"t2v_{layer}_R@{k}", Mean(t2v[layer] <= k, scale=100.0))
        add(f"t2v_{layer}_MeanR", Mean(t2v[layer]))
    any_ranks = np.concatenate([t2v[layer] for layer in layers])
    owner = np.tile(videos, len(layers))
    for k in t2v_ks:
        add(f"any2v_R@{k}", Mean(any_ranks <= k, unit_of=owner, n_units=num_videos, scale=100.0))
    add("any2v_MeanR", Mean(any_ranks, unit_of=owner, n_units=num_videos))

    for g in range(profile.shape[1]):
        per_item[f"v2t_r{g + 1}"] = profile[:, g]
    top, lowest = profile[:, 0], profile[:, -1]
    for k in hit_any_ks:
        add(f"v2t_hit_any_R@{k}", Mean(top <= k, scale=100.0))
    for k in hit_all_ks:
        add(f"v2t_hit_all_R@{k}", Mean(lowest <= k, scale=100.0))
    add("v2t_TopR", Mean(top))
    add("v2t_LowestR", Mean(lowest))
    add("v2t_AvgR", Mean(profile.mean(axis=1)))
    summary["n_videos"] = num_videos
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)


def tie_broken_summary(similarities: Mapping[str, Any], *, rng: np.random.Generator, draws: int = 20,
                       **kwargs: Any) -> dict[str, float]:
    """:func:`videomind_metrics` summary with ties broken at random, averaged over `draws` draws.

    For scores with designed ties (e.g. mini-Youku's designed ceilings, ``designed_layer_scores``: a perfect
    recogniser cannot tell apart the videos a text is consistent with), the pessimistic ranks of
    :func:`videomind_metrics` give the floor; a recogniser that guesses among tied candidates scores this
    expectation (for text -> video R@1, the mean of 1 / m over texts consistent with m videos). Each draw adds
    uniform noise below a quarter of the smallest gap between distinct scores of all layers, so it reorders tied
    candidates only.

    Args:
        similarities: as :func:`videomind_metrics`.
        rng: draws the noise.
        draws: random tie-breaks averaged.
        **kwargs: passed to :func:`videomind_metrics` (``t2v_ks``, ...).

    Returns:
        summary key -> mean over the draws (``n_videos`` included).
    """
    if draws < 1:
        raise MetricError(f"tie_broken_summary: draws must be >= 1, got {draws}")
    matrices = {layer: as_array(s, f"similarities[{layer!r}]") for layer, s in similarities.items()}
    values = np.unique(np.concatenate([s.ravel() for s in matrices.values()]))
    gaps = np.diff(values)
    scale = gaps.min() / 4 if len(gaps) else 1.0
    totals: dict[str, float] = {}
    for _ in range(draws):
        noisy = {layer: s + scale * rng.random(s.shape) for layer, s in matrices.items()}
        for key, value in videomind_metrics(noisy, **kwargs).summary.items():
            totals[key] = totals.get(key, 0.0) + value / draws
    return totals


def layer_similarities(video_features: Any, layer_features: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-layer (V, V) score matrices from features: entry [i, j] = text i of the layer . video j.

    Args:
        video_features: (V, E) video features (numpy or torch), e.g. a model's L2-normalised
            ``contrastive_features`` (then the scores are cosine similarities).
        layer_features: layer name -> (V, E) text features; row i is video i's text of that layer.

    Returns:
        layer name -> (V, V) float64 scores, in the order of `layer_features`.

    Raises:
        MetricError: no layer, a shape mismatch (naming the layer), non-finite features.
    """
    if not layer_features:
        raise MetricError("layer_similarities: no layer text features given")
    video = as_array(video_features, "video_features")
    if video.ndim != 2 or 0 in video.shape:
        raise MetricError(f"video_features must be a non-empty (V, E) matrix, got shape {video.shape}")
    out = {}
    for layer, features in layer_features.items():
        text = as_array(features, f"layer_features[{layer!r}]")
        if text.shape != video.shape:
            raise MetricError(f"layer_features[{layer!r}] must have the video features' shape {video.shape} "
                              f"(one text of the layer per video, same width), got {text.shape}")
        out[layer] = text @ video.T  # (V, V)
    return out


def _interval_rows(result: MetricResult, intervals: pd.DataFrame, rows: list[tuple[str, str, str, str]],
                   first: str) -> pd.DataFrame:
    """(first-column value, metric, summary key, better) rows -> a tidy table with estimate, low, high."""
    frame = pd.DataFrame(rows, columns=[first, "metric", "key", "better"])
    missing = [key for key in frame["key"] if key not in result.summary]
    if missing:
        raise MetricError(f"the VideoMind result has no {missing[:5]} (computed with other K or layers?)")
    frame["estimate"] = [result.summary[key] for key in frame["key"]]
    for bound in ("low", "high"):
        frame[bound] = [float(intervals.loc[key, bound]) if key in intervals.index else np.nan
                        for key in frame["key"]]
    return frame


def text_to_video_table(result: MetricResult, intervals: pd.DataFrame, *, layers: Sequence[str] = LAYERS,
                        ks: tuple[int, ...] = (1, 5, 10)) -> pd.DataFrame:
    """Table 2 as a tidy frame: one row per (query, metric).

    Args:
        result: from :func:`videomind_metrics`.
        intervals: from ``bootstrap.metric_intervals(result, ...)`` (index: summary keys; ``low``, ``high``).
        layers: the query layers, in column order; ``any`` (all layers pooled) is appended.
        ks: the K of R@K.

    Returns:
        Columns ``query`` (a layer or ``any``), ``metric`` (``R@K`` or ``MeanR``), ``key`` (the summary key),
        ``better`` (``higher`` / ``lower``), ``estimate``, ``low``, ``high``.
    """
    rows = []
    for query in [*layers, "any"]:
        prefix = "any2v" if query == "any" else f"t2v_{query}"
        rows += [(query, f"R@{k}", f"{prefix}_R@{k}", "higher") for k in ks]
        rows.append((query, "MeanR", f"{prefix}_MeanR", "lower"))
    return _interval_rows(result, intervals, rows, "query")


def video_to_text_table(result: MetricResult, intervals: pd.DataFrame, *, hit_any_ks: tuple[int, ...] = (1, 5, 10),
                        hit_all_ks: tuple[int, ...] = (3, 5, 10)) -> pd.DataFrame:
    """Table 3 as a tidy frame: one row per metric.

    Args:
        result, intervals: as in :func:`text_to_video_table`.
        hit_any_ks, hit_all_ks: the K of hit-any and hit-all R@K.

    Returns:
        Columns ``group`` (``hit_any``, ``hit_all`` or ``rank``), ``metric`` (``R@K``, ``TopR``, ``LowestR``,
        ``AvgR``), ``key``, ``better``, ``estimate``, ``low``, ``high``.
    """
    rows = [("hit_any", f"R@{k}", f"v2t_hit_any_R@{k}", "higher") for k in hit_any_ks]
    rows += [("hit_all", f"R@{k}", f"v2t_hit_all_R@{k}", "higher") for k in hit_all_ks]
    rows += [("rank", name, f"v2t_{name}", "lower") for name in ("TopR", "LowestR", "AvgR")]
    return _interval_rows(result, intervals, rows, "group")


@dataclass(frozen=True)
class VideoMindTables:
    """Both VideoMind tables of one model, with their 95 % intervals over videos.

    Attributes:
        result: the metrics with per-video ranks (``per_item``) and bootstrap statistics.
        intervals: ``bootstrap.metric_intervals`` of `result` (index: summary key; estimate, low, high).
        text_to_video: Table 2 (:func:`text_to_video_table`).
        video_to_text: Table 3 (:func:`video_to_text_table`).
    """

    result: MetricResult
    intervals: pd.DataFrame
    text_to_video: pd.DataFrame
    video_to_text: pd.DataFrame


def videomind_tables(video_features: Any, layer_features: Mapping[str, Any], *, rng: np.random.Generator,
                     video_ids: Sequence[str] | None = None, n_boot: int = 1000,
                     confidence: float = 0.95) -> VideoMindTables:
    """VideoMind's Tables 2 and 3 of a dual encoder's features, with percentile-bootstrap intervals over videos.

    Args:
        video_features: (V, E) video features (numpy or torch; L2-normalised for cosine scores).
        layer_features: layer name -> (V, E) text features, in table order (e.g. :data:`LAYERS`); row i is
            video i's text of that layer.
        rng: the bootstrap's generator (same state, same intervals).
        video_ids: V ids for ``result.per_item`` (default "0".."V-1").
        n_boot: bootstrap resamples.
        confidence: interval coverage.

    Returns:
        :class:`VideoMindTables`.
    """
    result = videomind_metrics(layer_similarities(video_features, layer_features), video_ids=video_ids)
    intervals = metric_intervals(result, rng=rng, n_boot=n_boot, confidence=confidence)
    return VideoMindTables(result, intervals, text_to_video_table(result, intervals, layers=list(layer_features)),
                           video_to_text_table(result, intervals))
