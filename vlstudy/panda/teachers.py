"""Panda-70M's cross-modality teachers at toy scale: designed metadata, the teachers' inputs, the oracle over them.

Panda-70M (Chen et al., CVPR 2024, Sec. 3.2, Fig. 3) captions each clip with teachers that read different inputs
(video, one frame, subtitles and description as text) and observes that no teacher is best on most videos: the
most selected one is best on 17.85 % (eight teachers, human choice). Its hypothesis: video models win on dynamics,
image models on rare objects, and models reading text "have leverage" where the video is hard to understand,
while the metadata itself is "often too broad or not correctly aligned in time" (Sec. 1).

**Designed metadata.** mini-Youku's captioning clips carry a truthful description (subject and topic: the class)
and truthful subtitles (subject, activity, a class keyword). :func:`design_metadata` makes their usefulness vary
per clip, with the long-form set's probabilities (:class:`vlstudy.data.mini_youku.longform.LongformConfig`):
the description is another class's with probability 0.15 (``p_misleading_meta``); the subtitles are the clip's
own (0.55), chit-chat (0.2) or another class's (0.25 = ``other_event`` 0.1 + ``unrelated`` 0.15). Designed
consequences, before any model is trained: both texts truthful on 0.85 x 0.55 = 47 % of clips (a text-reading
teacher knows the class there, whatever the video shows), both useless on 0.15 x 0.45 = 7 %, conflicting
otherwise; vision knows the class through a shown object (mini-Youku content cues: 0.8) or narrows it to the three
classes of a shown scene (0.9), and alone sees place, object and motion. So text-reading teachers are designed to
win where the metadata is truthful, video-only teachers where it misleads.

**Teachers** (:data:`TEACHERS`): ``video`` (mPLUG-video on 16 frames), ``frame`` (a 1-frame mPLUG-video on the
middle frame), ``text`` (:class:`MetadataNNCaptioner`: the caption of the training clip with the most similar
metadata, nearest-neighbour captioning (Devlin et al. 2015) on text instead of pixels) and ``video_text``
(mPLUG-video on 16 frames with the metadata as its prompt, :func:`metadata_prompt`).

**Oracle.** Without annotators, the best caption of a clip is the one scoring best against its reference captions
(:func:`vlstudy.panda.selector.cider_scores`). :func:`preference` gives each system its share of the clips on
which its caption is the best; systems whose captions tie for the best (e.g. the same text) share that clip's
credit equally. Fig. 3's selective rate and Table 4's preference ratio are both this number.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlstudy.data.mini_youku.longform import _CHATTER  # the long-form set's chit-chat subtitles
from vlstudy.metrics.base import ID_COLUMN, Mean, MetricError, MetricResult
from vlstudy.metrics.captioning import normalize_caption
from vlstudy.panda.selector import CaptionScorer, bleu4_scores, cider_scores, rouge_l_scores

__all__ = ["TEACHERS", "ORACLE_METRICS", "MetadataDesign", "design_metadata", "metadata_prompt",
           "MetadataNNCaptioner", "unique_candidates", "score_candidates", "oracle_choice", "system_scores",
           "preference"]

TEACHERS = {"video": "mPLUG-video, 16 frames", "frame": "mPLUG-video, 1 frame (the middle one)",
            "text": "metadata only (description + subtitles): nearest-neighbour caption",
            "video_text": "mPLUG-video, 16 frames + metadata prompt"}
SUBTITLE_KINDS = ("own", "generic", "other")
# The oracle's metric first; each metric is one "annotator" of the any-acceptable R@1 (Panda: three annotators).
ORACLE_METRICS: dict[str, CaptionScorer] = {"CIDEr": cider_scores, "BLEU-4": bleu4_scores, "ROUGE-L": rouge_l_scores}


@dataclass
class MetadataDesign:
    """How useful each clip's metadata is (module docstring).

    Attributes:
        p_description_misleading: the description is another class's clip's.
        subtitles: probabilities of own subtitles, chit-chat and another class's clip's subtitles.
    """

    p_description_misleading: float = 0.15
    subtitles: tuple[float, float, float] = (0.55, 0.2, 0.25)

    def __post_init__(self):
        weights = np.asarray(self.subtitles, float)
        if not 0 <= self.p_description_misleading <= 1 or (weights < 0).any() or not weights.sum() > 0:
            raise ValueError(f"p_description_misleading must be in [0, 1] and subtitles non-negative weights, got "
                             f"{self.p_description_misleading}, {list(self.subtitles)}")


def _clip_rng(seed: int, video_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, 11, zlib.crc32(video_id.encode())])


def design_metadata(records: pd.DataFrame, design: MetadataDesign, seed: int,
                    labels: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The metadata each clip shows its teachers and students, drawn per clip from `design`.

    Args:
        records: clips with ``video_id``, ``description`` and ``subtitles`` (their own, truthful texts).
        design: the probabilities.
        seed: with the clip's id, the draw (a clip's metadata does not depend on the other clips drawn).
        labels: video id -> class, so that a misleading text is always another class's; None: another clip's.

    Returns:
        One row per clip, in order: ``video_id``, ``description``, ``subtitles``, ``description_relevance``
        (own / other), ``subtitles_relevance`` (own / generic / other).

    Raises:
        ValueError: a clip without description or subtitles (naming it), or fewer than two clips.
    """
    empty = records[records["description"].isna() | records["subtitles"].isna()]
    if len(empty):
        raise ValueError(f"clip {empty['video_id'].iloc[0]!r} has no description or subtitles "
                         f"({len(empty)} such clips): metadata cannot be designed")
    if len(records) < 2:
        raise ValueError("design_metadata needs at least two clips (misleading texts come from another clip)")
    ids = records["video_id"].tolist()
    label = np.array([labels[v] for v in ids]) if labels is not None else np.arange(len(ids))
    weights = np.asarray(design.subtitles, float) / sum(design.subtitles)
    rows = []
    for i, (vid, description, subtitles) in enumerate(zip(ids, records["description"], records["subtitles"])):
        rng = _clip_rng(seed, vid)
        others = np.flatnonzero(label != label[i])
        row = {"video_id": vid, "description": description, "subtitles": subtitles,
               "description_relevance": "own", "subtitles_relevance": SUBTITLE_KINDS[rng.choice(3, p=weights)]}
        if rng.random() < design.p_description_misleading:
            row.update(description=records["description"].iloc[int(rng.choice(others))], description_relevance="other")
        if row["subtitles_relevance"] == "generic":
            row["subtitles"] = "\n".join(str(line) for line in rng.choice(_CHATTER, size=3, replace=False))
        elif row["subtitles_relevance"] == "other":
            row["subtitles"] = records["subtitles"].iloc[int(rng.choice(others))]
        rows.append(row)
    return pd.DataFrame(rows)


def metadata_prompt(description: str, subtitles: str) -> str:
    """The text a text-reading teacher or student is given: ``简介：{description}字幕：{subtitles}。``."""
    return f"简介：{description}字幕：{'，'.join(subtitles.splitlines())}。"


class MetadataNNCaptioner:
    """The ``text`` teacher: the caption of the training clip whose metadata is most similar.

    Metadata is compared as TF-IDF vectors of character unigrams and bigrams (CJK characters only, as the caption
    metrics normalise), by cosine; ties go to the first training clip. Written by hand (about 20 lines of numpy):
    scikit-learn is not a dependency of the kit.

    Args:
        metadata: the training clips' metadata texts.
        captions: their captions.
    """

    def __init__(self, metadata: Sequence[str], captions: Sequence[str]):
        if len(metadata) != len(captions) or not len(metadata):
            raise ValueError(f"need as many captions as metadata texts (>= 1), got {len(metadata)} and "
                             f"{len(captions)}")
        grams = [self._grams(text) for text in metadata]
        self.vocabulary = {g: i for i, g in enumerate(sorted({g for gs in grams for g in gs}))}
        counts = self._counts(grams)
        self.idf = np.log((1 + len(grams)) / (1 + (counts > 0).sum(axis=0))) + 1.0  # smoothed, as scikit-learn
        self.index = self._unit(counts * self.idf)  # (N, V)
        self.captions = list(captions)

    @staticmethod
    def _grams(text: str) -> list[str]:
        chars = normalize_caption(text).replace(" ", "")
        return list(chars) + [chars[i:i + 2] for i in range(len(chars) - 1)]

    def _counts(self, grams: list[list[str]]) -> np.ndarray:
        counts = np.zeros((len(grams), len(self.vocabulary)))
        for row, gs in enumerate(grams):
            for g in gs:
                if g in self.vocabulary:
                    counts[row, self.vocabulary[g]] += 1
        return counts

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def __call__(self, metadata: Sequence[str]) -> list[str]:
        """The caption of the nearest training clip for each metadata text."""
        query = self._unit(self._counts([self._grams(t) for t in metadata]) * self.idf)  # (Q, V)
        return [self.captions[int(i)] for i in np.argmax(query @ self.index.T, axis=1)]


def unique_candidates(captions: Mapping[str, Sequence[str]]) -> tuple[list[list[str]], list[list[list[str]]]]:
    """Per clip, the distinct captions of the systems (first appearance order) and which systems wrote each.

    Args:
        captions: system -> one caption per clip (all the same length).

    Returns:
        (texts: per clip its K_c distinct captions, authors: per clip per text the systems that wrote it).
    """
    lengths = {len(c) for c in captions.values()}
    if len(lengths) != 1:
        raise MetricError(f"every system needs one caption per clip, got lengths {sorted(lengths)}")
    texts, authors = [], []
    for c in range(lengths.pop()):
        order: dict[str, list[str]] = {}
        for system, caps in captions.items():
            order.setdefault(caps[c], []).append(system)
        texts.append(list(order))
        authors.append(list(order.values()))
    return texts, authors


def score_candidates(texts: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                     metrics: Mapping[str, CaptionScorer] = ORACLE_METRICS) -> dict[str, list[np.ndarray]]:
    """metric -> per clip the (K_c,) scores of its candidate texts against the clip's references (x100)."""
    flat = [t for cands in texts for t in cands]
    refs = [references[c] for c, cands in enumerate(texts) for _ in cands]
    cuts = np.cumsum([len(c) for c in texts])[:-1]
    return {name: np.split(np.asarray(scorer(flat, refs), dtype=np.float64), cuts) for name, scorer in metrics.items()}


def oracle_choice(scores: Mapping[str, Sequence[np.ndarray]]) -> tuple[np.ndarray, list[set[int]]]:
    """The oracle's pick per clip (best by the first metric; the first on ties) and the acceptable candidates:
    the best by any metric (ties included), as Panda counts a caption chosen by any of three annotators."""
    first = next(iter(scores.values()))
    oracle = np.array([int(np.argmax(s)) for s in first], dtype=np.int64)
    acceptable = [set().union(*(set(np.flatnonzero(m[c] >= m[c].max() - 1e-9).tolist()) for m in scores.values()))
                  for c in range(len(first))]
    return oracle, acceptable


def system_scores(authors: Sequence[Sequence[Sequence[str]]], text_scores: Sequence[np.ndarray],
                  systems: Sequence[str]) -> np.ndarray:
    """(C, S) each system's score per clip: the score of the text it wrote (from :func:`unique_candidates`)."""
    out = np.full((len(authors), len(systems)), np.nan)
    column = {s: k for k, s in enumerate(systems)}
    for c, (who, scores) in enumerate(zip(authors, text_scores)):
        for writers, score in zip(who, scores):
            for system in writers:
                out[c, column[system]] = score
    return out


def preference(scores: np.ndarray, systems: Sequence[str], clip_ids: Sequence[str] | None = None,
               tolerance: float = 1e-9) -> MetricResult:
    """How often each system's caption is the best of all systems' captions for a clip (percent).

    Args:
        scores: (C, S) each system's caption score on each clip (e.g. CIDEr against the references).
        systems: the S names.
        clip_ids: the clips (default their positions).
        tolerance: scores within this of the clip's best tie for it; tied systems share the clip's credit.

    Returns:
        MetricResult: summary = per system its preference (percent; the shares sum to 100) and ``n_items``; one
        row per clip with each system's credit (0..1); statistics: means over clips (intervals resample clips).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(systems) or not np.isfinite(scores).all():
        raise MetricError(f"scores must be finite (C, S={len(systems)}), got shape {scores.shape}")
    best = scores >= scores.max(axis=1, keepdims=True) - tolerance  # (C, S)
    credit = best / best.sum(axis=1, keepdims=True)
    ids = list(clip_ids) if clip_ids is not None else [str(i) for i in range(len(scores))]
    per_item = pd.DataFrame({ID_COLUMN: ids, **{s: credit[:, k] for k, s in enumerate(systems)}})
    summary = {s: float(100 * credit[:, k].mean()) for k, s in enumerate(systems)}
    summary["n_items"] = len(scores)
    return MetricResult(summary=summary, per_item=per_item,
                        statistics={s: Mean(credit[:, k], scale=100.0) for k, s in enumerate(systems)})
