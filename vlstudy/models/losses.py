"""The contrastive and matching objectives shared by the study's encoders (ALPRO, mPLUG-video, mPLUG-2).

- VTC, video-text contrastive (ALPRO, Li et al. CVPR 2022; ALBEF): InfoNCE in both directions over L2-normalised
  features, with negatives gathered from every process and a learnable temperature clamped to [0.001, 0.5]
  (official ALPRO / Youku-mPLUG code).
- Hard negatives for VTM, video-text matching: one per row, drawn from the softmax of the in-batch similarities
  with the positive masked out (ALPRO's ``itm`` sampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlstudy.distributed import all_gather_with_grad, rank

__all__ = ["TEMPERATURE_RANGE", "video_text_contrastive_loss", "sample_hard_negatives"]

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
