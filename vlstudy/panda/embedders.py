"""Frame embedders for Panda-70M's event stitching: frames (N, H, W, 3) uint8 RGB -> (N, D) unit vectors.

Panda-70M embeds frames with ImageBind (Girdhar et al., CVPR 2023; snap-research/Panda-70M
``splitting/event_stitching.py``: ``imagebind_huge`` vision embeddings, which ImageBind L2-normalises), and its
thresholds (transition 1.0, merge 0.6, still 0.15, redundancy 0.3) are Euclidean distances between such unit
vectors. ImageBind's weights cannot be fetched here, so the embedder is a parameter:

* :class:`HFImageEmbedder`: any local Hugging Face vision model directory (``AutoModel`` +
  ``AutoImageProcessor``, offline): CLIP-style ``get_image_features`` when the model has it, else the pooled
  output, else the first token. This is how a real checkpoint (CLIP, SigLIP, DINOv2, ...) plugs in.
* :class:`VideoModuleEmbedder`: the kit's own video encoder, or any module mapping (B, T, C, H, W) pixels to
  (B, 1 + N*T, D) tokens with CLS first; each frame is fed as a still clip of ``num_frames`` copies; the CLS
  token is the embedding.
* :class:`PixelStatsEmbedder`: a fixed, parameter-free embedder for tests and CPU studies (below).

:func:`load_embedder` turns one parameter into an embedder: ``pixel_stats``, a folder saved by the kit
(mPLUG-video or ALPRO: the video encoder's weights are read strictly from its safetensors, without loading the
language model), or any other local Hugging Face vision model folder.

Every embedder returns L2-normalised float32 rows, so the official thresholds apply on the same scale; whether
they mean the same thing for another embedder than ImageBind is an empirical question (see the study's numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vlstudy.data.transforms import CLIP_MEAN, CLIP_STD, normalize, resize_frames, to_tensor
from vlstudy.models.loading import CheckpointError, weights_file
from vlstudy.models.video_encoder import VideoEncoderConfig, VideoEncoderModel

__all__ = ["l2_normalize", "rgb_to_hsv", "PixelStatsEmbedder", "HFImageEmbedder", "VideoModuleEmbedder",
           "load_video_encoder", "load_embedder", "PIXEL_STATS"]

PIXEL_STATS = "pixel_stats"  # the `load_embedder` name of the parameter-free embedder
_ENCODER_PREFIX = "video_encoder."  # state-dict prefix of the video encoder in the kit's models


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length (float32; a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


def rgb_to_hsv(frames: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (..., 3) float32 HSV with hue in [0, 1) and saturation, value in [0, 1]."""
    rgb = frames.astype(np.float32) / 255.0
    value = rgb.max(axis=-1)
    spread = value - rgb.min(axis=-1)
    saturation = np.where(value > 0, spread / np.maximum(value, 1e-12), 0.0)
    r, g, b = np.moveaxis(rgb, -1, 0)
    safe = np.maximum(spread, 1e-12)
    hue = np.select([spread == 0, value == r, value == g],
                    [0.0, ((g - b) / safe) % 6.0, (b - r) / safe + 2.0], (r - g) / safe + 4.0) / 6.0
    return np.stack([hue % 1.0, saturation, value], axis=-1).astype(np.float32)


class PixelStatsEmbedder:
    """A fixed embedder from pixel statistics: what colours a frame holds, and how its brightness is laid out.

    Features of a frame: the square root of its hue x saturation histogram (``hue_bins`` x ``sat_bins`` cells,
    shares of all pixels, counting pixels with value >= ``dark``) plus one cell for the share of darker pixels;
    then a ``grid`` x ``grid`` map of mean brightness divided by the frame's mean, minus 1 (times
    ``grid_weight``). The row is L2-normalised.

    Measured on the default long-form set (H.264, 64 px; ``benchmarks/panda_splitting.py`` data): the histogram
    ignores exposure and camera position, so consecutive shots of one event (another angle, a close-up, half the
    exposure) lie <= 0.6 apart (the official merge threshold) in 94 % of cases, and shots of consecutive events
    > 0.6 apart in 93 % (mostly ~1.4, above the transition threshold 1.0; so is a black frame against a lit
    one). The brightness map sees panning and object motion, but a pan over a periodic texture looks still:
    first and last frames of 19 % of moving shots lie < 0.15 apart (the still threshold), while H.264 noise
    puts static shots at 0.07-0.1.
    It is a stand-in for tests and CPU studies, not a semantic model: it cannot tell two subjects in the same
    scene apart.
    """

    def __init__(self, hue_bins: int = 12, sat_bins: int = 4, grid: int = 4, dark: float = 0.2,
                 grid_weight: float = 1.0):
        self.hue_bins, self.sat_bins, self.grid = hue_bins, sat_bins, grid
        self.dark, self.grid_weight = dark, grid_weight

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames)
        n, height, width = frames.shape[:3]
        if height < self.grid or width < self.grid:
            raise ValueError(f"frames of {height}x{width} are smaller than the {self.grid}x{self.grid} grid")
        hsv = rgb_to_hsv(frames).reshape(n, -1, 3)  # (N, P, 3)
        hue = np.minimum((hsv[..., 0] * self.hue_bins).astype(np.int64), self.hue_bins - 1)
        sat = np.minimum((hsv[..., 1] * self.sat_bins).astype(np.int64), self.sat_bins - 1)
        lit = hsv[..., 2] >= self.dark
        cells = self.hue_bins * self.sat_bins
        code = np.where(lit, hue * self.sat_bins + sat, cells) + (cells + 1) * np.arange(n)[:, None]
        histogram = np.bincount(code.ravel(), minlength=n * (cells + 1)).reshape(n, cells + 1) / hsv.shape[1]
        value = hsv[..., 2].reshape(n, height, width)
        rows, cols = height // self.grid * self.grid, width // self.grid * self.grid
        blocks = value[:, :rows, :cols].reshape(n, self.grid, rows // self.grid, self.grid, cols // self.grid)
        layout = blocks.mean(axis=(2, 4)).reshape(n, -1)  # (N, grid * grid)
        layout = layout / np.maximum(layout.mean(axis=1, keepdims=True), 1 / 255) - 1
        return l2_normalize(np.concatenate([np.sqrt(histogram), self.grid_weight * layout], axis=1))


class HFImageEmbedder:
    """A local Hugging Face vision model as a frame embedder (offline; no hub access).

    Args:
        model_dir: a folder written by ``save_pretrained`` holding the model and its image processor config.
        batch_size: frames per forward pass.
        device: torch device.
    """

    def __init__(self, model_dir: str | Path, batch_size: int = 32, device: str = "cpu"):
        from transformers import AutoImageProcessor, AutoModel

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no such model directory")
        self.processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        self.batch_size, self.device = batch_size, device

    @torch.no_grad()
    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "get_image_features"):
            out = self.model.get_image_features(pixel_values=pixel_values)
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        out = self.model(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state[:, 0]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames)
        rows = []
        for i in range(0, len(frames), self.batch_size):
            inputs = self.processor(images=list(frames[i:i + self.batch_size]), return_tensors="pt")
            rows.append(self._features(inputs["pixel_values"].to(self.device)).float().cpu().numpy())
        return l2_normalize(np.concatenate(rows))


class VideoModuleEmbedder:
    """A video encoder as a frame embedder: each frame becomes a still clip; the CLS token is the feature.

    Depends only on ``module(video)`` with video (B, T, C, H, W) returning (B, 1 + N*T, D) tokens, CLS first (or
    an output object with ``last_hidden_state``), e.g. :class:`vlstudy.models.video_encoder.VideoEncoder`.

    Args:
        module: the encoder (put in eval mode here).
        num_frames: T, copies of each frame per clip (the encoder's configured frame count).
        image_size: square side the frames are resized to (bicubic, antialiased, as the kit's eval transform).
        mean, std: pixel normalisation (CLIP's by default, as the kit's transforms).
        batch_size: clips per forward pass.
    """

    def __init__(self, module: nn.Module, num_frames: int, image_size: int, mean: tuple[float, ...] = CLIP_MEAN,
                 std: tuple[float, ...] = CLIP_STD, batch_size: int = 16):
        self.module = module.eval()
        self.num_frames, self.image_size, self.mean, self.std, self.batch_size = \
            num_frames, image_size, mean, std, batch_size

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames)
        device = next(self.module.parameters()).device
        rows = []
        for i in range(0, len(frames), self.batch_size):
            pixels = resize_frames(to_tensor(frames[i:i + self.batch_size]), self.image_size, self.image_size)
            clips = normalize(pixels, self.mean, self.std)[:, None].expand(-1, self.num_frames, -1, -1, -1)
            out = self.module(clips.to(device))  # (B, T, C, H, W) -> (B, 1 + N*T, D)
            tokens = getattr(out, "last_hidden_state", out)
            rows.append(tokens[:, 0].float().cpu().numpy())
        return l2_normalize(np.concatenate(rows))


def load_video_encoder(model_dir: str | Path) -> VideoEncoderModel:
    """The video encoder of a model folder saved by the kit (mPLUG-video, ALPRO: a ``video`` sub-config and
    ``video_encoder.*`` tensors), read strictly from its safetensors without building the rest of the model.

    Raises:
        FileNotFoundError: no such folder or weights.
        CheckpointError: the folder is not a kit model with a video encoder, or its tensors do not fit it.
    """
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    weights = weights_file(model_dir)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if not isinstance(config.get("video"), dict):
        raise CheckpointError(f"{model_dir / 'config.json'}: no 'video' sub-config (not a kit video-language model)")
    video = VideoEncoderConfig.from_dict({**config["video"], "pretrained_path": None})
    encoder = VideoEncoderModel(video)
    tensors = {k[len(_ENCODER_PREFIX):]: v for k, v in load_file(str(weights)).items() if k.startswith(_ENCODER_PREFIX)}
    missing, unexpected = encoder.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights}: video encoder tensors missing {sorted(missing)[:8]}, unexpected "
                              f"{sorted(unexpected)[:8]}")
    return encoder.eval()


def load_embedder(source: str, batch_size: int = 16, device: str = "cpu"):
    """A frame embedder from one parameter.

    Args:
        source: ``"pixel_stats"`` (:class:`PixelStatsEmbedder`); a folder saved by the kit whose ``config.json``
            has a ``video`` sub-config (its video encoder, :class:`VideoModuleEmbedder`, each frame a still clip
            of the encoder's frame count); or any other local Hugging Face vision model folder
            (:class:`HFImageEmbedder`).
        batch_size: frames (or still clips) per forward pass.
        device: torch device of a neural embedder.

    Returns:
        A callable frames (N, H, W, 3) uint8 -> (N, D) unit rows.
    """
    if source == PIXEL_STATS:
        return PixelStatsEmbedder()
    folder = Path(source)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such model folder (or give {PIXEL_STATS!r})")
    config = folder / "config.json"
    if config.is_file() and isinstance(json.loads(config.read_text(encoding="utf-8")).get("video"), dict):
        encoder = load_video_encoder(folder).to(device)
        return VideoModuleEmbedder(encoder, encoder.config.num_frames, encoder.config.image_size,
                                   batch_size=batch_size)
    return HFImageEmbedder(folder, batch_size=batch_size, device=device)
