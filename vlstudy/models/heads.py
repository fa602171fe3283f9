"""Small task heads shared by the study's models: an MLP classifier and the dual-encoder contrastive head.

- `MLPHead`: Linear-ReLU-Linear, as the official Youku-mPLUG ``cls_head`` (``models/distributed_gpt3.py``,
  ``DistributedGPT3_Cls``) and ALPRO's classifier, optionally after a parameter-free batch normalisation (see
  `MLPHead`).
- `ContrastiveHead`: the VTC projections of ALBEF / ALPRO / mPLUG (``vision_proj``, ``text_proj``, a learnable
  temperature ``temp`` clamped to [0.001, 0.5]) and the InfoNCE loss of `vlstudy.models.losses`.

A head is a module of its own, so that a model class is a backbone plus the heads of its task and a checkpoint
of one task loads into another (`vlstudy.models.loading.StrictPreTrainedModel`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlstudy.models.losses import TEMPERATURE_RANGE, video_text_contrastive_loss

__all__ = ["MLPHead", "ContrastiveHead"]


class MLPHead(nn.Sequential):
    """Linear-ReLU-Linear, optionally after a parameter-free batch normalisation of its input.

    The normalisation is this kit's addition for mPLUG-video. The official head reads GPT-3's states directly; a
    small frozen LM's last states differ little from one input to the next (at toy scale their spread across
    inputs is about a tenth of their size), and an MLP on them barely moves at fine-tuning learning rates.
    Standardising each feature over the batch, as linear probes of frozen features do (MAE), lets the head learn;
    it adds no parameters and uses running statistics at evaluation.

    Args:
        width: input (and hidden) width.
        outputs: output logits.
        normalise: put ``BatchNorm1d(width, affine=False)`` first.
    """

    def __init__(self, width: int, outputs: int, normalise: bool = False) -> None:
        layers = [nn.BatchNorm1d(width, affine=False)] if normalise else []
        super().__init__(*layers, nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs))


class ContrastiveHead(nn.Module):
    """Projections of a video state and a text state into one L2-normalised space, and the InfoNCE loss.

    Args:
        video_width: width of the video state (the video encoder's CLS).
        text_width: width of the text state.
        dim: projection size (256 in the official configs).
        temperature: initial softmax temperature (0.07), learnable.
    """

    def __init__(self, video_width: int, text_width: int, dim: int, temperature: float) -> None:
        super().__init__()
        self.vision_proj = nn.Linear(video_width, dim)
        self.text_proj = nn.Linear(text_width, dim)
        self.temperature = temperature
        self.temp = nn.Parameter(torch.tensor(temperature))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.temp, self.temperature)

    def project_video(self, state: torch.Tensor) -> torch.Tensor:
        """(B, D_video) → (B, E), unit length."""
        return F.normalize(self.vision_proj(state), dim=-1)

    def project_text(self, state: torch.Tensor) -> torch.Tensor:
        """(K, D_text) → (K, E), unit length."""
        return F.normalize(self.text_proj(state.to(self.text_proj.weight.dtype)), dim=-1)

    def clamp_temperature(self) -> None:
        """Clamp the temperature to [0.001, 0.5] in place, as the official code does before every loss."""
        with torch.no_grad():
            self.temp.clamp_(*TEMPERATURE_RANGE)

    def loss(self, video_feat: torch.Tensor, text_feat: torch.Tensor) -> torch.Tensor:
        """InfoNCE both ways over B aligned pairs of unit features, negatives gathered from every process."""
        return video_text_contrastive_loss(video_feat, text_feat, self.temp)
