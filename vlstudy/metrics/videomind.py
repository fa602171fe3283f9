"""VideoMind multi-layer retrieval metrics (Yang et al., 2025), pure functions of similarity matrices.

VideoMind describes each video at several layers: factual (what is seen), abstract (what it is about) and
intent (why it was made). No official code was released; the definitions followed here are those of the
paper as summarised in DESIGN.md ("VideoMind facts"):

* text -> video, per layer: each layer's text queries the videos; R@1/5/10 (percent) and MeanR (mean 1-based
  rank);
* any -> video: the queries of all layers pooled into one query set (R@K and MeanR over all of them);
* video -> text with one ground truth per layer (three in VideoMind): a video ranks all layers' texts of all
  videos; its ground truths sit at ranks r1 <= r2 <= r3. hit-any R@K = share of videos with r1 <= K,
  hit-all R@K = share with r3 <= K (K = 3, 5, 10), TopR = mean r1, LowestR = mean r3,
  AvgR = mean of (r1 + r2 + r3) / 3.

Ranks use the pessimistic convention of ``retrieval.py``: a ground truth's rank counts the wrong candidates
scoring at least as high; the k-th ground truth's rank is k + the number of wrong texts scoring at least as
high as it (ties among a video's own ground truths do not matter). Bootstrap unit: the video with its texts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from vlstudy.metrics.base import ID_COLUMN, Mean, MetricError, MetricResult
from vlstudy.metrics.retrieval import check_similarity, text_to_video_ranks

__all__ = ["videomind_metrics", "ground_truth_rank_profile"]


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
                      t2v_ks: tuple[int, ...] = (1, 5, 10), v2t_ks: tuple[int, ...] = (3, 5, 10)) -> MetricResult:
    """VideoMind's per-layer, pooled and multi-ground-truth retrieval metrics.

    Args:
        similarities: layer name -> (V, V) scores (numpy or torch), in layer order (e.g. factual, abstract,
            intent): entry [i, j] is the score of video i's text of that layer for video j, so the ground truth
            is the diagonal. Video->text uses the same scores (the pooled matrix transposed).
        video_ids: V ids (default "0".."V-1").
        t2v_ks: the K of text->video R@K.
        v2t_ks: the K of video->text hit-any / hit-all R@K.

    Returns:
        MetricResult with summary ``t2v_{layer}_R@K``, ``t2v_{layer}_MeanR``, ``any2v_R@K``, ``any2v_MeanR``,
        ``v2t_hit_any_R@K``, ``v2t_hit_all_R@K``, ``v2t_TopR``, ``v2t_LowestR``, ``v2t_AvgR``, ``n_videos``;
        per_item (one row per video): ``item_id``, ``t2v_rank_{layer}``, ``v2t_r1`` .. ``v2t_r{G}``.

    Raises:
        MetricError: no layer, a non-square or mismatched matrix, non-finite scores.
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
    for k in v2t_ks:
        add(f"v2t_hit_any_R@{k}", Mean(top <= k, scale=100.0))
        add(f"v2t_hit_all_R@{k}", Mean(lowest <= k, scale=100.0))
    add("v2t_TopR", Mean(top))
    add("v2t_LowestR", Mean(lowest))
    add("v2t_AvgR", Mean(profile.mean(axis=1)))
    summary["n_videos"] = num_videos
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)
