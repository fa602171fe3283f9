"""Clip transforms: CLIP normalisation, square resize, temporally consistent random crop and flip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlstudy.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    CropBox,
    TransformConfig,
    eval_transform,
    normalize,
    resize_frames,
    sample_crop_box,
    to_tensor,
    train_transform,
)


def ramp_clip(num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a 2-D ramp in [40, 200] plus t in frame t (so frames differ by constants)."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = 40 + 160 * (ys / max(height - 1, 1) * 0.3 + xs / max(width - 1, 1) * 0.7)
    base = np.stack([base, base[::-1], base[:, ::-1]], axis=-1)
    return np.stack([np.round(base) + t for t in range(num_frames)]).astype(np.uint8)


def test_clip_constants_are_the_official_values():
    assert CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert CLIP_STD == (0.26862954, 0.26130258, 0.27577711)


def test_normalize_known_values():
    frames = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    out = normalize(frames)
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    torch.testing.assert_close(out[0, :, 0, 0], -mean / std)
    torch.testing.assert_close(out[1, :, 0, 0], (1 - mean) / std)
    assert out.dtype == torch.float32


def test_resize_keeps_constant_images_and_same_size_inputs():
    flat = torch.full((2, 3, 48, 32), 77, dtype=torch.uint8)
    resized = resize_frames(flat, 20, 20)
    assert resized.shape == (2, 3, 20, 20) and resized.dtype == torch.uint8
    assert torch.all(resized == 77)
    assert resize_frames(flat, 48, 32) is flat


def test_resize_is_antialiased_bicubic():
    # a 1-pixel checkerboard averages to grey when antialiased; plain bicubic subsampling would alias
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    frames = torch.from_numpy(board).expand(1, 3, 64, 64)
    assert resize_frames(frames, 16, 16).float().sub(127.5).abs().max() <= 1


def test_eval_transform_shapes_and_values():
    frames = ramp_clip(3, 32, 48)
    config = TransformConfig(image_size=24)
    out = eval_transform(frames, config)
    assert out.shape == (3, 3, 24, 24) and out.dtype == torch.float32
    expected = normalize(resize_frames(to_tensor(frames), 24, 24))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    same_size = eval_transform(frames[:, :, :32], TransformConfig(image_size=32))       # no resize at all
    torch.testing.assert_close(same_size, normalize(to_tensor(frames[:, :, :32])), rtol=0, atol=0)


def test_crop_box_respects_scale_and_ratio():
    for seed in range(300):
        box = sample_crop_box(60, 80, (0.5, 1.0), (3 / 4, 4 / 3), np.random.default_rng(seed))
        assert 0 <= box.top and box.top + box.height <= 60 and 0 <= box.left and box.left + box.width <= 80
        assert 0.5 * 4800 * 0.93 <= box.height * box.width <= 4800          # rounding to whole pixels
        assert 3 / 4 * 0.9 <= box.width / box.height <= 4 / 3 * 1.1


def test_crop_box_falls_back_to_central_crop():
    # a 10x40 frame (ratio 4) cannot hold a full-area crop with ratio <= 4/3: central 10 x round(10*4/3)
    box = sample_crop_box(10, 40, (1.0, 1.0), (3 / 4, 4 / 3), np.random.default_rng(0))
    assert box == CropBox(top=0, left=13, height=10, width=13)


def test_train_transform_is_temporally_consistent():
    # frame t = frame 0 + t everywhere, so the same crop, resize and flip keep that offset exactly
    frames = ramp_clip(4, 40, 56)
    config = TransformConfig(image_size=32)
    for seed in range(5):
        out = train_transform(frames, config, np.random.default_rng(seed))
        assert out.shape == (4, 3, 32, 32)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        for t in range(1, 4):
            torch.testing.assert_close(out[t] - out[0], (t / 255.0 / std).expand(3, 32, 32), rtol=0, atol=1e-5)


def test_train_transform_same_seed_same_output_and_seeds_differ():
    frames = ramp_clip(2, 40, 56)
    config = TransformConfig(image_size=32)
    first = train_transform(frames, config, np.random.default_rng(11))
    torch.testing.assert_close(first, train_transform(frames, config, np.random.default_rng(11)), rtol=0, atol=0)
    others = [train_transform(frames, config, np.random.default_rng(s)) for s in range(12, 16)]
    assert all(not torch.equal(first, other) for other in others)


def test_flip_mirrors_the_clip_horizontally():
    frames = ramp_clip(2, 32, 32)
    no_crop = dict(image_size=32, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    flipped = train_transform(frames, TransformConfig(**no_crop, flip_prob=1.0), np.random.default_rng(0))
    kept = train_transform(frames, TransformConfig(**no_crop, flip_prob=0.0), np.random.default_rng(0))
    torch.testing.assert_close(kept, eval_transform(frames, TransformConfig(image_size=32)), rtol=0, atol=0)
    torch.testing.assert_close(flipped, kept.flip(-1), rtol=0, atol=0)


def test_transform_config_checks():
    with pytest.raises(ValueError, match="crop_scale"):
        TransformConfig(crop_scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="image_size"):
        TransformConfig(image_size=0)
    with pytest.raises(ValueError, match="flip_prob"):
        TransformConfig(flip_prob=2.0)
