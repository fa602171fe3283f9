"""Video clip transforms on torch tensors: temporally consistent RandomResizedCrop + flip (train), square resize
(eval), CLIP normalisation.

Protocol (X-PLUG/Youku-mPLUG, ``dataset/__init__.py``, ``video_train_transform`` / ``video_test_transform``):
train = ``RandomResizedCrop(image_res, scale=(0.5, 1.0), interpolation="bicubic")`` + ``RandomHorizontalFlip``,
eval = ``Resize((image_res, image_res))``; both then scale to [0, 1] and normalise with the CLIP mean and std. The
crop box and the flip are drawn once per clip and applied to every frame (``dataset/video_utils/
video_transforms.py`` crops the whole (T, H, W, C) tensor at once), so a clip stays temporally consistent.

Written by hand on torch tensors because torchvision (whose ``RandomResizedCrop.get_params`` the crop sampler
follows, the same algorithm as the official ``video_transforms.RandomResizedCrop``) has no CPU build for the
pinned torch here. Resizing is ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` on uint8
frames, for train and eval alike. Deliberate differences from the official code: its eval ``Resize`` defaults
to nearest-neighbour interpolation, and it resizes in float without antialiasing; its train transform also
applies ``TemporalConsistentRandomAugment`` (RandAugment, N=2, M=5), which the study leaves out. Randomness
comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CLIP_MEAN", "CLIP_STD", "TransformConfig", "CropBox", "to_tensor", "resize_frames", "normalize",
           "sample_crop_box", "train_transform", "eval_transform"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TransformConfig:
    """Spatial preprocessing of a clip.

    Attributes:
        image_size: side S of the square output frames.
        crop_scale: range of the crop area as a fraction of the frame area (train).
        crop_ratio: range of the crop aspect ratio w/h, sampled log-uniformly (train).
        flip_prob: probability of a horizontal flip of the whole clip (train).
        mean, std: per-channel normalisation of [0, 1] RGB values (CLIP's).
    """

    image_size: int = 224
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self):
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")


class CropBox(NamedTuple):
    """A crop in pixels: rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 numpy frames → (T, 3, H, W) uint8 tensor (a view unless the array is read-only)."""
    return torch.from_numpy(np.require(frames, requirements=("C", "W"))).permute(0, 3, 1, 2)


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic, antialiased resize of uint8 frames; unchanged when already that size.

    Uses torch's uint8 path of ``interpolate`` (vectorised; its bicubic filter is PIL's, a = -0.5), which is
    ~30x faster than resizing in float32 and needs no rounding or clamping.

    Args:
        frames: (T, 3, H, W) uint8 (fastest when channels-last, as :func:`to_tensor` returns).
        height, width: output size.

    Returns:
        (T, 3, height, width) uint8.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"resize_frames expects uint8 frames, got {frames.dtype}")
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bicubic", antialias=True)


def normalize(frames: torch.Tensor, mean: tuple[float, ...] = CLIP_MEAN,
              std: tuple[float, ...] = CLIP_STD) -> torch.Tensor:
    """(T, 3, H, W) uint8 → contiguous float32 ``(x / 255 - mean) / std`` per channel (one multiply, one add)."""
    scale = torch.tensor([1 / (255 * s) for s in std], dtype=torch.float32).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32).view(1, 3, 1, 1)
    return frames.contiguous().float().mul_(scale).add_(shift)


def sample_crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                    rng: np.random.Generator) -> CropBox:
    """RandomResizedCrop's box: torchvision's ``get_params`` algorithm with draws from `rng`.

    Up to 10 tries draw an area fraction uniformly from `scale` and an aspect ratio log-uniformly from `ratio`;
    the first box that fits is placed uniformly at random. If none fits, the central crop of the frame clamped
    to the ratio range is used.
    """
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_low, log_high))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return CropBox(int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return CropBox((height - h) // 2, (width - w) // 2, h, w)


def train_transform(frames: np.ndarray, config: TransformConfig, rng: np.random.Generator) -> torch.Tensor:
    """One random crop and flip for the whole clip, resized to S x S and normalised.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        config: the preprocessing settings.
        rng: draws the crop box, then the flip.

    Returns:
        (T, 3, S, S) float32.
    """
    clip = to_tensor(frames)                                                  # (T, 3, H, W)
    box = sample_crop_box(clip.shape[-2], clip.shape[-1], config.crop_scale, config.crop_ratio, rng)
    clip = clip[:, :, box.top:box.top + box.height, box.left:box.left + box.width]
    clip = resize_frames(clip, config.image_size, config.image_size)          # (T, 3, S, S)
    if rng.random() < config.flip_prob:
        clip = clip.flip(-1)
    return normalize(clip, config.mean, config.std)


def eval_transform(frames: np.ndarray, config: TransformConfig) -> torch.Tensor:
    """Square resize to S x S (aspect ratio not kept, as the official ``Resize((S, S))``) and normalise.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        config: the preprocessing settings.

    Returns:
        (T, 3, S, S) float32.
    """
    clip = resize_frames(to_tensor(frames), config.image_size, config.image_size)   # (T, 3, S, S)
    return normalize(clip, config.mean, config.std)
