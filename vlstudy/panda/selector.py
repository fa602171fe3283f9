"""Panda-70M's fine-grained caption selection: hard-negative contrastive loss, oracle choice, retrieval R@1.

Panda-70M (Chen et al., CVPR 2024, Sec. 3.3 and App. C) gives each clip several teacher captions and fine-tunes a
video-to-text retrieval model (Unmasked Teacher) to pick the best one. Its contrastive loss treats the clip's
chosen caption as the positive, the clip's other candidates as hard negatives with a large weight, and other
clips' captions as ordinary negatives with a small one (DESIGN: 1 and 0.01). As a weighted InfoNCE over a
(clips x captions) similarity matrix S with temperature tau and weights w (w = 1 at the positive p(c)):

    loss_c = -log( exp(S[c, p(c)] / tau) / sum_k w[c, k] exp(S[c, k] / tau) )

averaged over clips (video -> text, the direction selection uses). A weight of 0 removes a caption from a row.

Without human choices, the **oracle** is the candidate that scores best against the clip's reference captions
(default CIDEr with the kit's Chinese normalisation, :func:`vlstudy.metrics.captioning.normalize_caption`, and
pycocoevalcap's scorer, as in :mod:`vlstudy.metrics.captioning`; METEOR is left out of the default because it
starts a JVM). A selector is measured by R@1 against the oracle and, as the paper's "any of three annotators"
number, against a set of acceptable candidates per clip.

Pure functions: the retrieval model itself is the study's contrastive dual encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from vlstudy.metrics.base import ID_COLUMN, Mean, MetricError, MetricResult
from vlstudy.metrics.captioning import normalize_caption

__all__ = ["CaptionScorer", "candidate_weights", "weighted_info_nce", "selector_loss", "cider_scores",
           "bleu4_scores", "rouge_l_scores", "oracle_selection", "acceptable_candidates", "selection_metrics"]

CaptionScorer = Callable[[Sequence[str], Sequence[Sequence[str]]], np.ndarray]  # captions, references -> (N,)


def candidate_weights(caption_clip: torch.Tensor, num_clips: int, hard_weight: float = 1.0,
                      other_weight: float = 0.01, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(C, K) negative weights: `hard_weight` where caption k is a candidate of clip c, else `other_weight`.

    Args:
        caption_clip: (K,) the clip (0..C-1) each caption belongs to.
        num_clips: C.
        dtype: of the result.
    """
    own = caption_clip[None, :] == torch.arange(num_clips, device=caption_clip.device)[:, None]  # (C, K)
    return torch.full(own.shape, other_weight, dtype=dtype, device=own.device).masked_fill(own, hard_weight)


def weighted_info_nce(similarity: torch.Tensor, positive: torch.Tensor, weights: torch.Tensor,
                      temperature: float | torch.Tensor = 0.07) -> torch.Tensor:
    """The weighted InfoNCE of the module docstring.

    Args:
        similarity: (C, K) clip-caption similarities.
        positive: (C,) the column of each clip's positive caption.
        weights: (C, K) non-negative weights of the negatives (the positive's entry is ignored: it counts 1).
        temperature: tau.

    Returns:
        Scalar: the mean over clips.
    """
    if similarity.shape != weights.shape or positive.shape != similarity.shape[:1]:
        raise ValueError(f"similarity {tuple(similarity.shape)}, weights {tuple(weights.shape)} and positive "
                         f"{tuple(positive.shape)} must be (C, K), (C, K) and (C,)")
    if (weights < 0).any():
        raise ValueError("weights must be non-negative")
    logits = similarity / temperature  # (C, K)
    rows = torch.arange(len(positive), device=similarity.device)
    weights = weights.to(similarity.dtype).clone()
    weights[rows, positive] = 1.0
    log_weights = torch.where(weights > 0, weights.clamp_min(1e-30).log(), float("-inf"))
    return (torch.logsumexp(logits + log_weights, dim=1) - logits[rows, positive]).mean()


def selector_loss(video_feat: torch.Tensor, text_feat: torch.Tensor, caption_clip: torch.Tensor,
                  positive: torch.Tensor, temperature: float | torch.Tensor = 0.07, hard_weight: float = 1.0,
                  other_weight: float = 0.01) -> torch.Tensor:
    """Hard-negative contrastive loss of the selector on one batch.

    Args:
        video_feat: (C, D) clip features.
        text_feat: (K, D) features of every candidate caption of the batch's clips.
        caption_clip: (K,) the clip of each caption.
        positive: (C,) index into the K captions of each clip's chosen caption (one of its own).
        temperature, hard_weight, other_weight: tau and the negative weights (Panda-70M: 1 and 0.01).

    Returns:
        Scalar loss; features are L2-normalised here.
    """
    if not torch.equal(caption_clip[positive], torch.arange(len(positive), device=positive.device)):
        raise ValueError("each clip's positive must be one of its own candidates (caption_clip[positive[c]] == c)")
    similarity = F.normalize(video_feat, dim=-1) @ F.normalize(text_feat, dim=-1).T  # (C, K)
    weights = candidate_weights(caption_clip, len(video_feat), hard_weight, other_weight, similarity.dtype)
    return weighted_info_nce(similarity, positive, weights, temperature)


def _scored(scorer, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    if len(candidates) != len(references):
        raise MetricError(f"{len(candidates)} candidates but {len(references)} reference lists")
    if not candidates:
        return np.zeros(0)
    gts = {i: [normalize_caption(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [normalize_caption(c)] for i, c in enumerate(candidates)}
    for i, refs in gts.items():
        if not refs or not all(refs):
            raise MetricError(f"candidate {i}: references must be non-empty and contain CJK characters")
    return scorer(gts, res)


def cider_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """(N,) sentence CIDEr (x100) of each candidate against its references (IDF over all reference sets given)."""
    return _scored(lambda g, r: 100.0 * np.asarray(Cider().compute_score(g, r)[1], dtype=np.float64),
                   candidates, references)


def bleu4_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """(N,) sentence BLEU-4 (x100) of each candidate against its references."""
    return _scored(lambda g, r: 100.0 * np.asarray(Bleu(4).compute_score(g, r, verbose=0)[1][3], dtype=np.float64),
                   candidates, references)


def rouge_l_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """(N,) sentence ROUGE-L (x100) of each candidate against its references."""
    return _scored(lambda g, r: 100.0 * np.asarray(Rouge().compute_score(g, r)[1], dtype=np.float64),
                   candidates, references)


def oracle_selection(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                     scorer: CaptionScorer = cider_scores) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per clip, the candidate scoring best against the clip's references (the first one on ties).

    Args:
        candidates: per clip, its candidate captions.
        references: per clip, its reference captions.
        scorer: (captions, reference lists) -> scores; all (clip, candidate) pairs are scored in one call.

    Returns:
        (oracle (C,) candidate index per clip, per clip the (K_c,) scores of its candidates).
    """
    if len(candidates) != len(references):
        raise MetricError(f"{len(candidates)} clips of candidates but {len(references)} of references")
    empty = [c for c, cands in enumerate(candidates) if not len(cands)]
    if empty:
        raise MetricError(f"clips {empty[:5]} have no candidate captions")
    flat = [text for cands in candidates for text in cands]
    refs = [references[c] for c, cands in enumerate(candidates) for _ in cands]
    scores = np.asarray(scorer(flat, refs), dtype=np.float64)
    per_clip = np.split(scores, np.cumsum([len(c) for c in candidates])[:-1])
    return np.array([int(np.argmax(s)) for s in per_clip], dtype=np.int64), per_clip


def acceptable_candidates(scores: Sequence[np.ndarray], margin: float = 0.0) -> list[set[int]]:
    """Per clip, the candidates within `margin` of the best score (several when captions are equally good)."""
    return [set(np.flatnonzero(s >= s.max() - margin).tolist()) for s in scores]


def selection_metrics(selector_scores: Sequence[np.ndarray], oracle: Sequence[int],
                      acceptable: Sequence[Collection[int]] | None = None,
                      clip_ids: Sequence[str] | None = None) -> MetricResult:
    """R@1 of a selector: how often its top candidate is the oracle's (and one of the acceptable ones).

    Args:
        selector_scores: per clip, the selector's (K_c,) scores of the clip's candidates (highest is picked;
            the first one on ties).
        oracle: (C,) the oracle candidate per clip.
        acceptable: per clip, the acceptable candidates (the oracle's is always counted).
        clip_ids: names of the clips (default their positions).

    Returns:
        MetricResult: summary ``R@1`` and ``R@1_any`` (percent), ``n_items``; per clip its pick and hits.
    """
    if len(selector_scores) != len(oracle) or (acceptable is not None and len(acceptable) != len(oracle)):
        raise MetricError(f"{len(selector_scores)} clips scored, {len(oracle)} oracle picks"
                          + (f", {len(acceptable)} acceptable sets" if acceptable is not None else ""))
    picked = np.array([int(np.argmax(s)) for s in selector_scores], dtype=np.int64)
    oracle = np.asarray(oracle, dtype=np.int64)
    good = [{int(o)} | set(a) for o, a in zip(oracle, acceptable)] if acceptable is not None \
        else [{int(o)} for o in oracle]
    hit = 100.0 * (picked == oracle)
    hit_any = 100.0 * np.array([p in g for p, g in zip(picked, good)], dtype=np.float64)
    ids = list(clip_ids) if clip_ids is not None else [str(i) for i in range(len(oracle))]
    per_item = pd.DataFrame({ID_COLUMN: ids,
                             "picked": picked, "oracle": oracle, "R@1": hit, "R@1_any": hit_any})
    summary = {"R@1": float(hit.mean()) if len(hit) else float("nan"),
               "R@1_any": float(hit_any.mean()) if len(hit) else float("nan"), "n_items": len(hit)}
    statistics = {"R@1": Mean(hit), "R@1_any": Mean(hit_any)} if len(hit) else {}
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)
