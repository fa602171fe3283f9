"""LPIPS (Zhang et al., CVPR 2018) in pure torch, and Panda-70M's Max Running LPIPS (Chen et al., CVPR 2024, Eq. 1).

LPIPS as the ``lpips`` package defines it (richzhang/PerceptualSimilarity, ``lpips/lpips.py`` and
``lpips/pretrained_networks.py``; PyPI ``lpips==0.1.4``), for ``LPIPS(net='alex', version='0.1')``:

1. inputs (B, 3, H, W) in [-1, 1] go through the scaling layer ``(x - shift) / scale`` with shift
   (-.030, -.088, -.188) and scale (.458, .448, .450);
2. torchvision's AlexNet ``features`` up to ``features[11]``; the five taps are the ReLU outputs after the
   convolutions at indices 0, 3, 6, 8, 10 (channels 64, 192, 384, 256, 256);
3. each tap is unit-normalised over channels (``x / (||x|| + 1e-10)``), the two images' squared difference goes
   through a 1x1 convolution to one channel without bias (the "linear" calibration layers, ``lin0..lin4``),
   is averaged over space, and the five layers are summed.

Written by hand because ``lpips``, ``torchmetrics``, ``piq`` and ``pyiqa`` all import torchvision, which has no
build for this torch. The calibration weights are read from the installed ``lpips`` wheel
(``lpips/weights/v0.1/alex.pth``; install it with ``pip install --no-deps lpips==0.1.4``) with
``torch.load(weights_only=True)``, without importing the package. The ImageNet AlexNet backbone cannot be
downloaded here: give a local file (safetensors or a torchvision-format state dict, read with
``weights_only=True``; keys ``features.{0,3,6,8,10}.{weight,bias}``) or get a seeded random backbone, whose
distances carry the label ``LPIPS, random AlexNet: not comparable with the paper``.

Max Running LPIPS (Panda-70M Eq. 1): keyframes once per second ``f_1..f_n`` of a clip,
``max_i LPIPS(f_i, f_i+1)``: the largest perceptual change inside the clip (lower = more coherent).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["AlexNetFeatures", "LPIPS", "lpips_calibration_path", "load_lpips", "keyframe_indices",
           "MaxRunningLPIPS", "max_running_lpips", "RANDOM_BACKBONE_LABEL", "LPIPS_VERSION"]

LPIPS_VERSION = "0.1.4"  # the lpips wheel whose calibration weights this module reads
RANDOM_BACKBONE_LABEL = "LPIPS, random AlexNet: not comparable with the paper"
TAPS = (0, 3, 6, 8, 10)  # convolutions of torchvision's alexnet().features whose ReLU outputs LPIPS compares
CHANNELS = (64, 192, 384, 256, 256)
MIN_SIDE = 31  # smallest frame side AlexNet's two 3x3/2 max-pools accept


class AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features[:12]`` (same module indices, so its state dict keys load as they are).

    ``forward`` returns the five ReLU outputs after the convolutions 0, 3, 6, 8, 10.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index - 1 in TAPS:  # the ReLU right after a tapped convolution
                taps.append(x)
        return taps

    def randomize(self, generator: torch.Generator) -> None:
        """PyTorch's default Conv2d initialisation (uniform in +-1/sqrt(fan_in) for weight and bias), drawn from
        `generator` instead of the global RNG."""
        with torch.no_grad():
            for index in TAPS:
                conv = self.features[index]
                bound = 1 / math.sqrt(conv.weight[0].numel())
                conv.weight.uniform_(-bound, bound, generator=generator)
                conv.bias.uniform_(-bound, bound, generator=generator)


class LPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet trunk (module docstring). Frozen, eval mode.

    Attributes:
        backbone: where the trunk came from: a file path, or ``random(seed=N)``.
        comparable_with_paper: True only with the ImageNet backbone loaded from a file.
        label: the name tables must print (``LPIPS (AlexNet)`` or :data:`RANDOM_BACKBONE_LABEL`).
    """

    def __init__(self, calibration: dict[str, torch.Tensor], backbone: str):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])
        self.net = AlexNetFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        expected = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(CHANNELS)}
        if {k: tuple(v.shape) for k, v in calibration.items()} != expected:
            raise ValueError(f"LPIPS calibration weights must be {expected}, got "
                             f"{ {k: tuple(v.shape) for k, v in calibration.items()} }")
        with torch.no_grad():
            for k, lin in enumerate(self.lins):
                lin.weight.copy_(calibration[f"lin{k}.model.1.weight"])
        self.backbone = backbone
        self.comparable_with_paper = not backbone.startswith("random")
        self.label = "LPIPS (AlexNet)" if self.comparable_with_paper else RANDOM_BACKBONE_LABEL
        self.requires_grad_(False).eval()

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Distances of image pairs.

        Args:
            x0, x1: (B, 3, H, W) RGB in [-1, 1], H and W >= 31.

        Returns:
            (B,) LPIPS distances.
        """
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[1] != 3 or min(x0.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"LPIPS needs two (B, 3, H, W) batches with H, W >= {MIN_SIDE}; got "
                             f"{tuple(x0.shape)} and {tuple(x1.shape)}")
        return self._distance(self._taps(x0), self._taps(x1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five AlexNet taps of (B, 3, H, W) images in [-1, 1], each unit-normalised over channels."""
        return [f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in self.net((x - self.shift) / self.scale)]

    def _distance(self, taps0: list[torch.Tensor], taps1: list[torch.Tensor]) -> torch.Tensor:
        """(B,) the calibrated, spatially averaged squared tap differences, summed over the five layers."""
        total = 0
        for lin, f0, f1 in zip(self.lins, taps0, taps1):
            total = total + lin((f0 - f1) ** 2).mean(dim=(2, 3))  # (B, 1)
        return total[:, 0]

    @torch.no_grad()
    def pair_distances(self, frames: np.ndarray, a: np.ndarray, b: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(P,) distances between ``frames[a[p]]`` and ``frames[b[p]]`` (uint8 (N, H, W, 3)); each frame goes through
        AlexNet once however many pairs it is in (the same values as :meth:`frames` on the paired frames)."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
        chunks = [self._taps(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        if not chunks or not len(a):
            return np.zeros(0, np.float32)
        taps = [torch.cat(layer) for layer in zip(*chunks)]  # five (N, C, h, w)
        a, b = torch.as_tensor(a, dtype=torch.long), torch.as_tensor(b, dtype=torch.long)
        out = [self._distance([t[a[i:i + batch_size]] for t in taps], [t[b[i:i + batch_size]] for t in taps])
               for i in range(0, len(a), batch_size)]
        return torch.cat(out).numpy()

    @torch.no_grad()
    def frames(self, a: np.ndarray, b: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N,) distances between uint8 RGB frames (N, H, W, 3) `a` and `b` (scaled to [-1, 1] here)."""
        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 127.5 - 1
        out = [self(tensor(a[i:i + batch_size]), tensor(b[i:i + batch_size])) for i in range(0, len(a), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def lpips_calibration_path(version: str = "0.1") -> Path:
    """The AlexNet calibration weights inside the installed ``lpips`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the lpips package is not installed: pip install --no-deps lpips=={LPIPS_VERSION}")
    path = Path(spec.submodule_search_locations[0]) / "weights" / f"v{version}" / "alex.pth"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no LPIPS calibration weights (lpips=={LPIPS_VERSION} expected)")
    return path


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_lpips(backbone_path: str | Path | None = None, calibration_path: str | Path | None = None,
               seed: int = 0) -> LPIPS:
    """LPIPS v0.1 (AlexNet) with the shipped calibration and an ImageNet backbone from `backbone_path`, or a
    random backbone drawn from ``torch.Generator().manual_seed(seed)``.

    Raises:
        FileNotFoundError: a given file, or the lpips package, is missing.
        KeyError: the backbone file lacks a ``features.{0,3,6,8,10}`` weight or bias (names them).
    """
    calibration = _read_tensors(Path(calibration_path) if calibration_path else lpips_calibration_path())
    if backbone_path is None:
        model = LPIPS(calibration, backbone=f"random(seed={seed})")
        model.net.randomize(torch.Generator().manual_seed(seed))
        return model
    path = Path(backbone_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: AlexNet backbone file not found")
    state = _read_tensors(path)
    wanted = [f"features.{i}.{p}" for i in TAPS for p in ("weight", "bias")]
    missing = [k for k in wanted if k not in state]
    if missing:
        raise KeyError(f"{path}: missing AlexNet tensors {missing}")
    model = LPIPS(calibration, backbone=str(path))
    model.net.load_state_dict({k: state[k] for k in wanted}, strict=True)
    return model


def keyframe_indices(n_frames: int, fps: float) -> np.ndarray:
    """One frame per second: the frames at t = 0, 1, 2, ... s of a clip of `n_frames` frames."""
    seconds = np.arange(int(math.floor((n_frames - 1) / fps)) + 1) if n_frames > 0 else np.zeros(0)
    return np.minimum(np.round(seconds * fps).astype(np.int64), max(n_frames - 1, 0))


@dataclass(frozen=True)
class MaxRunningLPIPS:
    """Max Running LPIPS of clips, with the backbone it was computed with.

    Attributes:
        values: (C,) one value per clip; NaN for a clip with fewer than two keyframes (< 1 s).
        label, backbone, comparable_with_paper: copied from the :class:`LPIPS` used.
    """

    values: np.ndarray
    label: str
    backbone: str
    comparable_with_paper: bool

    @property
    def mean(self) -> float:
        """Mean over clips with a value (NaN if none)."""
        finite = self.values[np.isfinite(self.values)]
        return float(finite.mean()) if len(finite) else float("nan")


def max_running_lpips(clips: Sequence[np.ndarray], fps: float, model: LPIPS) -> MaxRunningLPIPS:
    """Panda-70M Eq. 1 for each clip.

    Args:
        clips: each (T, H, W, 3) uint8 RGB, all its frames (keyframes are picked here, one per second).
        fps: frames per second.
        model: from :func:`load_lpips`.
    """
    values = []
    for frames in clips:
        keys = frames[keyframe_indices(len(frames), fps)]
        values.append(float(model.frames(keys[:-1], keys[1:]).max()) if len(keys) >= 2 else float("nan"))
    return MaxRunningLPIPS(np.asarray(values, dtype=np.float64), model.label, model.backbone,
                           model.comparable_with_paper)
