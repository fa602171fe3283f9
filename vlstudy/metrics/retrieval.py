"""Video-text retrieval: R@1/5/10, median and mean rank in both directions, pure functions of a similarity matrix.

Follows ``itm_eval`` of the official Youku-mPLUG code (X-PLUG/Youku-mPLUG,
``downstream/run_retrieval_distributed_gpt3.py``), itself ALBEF/ALPRO's (salesforce/ALPRO,
``src/tasks/run_video_retrieval.py``):

* text -> video: each text query has one ground-truth video; its rank is that video's position;
* video -> text: a video has one or more ground-truth texts; its rank is the **best** (smallest) position of
  any of them.

R@K is the share of queries with rank <= K, in percent. The official code reports 0-based ranks with ``< K``
and names the directions ``txt_r*`` (video->text) and ``vid_r*`` (text->video); here ranks are 1-based,
keys are ``t2v_R@K`` / ``v2t_R@K``, and median rank (MdR) and mean rank (MnR) are added.

Ties. The official code sorts with ``np.argsort``, which orders equal scores arbitrarily. Here the rank is
pessimistic and deterministic: 1 + the number of *wrong* candidates scoring at least as high as the (best)
ground truth. With one ground truth this is 1 + the number of other candidates with score >= its score.

Speed: one vectorised comparison of the whole matrix per direction (no loop over queries); a 7,414 x 7,414
float32 matrix takes well under a second (``benchmarks/retrieval_metrics.py``).

Bootstrap unit: the video with all of its texts (texts of one video are not independent queries), so
``per_item`` has one row per video (its video->text rank) and ``details["texts"]`` one row per text (its
text->video rank); the text->video statistics weight each text by its video's count.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from vlstudy.metrics.base import ID_COLUMN, Mean, Median, MetricError, MetricResult, as_array

__all__ = ["retrieval_metrics", "text_to_video_ranks", "video_to_text_ranks", "check_similarity",
           "check_text_to_video"]


def check_similarity(similarity: Any, name: str = "similarity") -> np.ndarray:
    """A finite 2-D float matrix (float32 kept, other dtypes -> float64); errors name the first bad cell."""
    s = as_array(similarity, name, dtype=None)
    if s.dtype != np.float32:
        s = s.astype(np.float64)
    if s.ndim != 2 or 0 in s.shape:
        raise MetricError(f"{name} must be a non-empty 2-D matrix, got shape {s.shape}")
    finite = np.isfinite(s)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise MetricError(f"{name}[{row}, {col}] is {s[row, col]} ({int((~finite).sum())} non-finite values): "
                          "scores must be finite")
    return s


def check_text_to_video(text_to_video: Any, num_texts: int, num_videos: int,
                        text_ids: Sequence[str] | None = None) -> np.ndarray:
    """Validate the text -> ground-truth video index map: length, range, and every video having a text."""
    mapping = as_array(text_to_video, "text_to_video", dtype=None)
    if mapping.ndim != 1 or len(mapping) != num_texts:
        raise MetricError(f"text_to_video must hold one video index per text ({num_texts}), got shape {mapping.shape}")
    if not np.issubdtype(mapping.dtype, np.integer):
        raise MetricError(f"text_to_video must hold integer video indices, got dtype {mapping.dtype}")
    outside = (mapping < 0) | (mapping >= num_videos)
    if outside.any():
        t = int(np.argmax(outside))
        name = f"text {t}" + (f" (id {text_ids[t]!r})" if text_ids is not None else "")
        raise MetricError(f"{name} maps to video {int(mapping[t])}, outside 0..{num_videos - 1} "
                          f"({int(outside.sum())} texts out of range)")
    without_text = np.flatnonzero(np.bincount(mapping, minlength=num_videos) == 0)
    if len(without_text):
        raise MetricError(f"{len(without_text)} videos have no ground-truth text, e.g. video indices "
                          f"{without_text[:5].tolist()}: every video needs at least one")
    return mapping.astype(np.intp)


def text_to_video_ranks(similarity: np.ndarray, text_to_video: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank of each text's ground-truth video.

    Args:
        similarity: (T, V) score of text t for video v (validated, see :func:`check_similarity`).
        text_to_video: (T,) ground-truth video index of each text.

    Returns:
        (T,) int ranks: 1 + number of other videos with score >= the ground truth's.
    """
    truth = similarity[np.arange(len(text_to_video)), text_to_video]
    return (similarity >= truth[:, None]).sum(axis=1)  # the ground truth counts itself: the "1 +"


def video_to_text_ranks(similarity: np.ndarray, text_to_video: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank of each video's best ground-truth text.

    Args:
        similarity: (V, T) score of video v for text t.
        text_to_video: (T,) ground-truth video index of each text; every video has at least one text.

    Returns:
        (V,) int ranks: 1 + number of wrong texts (other videos' texts) with score >= the video's best
        ground-truth score.
    """
    num_videos = similarity.shape[0]
    truth = similarity[text_to_video, np.arange(len(text_to_video))]  # (T,) score of each text for its video
    best = np.full(num_videos, -np.inf, dtype=similarity.dtype)
    np.maximum.at(best, text_to_video, truth)  # (V,) best ground-truth score
    at_least_best = (similarity >= best[:, None]).sum(axis=1)
    truths_at_best = np.bincount(text_to_video, weights=(truth >= best[text_to_video]).astype(np.float64),
                                 minlength=num_videos)
    return at_least_best - truths_at_best.astype(np.int64) + 1


def retrieval_metrics(similarity: Any, text_to_video: Any, *, video_to_text_similarity: Any = None,
                      text_ids: Sequence[str] | None = None, video_ids: Sequence[str] | None = None,
                      ks: tuple[int, ...] = (1, 5, 10)) -> MetricResult:
    """Text->video and video->text retrieval metrics of a similarity matrix.

    Args:
        similarity: (num_texts, num_videos) score of each text for each video (numpy or torch), finite.
        text_to_video: (num_texts,) index of each text's ground-truth video; a video may have several texts,
            and every video needs at least one.
        video_to_text_similarity: (num_videos, num_texts) separate video->text scores when the two
            directions are scored differently (e.g. re-ranked by a matching head); default: ``similarity.T``.
        text_ids: num_texts ids for ``details["texts"]`` (default "0".."T-1").
        video_ids: num_videos ids for ``per_item`` (default "0".."V-1").
        ks: the K of each R@K.

    Returns:
        MetricResult with summary ``t2v_R@K``, ``t2v_MdR``, ``t2v_MnR``, ``v2t_R@K``, ``v2t_MdR``,
        ``v2t_MnR``, ``n_texts``, ``n_videos``; per_item (one row per video): ``item_id``, ``n_texts``,
        ``v2t_rank``; details["texts"] (one row per text): ``text_id``, ``item_id`` (its video),
        ``t2v_rank``.

    Raises:
        MetricError: wrong shapes, non-finite scores, a text mapped outside the videos, a video with no text.
    """
    s_tv = check_similarity(similarity)
    num_texts, num_videos = s_tv.shape
    if video_to_text_similarity is None:
        s_vt = s_tv.T
    else:
        s_vt = check_similarity(video_to_text_similarity, "video_to_text_similarity")
        if s_vt.shape != (num_videos, num_texts):
            raise MetricError(f"video_to_text_similarity must have shape {(num_videos, num_texts)}, got {s_vt.shape}")
    text_ids = [str(i) for i in range(num_texts)] if text_ids is None else [str(i) for i in text_ids]
    video_ids = [str(i) for i in range(num_videos)] if video_ids is None else [str(i) for i in video_ids]
    if len(text_ids) != num_texts or len(video_ids) != num_videos:
        raise MetricError(f"got {len(text_ids)} text ids and {len(video_ids)} video ids for a "
                          f"{num_texts} x {num_videos} similarity matrix")
    mapping = check_text_to_video(text_to_video, num_texts, num_videos, text_ids)

    t2v = text_to_video_ranks(s_tv, mapping)
    v2t = video_to_text_ranks(s_vt, mapping)

    statistics = {}
    for k in ks:
        statistics[f"t2v_R@{k}"] = Mean(t2v <= k, unit_of=mapping, n_units=num_videos, scale=100.0)
    statistics["t2v_MdR"] = Median(t2v, unit_of=mapping, n_units=num_videos)
    statistics["t2v_MnR"] = Mean(t2v, unit_of=mapping, n_units=num_videos)
    for k in ks:
        statistics[f"v2t_R@{k}"] = Mean(v2t <= k, scale=100.0)
    statistics["v2t_MdR"] = Median(v2t)
    statistics["v2t_MnR"] = Mean(v2t)

    summary: dict[str, float] = {}
    for k in ks:
        summary[f"t2v_R@{k}"] = 100.0 * float((t2v <= k).mean())
    summary["t2v_MdR"] = float(np.median(t2v))
    summary["t2v_MnR"] = float(t2v.mean())
    for k in ks:
        summary[f"v2t_R@{k}"] = 100.0 * float((v2t <= k).mean())
    summary["v2t_MdR"] = float(np.median(v2t))
    summary["v2t_MnR"] = float(v2t.mean())
    summary["n_texts"] = num_texts
    summary["n_videos"] = num_videos

    per_item = pd.DataFrame({ID_COLUMN: video_ids, "n_texts": np.bincount(mapping, minlength=num_videos),
                             "v2t_rank": v2t})
    texts = pd.DataFrame({"text_id": text_ids, ID_COLUMN: [video_ids[v] for v in mapping], "t2v_rank": t2v})
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics, details={"texts": texts})
