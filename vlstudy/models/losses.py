"""The contrastive and matching objectives shared by the study's encoders (ALPRO, mPLUG-video, mPLUG-2).

- VTC, video-text contrastive (ALPRO, Li et al. CVPR 2022; ALBEF): InfoNCE in both directions over L2-normalised
  features, with negatives gathered from every process and a learnable temperature clamped to [0.001, 0.5]
  (official ALPRO / Youku-mPLUG code).
- Hard negatives for VTM, video-text matching: one per row, drawn from the softmax of the in-batch similarities
  with the positive masked out (ALPRO's ``itm`` sampling).
- Multi-positive VTC, the DeME-style multi-layer embedding baseline for VideoMind (Yang et al. 2025): one video
  embedding trained against all of its layers' texts at once (factual, abstract, intent: P = 3 positives per
  video in the batch). No official code was released; video -> text follows the supervised-contrastive
  ``L_out`` form (Khosla et al. NeurIPS 2020, eq. 2: the mean over positives of each positive's log-softmax),
  or MIL-NCE's (Miech et al. CVPR 2020: the log of the positives' summed softmax) with ``positives="any"``;
  text -> video is ordinary InfoNCE (a text has one video). With P = 1 both are the VTC loss above.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from vlstudy.distributed import all_gather_with_grad, rank

__all__ = ["TEMPERATURE_RANGE", "video_text_contrastive_loss", "multi_positive_contrastive_loss",
           "sample_hard_negatives"]

TEMPERATURE_RANGE = (0.001, 0.5)


def video_text_contrastive_loss(video_feat: torch.Tensor, text_feat: torch.Tensor,
                                temperature: torch.Tensor | float) -> torch.Tensor:
    """InfoNCE in both directions; negatives are every process's features (pair i of this process is positive).

    Args:
        video_feat: (B, E) L2-normalised video features of this process.
        text_feat: (B, E) L2-normalised text features; row i pairs with video row i.
        temperature: softmax temperature.

    Returns:
        Scalar: mean of the video→text and text→video cross-entropies.
    """
    video_all = all_gather_with_grad(video_feat)  # (W*B, E)
    text_all = all_gather_with_grad(text_feat)  # (W*B, E)
    targets = torch.arange(video_feat.shape[0], device=video_feat.device) + rank() * video_feat.shape[0]
    loss_v2t = F.cross_entropy(video_feat @ text_all.T / temperature, targets)
    loss_t2v = F.cross_entropy(text_feat @ video_all.T / temperature, targets)
    return (loss_v2t + loss_t2v) / 2


def multi_positive_contrastive_loss(video_feat: torch.Tensor, text_feat: torch.Tensor,
                                    temperature: torch.Tensor | float, *,
                                    positives: Literal["each", "any"] = "each") -> torch.Tensor:
    """InfoNCE with P positive texts per video (VideoMind's layers), negatives from every process.

    With s = video . text / temperature over the gathered texts T (W*B*P of them) and videos (W*B)::

        each:  L_v2t = -mean_{i,p} log softmax_T(s_i)[i,p]          (every layer must rank high: hit-all)
        any:   L_v2t = -mean_i log sum_p softmax_T(s_i)[i,p]         (one layer ranking high suffices: hit-any)
        L_t2v = -mean_{i,p} log softmax_videos(s_{i,p})[i]
        loss  = (L_v2t + L_t2v) / 2

    With ``each`` a video's P positives share one softmax, so L_v2t cannot go below log P.

    Args:
        video_feat: (B, E) L2-normalised video features of this process.
        text_feat: (B, P, E) L2-normalised text features: [i, p] is video i's p-th positive (e.g. its factual,
            abstract and intent text). A dual encoder's (B*P, E) features of texts listed video by video are
            ``text_feat.view(B, P, E)``.
        temperature: softmax temperature.
        positives: ``"each"`` (mean of the positives' log-probabilities) or ``"any"`` (log of their summed
            probability).

    Returns:
        Scalar loss.
    """
    if text_feat.dim() != 3 or text_feat.shape[0] != video_feat.shape[0] or text_feat.shape[2] != video_feat.shape[1]:
        raise ValueError(f"text_feat must be (B, P, E) = ({video_feat.shape[0]}, P, {video_feat.shape[1]}) for "
                         f"video_feat {tuple(video_feat.shape)}, got {tuple(text_feat.shape)}")
    if positives not in ("each", "any"):
        raise ValueError(f"positives must be 'each' or 'any', got {positives!r}")
    batch, num_pos, _ = text_feat.shape
    first = rank() * batch  # this process's first video in the gathered batch
    video_all = all_gather_with_grad(video_feat)  # (W*B, E)
    text_all = all_gather_with_grad(text_feat).flatten(0, 1)  # (W*B*P, E), video by video
    columns = (first + torch.arange(batch, device=video_feat.device))[:, None] * num_pos + torch.arange(
        num_pos, device=video_feat.device)  # (B, P): column of each positive in text_all
    log_prob = (video_feat @ text_all.T / temperature).log_softmax(dim=1).gather(1, columns)  # (B, P)
    loss_v2t = -(log_prob.mean(dim=1) if positives == "each" else log_prob.logsumexp(dim=1)).mean()
    targets = (first + torch.arange(batch, device=video_feat.device)).repeat_interleave(num_pos)  # (B*P,)
    loss_t2v = F.cross_entropy(text_feat.flatten(0, 1) @ video_all.T / temperature, targets)
    return (loss_v2t + loss_t2v) / 2


def sample_hard_negatives(similarity: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row, one column drawn from the softmax of its similarities with the diagonal (positive) masked.

    Args:
        similarity: (B, B) scores, row i's positive at column i (already divided by the temperature).
        generator: a CPU generator; sampling runs on the CPU so the same seed gives the same draws on any device.

    Returns:
        (B,) column indices, never equal to their row index.
    """
    size = similarity.shape[0]
    if size < 2:
        raise ValueError("hard negatives need a batch of at least 2 pairs")
    diagonal = torch.eye(size, dtype=torch.bool, device=similarity.device)
    weights = similarity.detach().float().masked_fill(diagonal, float("-inf")).softmax(dim=1)  # (B, B)
    return torch.multinomial(weights.cpu(), 1, generator=generator).squeeze(1).to(similarity.device)
