"""The video encoder: TimeSformer with divided space-time attention (Bertasius et al., ICML 2021).

mPLUG-video and the ALPRO baseline both encode a clip with TimeSformer (Youku-mPLUG, Xu et al. 2023, Sec. 4;
official code ``models/vision_transformer.py::TimeSformer``). Each block attends over time first (every patch
position with itself in the other frames), then over space (every patch with the others of its frame and the
CLS token), then applies its MLP. This file wraps the Hugging Face implementation
(``transformers.TimesformerModel``, which follows facebookresearch/TimeSformer) rather than re-writing it: it is
the same algorithm, well tested, and it loads real checkpoints with ``from_pretrained(local_dir)``.

The wrapper adds what the study needs: a dataclass config, a clear error when a clip does not match the
configured size, and a change of frame count between stages (pre-training 4 frames, classification 8,
captioning 16) by resampling the learned time embeddings, as TimeSformer does when it loads a checkpoint.
Stochastic depth is not exposed: transformers 5.23 types ``TimesformerConfig.drop_path_rate`` as an int and
rejects fractions (the official configs don't use it either).

Token order (Hugging Face): index 0 is the CLS token, then patch tokens ordered patch-major, frame-minor, i.e.
``(n t)``: tokens ``1 + n*T + t`` belong to patch ``n`` of frame ``t``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import TimesformerConfig, TimesformerModel

from vlstudy.models.checkpoint_io import read_config, read_tensors

__all__ = ["VideoEncoderConfig", "VideoEncoder", "resize_time_embeddings", "TIME_EMBEDDINGS"]

logger = logging.getLogger("vlstudy.models")

# State-dict name of the learned time embeddings (1, T, D) inside `VideoEncoder`.
TIME_EMBEDDINGS = "timesformer.embeddings.time_embeddings"


@dataclass
class VideoEncoderConfig:
    """TimeSformer size. Defaults are a toy model for the CPU; ViT-B/16 is ``image_size=224, patch_size=16,
    hidden_size=768, num_layers=12, num_heads=12`` (the official clip-b16 config uses 8 heads).

    Attributes:
        image_size: frame height = width, in pixels.
        patch_size: square patch side, in pixels; divides `image_size`.
        num_frames: frames per clip (T).
        hidden_size: token width (D).
        num_layers: TimeSformer blocks.
        num_heads: attention heads; divides `hidden_size`.
        mlp_ratio: MLP width / `hidden_size`.
        dropout: dropout on attention probabilities and hidden states.
        gradient_checkpointing: recompute block activations in the backward pass (large models on GPUs).
        pretrained_path: a local folder written by ``TimesformerModel.save_pretrained``; its architecture must
            equal the fields above (the frame count may differ: time embeddings are resampled).
    """

    image_size: int = 64
    patch_size: int = 16
    num_frames: int = 4
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    gradient_checkpointing: bool = False
    pretrained_path: str | None = None

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.num_frames < 1 or self.num_layers < 1:
            raise ValueError("num_frames and num_layers must be positive")

    @property
    def num_patches(self) -> int:
        """Patches per frame (N)."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Output tokens per clip: CLS + N*T."""
        return 1 + self.num_patches * self.num_frames

    def to_timesformer(self) -> TimesformerConfig:
        return TimesformerConfig(
            image_size=self.image_size, patch_size=self.patch_size, num_frames=self.num_frames,
            hidden_size=self.hidden_size, num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            intermediate_size=int(self.hidden_size * self.mlp_ratio), hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout, attention_type="divided_space_time")


def resize_time_embeddings(weight: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Resample learned time embeddings to another frame count (nearest neighbour, as TimeSformer does).

    Args:
        weight: (1, T0, D) time embeddings.
        num_frames: T1.

    Returns:
        (1, T1, D); `weight` itself when T0 == T1.
    """
    if weight.shape[1] == num_frames:
        return weight
    resized = F.interpolate(weight.transpose(1, 2), size=num_frames, mode="nearest")  # (1, D, T1)
    return resized.transpose(1, 2).contiguous()  # (1, T1, D)


C = TypeVar("C")


def read_video_model(directory: str | Path, config_cls: type[C], config: C | None = None,
                     prefix: str = "video_encoder.") -> tuple[C, dict[str, torch.Tensor]]:
    """The config and tensors of a saved model that holds a `VideoEncoder` under `prefix`, ready to rebuild it.

    The time embeddings are resampled to `config`'s frame count, and the returned config no longer points the
    video encoder at its initial TimeSformer (``pretrained_path=None``): the checkpoint holds those weights.
    """
    config = config or read_config(directory, config_cls)
    tensors = read_tensors(directory)
    key = prefix + TIME_EMBEDDINGS
    if key in tensors:
        tensors[key] = resize_time_embeddings(tensors[key], config.video.num_frames)
    config = dataclasses.replace(config, video=dataclasses.replace(config.video, pretrained_path=None))
    return config, tensors


# Architecture fields a pretrained TimeSformer must share with the config: (ours, Hugging Face's).
_ARCHITECTURE_FIELDS = (("image_size", "image_size"), ("patch_size", "patch_size"), ("hidden_size", "hidden_size"),
                        ("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"))


class VideoEncoder(nn.Module):
    """TimeSformer over a clip: (B, T, C, H, W) pixels → (B, 1 + N*T, D) tokens, CLS first.

    Args:
        config: the encoder size, and optionally a local checkpoint to start from.
    """

    def __init__(self, config: VideoEncoderConfig) -> None:
        super().__init__()
        self.config = config
        if config.pretrained_path is None:
            self.timesformer = TimesformerModel(config.to_timesformer())
        else:
            self.timesformer = self._load_pretrained(config)
        if config.gradient_checkpointing:
            self.timesformer.gradient_checkpointing_enable()

    @staticmethod
    def _load_pretrained(config: VideoEncoderConfig) -> TimesformerModel:
        model = TimesformerModel.from_pretrained(config.pretrained_path)
        for ours, theirs in _ARCHITECTURE_FIELDS:
            if getattr(model.config, theirs) != getattr(config, ours):
                raise ValueError(f"{config.pretrained_path}/config.json: {theirs} is {getattr(model.config, theirs)}"
                                 f" but VideoEncoderConfig.{ours} is {getattr(config, ours)}")
        embeddings = model.embeddings
        if embeddings.time_embeddings.shape[1] != config.num_frames:
            logger.info("%s: time embeddings resampled from %d to %d frames", config.pretrained_path,
                        embeddings.time_embeddings.shape[1], config.num_frames)
            embeddings.time_embeddings = nn.Parameter(resize_time_embeddings(embeddings.time_embeddings.data,
                                                                             config.num_frames))
            model.config.num_frames = config.num_frames  # every layer reads the frame count from this config
        return model

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Encode clips.

        Args:
            video: (B, T, C, H, W) normalised pixels; T, H, W as configured.

        Returns:
            (B, 1 + N*T, D) tokens after the final LayerNorm; index 0 is the CLS token, patch tokens in
            ``(n t)`` order.
        """
        c = self.config
        if video.ndim != 5 or video.shape[1] != c.num_frames or video.shape[-2:] != (c.image_size, c.image_size):
            raise ValueError(f"video must be (B, T={c.num_frames}, C, {c.image_size}, {c.image_size}); "
                             f"got {tuple(video.shape)}")
        return self.timesformer(pixel_values=video).last_hidden_state  # (B, 1 + N*T, D)
