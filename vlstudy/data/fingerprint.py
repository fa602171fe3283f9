"""Video fingerprints and a near-duplicate search that does not compare all pairs.

Youku-mPLUG §3.1 removes near-duplicate videos; the paper does not say how. This module follows the
filter-and-refine recipe of near-duplicate video retrieval (Wu, Hauptmann & Ngo, ACM MM 2007, "Practical
elimination of near-duplicates from web video search"): compact per-frame hashes propose and screen
candidates, an exact check on a few frames confirms them.

A near-duplicate here is a re-encoded copy, possibly shifted by a few pixels, re-lit and trimmed by up to
``max_shift_s`` at either end. The hard negatives are different videos of the same category: same background,
same kind of object, different placement and motion. Everything below is built so that a shared background
does not make two videos look alike.

`Fingerprint` of a video, from the ``window`` central frames of those sampled at ``fps`` (per second of video,
so encodings with different frame rates line up; central, so that trims at the ends do not matter):

- ``hashes``, uint64 (W, 4): two 128-bit SimHashes per frame (Charikar, STOC 2002) of its 8x8 RGB area-resized
  thumbnail t: *motion* = t minus the window's mean thumbnail (the static scene removed), *appearance* = t minus
  its per-channel means. Each is L2-normalised (brightness removed) and projected on 128 fixed Gaussian
  directions (``PROJECTION``), one sign bit each, so the Hamming distance estimates the angle between two
  thumbnails. A frame that does not differ from the mean (or a flat frame) hashes to 0.
- ``luma``, uint8 (R, 64, 64): the area-resized luma of the ``registration_frames`` central frames.

Search, three steps:

1. **Candidates by LSH banding.** Each 64-bit hash word is cut into bands of ``band_bits`` bits; (band
   index, band value) is a token and a video is the set of its tokens. Videos sharing at least
   ``min_shared_tokens`` tokens are candidates, found by one self-join on the token (cost: sum over tokens of
   bucket size squared, not n^2). Tokens held by more than ``max_bucket`` videos propose nothing (the index's
   "stop words"); at millions of videos, widen ``band_bits`` so that buckets stay small.
2. **Screening by aligned hashes** (`window_distances`). The mean Hamming distances of the two windows are
   minimised over temporal offsets within ``max_shift_s``, with popcounts vectorised over all pairs; pairs
   whose motion or appearance distance exceeds ``max_motion_bits`` / ``max_appearance_bits`` are dropped.
3. **Registration** (`registration_residual`). For each temporal offset, the global spatial shift (within
   ``max_shift_px``) is the peak of the phase correlation summed over the aligned frames, and the brightness
   gain comes from least squares. At the two offsets with the highest peaks, the residual y - g * shift(x) is
   smoothed (Gaussian, ``blur_sigma``) and its RMS taken in ``block`` x ``block`` blocks; the statistic is the
   median over frames of the worst block, in grey levels. A copy leaves codec noise everywhere (about 2
   levels); a different video leaves its own object in some block, however much background the two share.
   Pairs at most ``max_residual`` apart are near-duplicates.

Near-duplicate groups are the connected components of the confirmed pairs (scipy.sparse.csgraph).

No pinned library fingerprints videos (``imagehash`` is not a dependency and hashes single images), so the
hashes (two matrix products and a sign) and the registration (numpy FFTs) are written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["DedupConfig", "Fingerprint", "HASH_BITS", "THUMB_SIZE", "REGISTRATION_SIZE", "PROJECTION",
           "sample_indices", "central_window", "fingerprint", "window_distances", "registration_residual",
           "candidate_pairs", "find_near_duplicates", "duplicate_groups"]

HASH_BITS = 128
"""Bits of one frame hash (two uint64 words)."""
THUMB_SIZE = 8
"""Side of the RGB thumbnail a frame hash is computed from."""
REGISTRATION_SIZE = 64
"""Side of the luma frames kept for registration."""
PROJECTION = np.random.default_rng(20230606).standard_normal((THUMB_SIZE * THUMB_SIZE * 3, HASH_BITS)).astype(
    np.float32)
"""The SimHash directions, shape (192, 128): constants of the hash function (fixed seed, like a hash's salt)."""
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))


@dataclass
class DedupConfig:
    """Near-duplicate search settings (the module docstring describes each step).

    Attributes:
        fps: frames per second of video sampled for the fingerprint.
        window: central sampled frames hashed per video.
        band_bits: bits per LSH band (must divide 64).
        min_shared_tokens: distinct (band, value) tokens two videos must share to become candidates.
        max_bucket: tokens held by more videos than this do not propose candidates.
        max_shift_s: largest temporal offset (seconds) tried when aligning two windows.
        max_motion_bits, max_appearance_bits: step 2 keeps pairs whose aligned hashes differ by at most this
            many bits (of 128) per frame.
        registration_frames: central frames kept as 64x64 luma for step 3.
        max_shift_px: largest spatial shift (pixels of the 64x64 luma) tried in step 3.
        block: side (pixels) of the blocks whose residual RMS step 3 compares.
        blur_sigma: Gaussian smoothing (pixels) of the residual before the block RMS.
        max_residual: step 3 accepts pairs whose statistic (grey levels) is at most this.
        min_motion: frames whose motion (or appearance) thumbnail has an RMS below this (0..255) hash to 0.
        batch_pairs: candidate pairs screened per vectorised batch in step 2 (bounds memory).
    """

    fps: float = 4.0
    window: int = 32
    band_bits: int = 16
    min_shared_tokens: int = 4
    max_bucket: int = 1000
    max_shift_s: float = 1.0
    max_motion_bits: float = 48.0
    max_appearance_bits: float = 48.0
    registration_frames: int = 16
    max_shift_px: int = 4
    block: int = 12
    blur_sigma: float = 1.0
    max_residual: float = 3.6
    min_motion: float = 1.0
    batch_pairs: int = 100_000

    def __post_init__(self):
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.window < 2 or not 2 <= self.registration_frames <= self.window:
            raise ValueError(f"need 2 <= registration_frames <= window, got {self.registration_frames}, {self.window}")
        if not 1 <= self.band_bits <= 64 or 64 % self.band_bits:
            raise ValueError(f"band_bits must divide 64, got {self.band_bits}")
        if not 0 <= self.max_shift_px < REGISTRATION_SIZE // 4:
            raise ValueError(f"max_shift_px must be in 0..{REGISTRATION_SIZE // 4 - 1}, got {self.max_shift_px}")

    @property
    def max_offset(self) -> int:
        """Largest temporal offset in sampled frames."""
        return int(np.ceil(self.max_shift_s * self.fps))


@dataclass(frozen=True)
class Fingerprint:
    """What the search keeps of one video.

    Attributes:
        hashes: motion and appearance SimHash of each window frame, uint64, shape (W, 4) (words 0-1 motion,
            2-3 appearance).
        luma: 64x64 luma of the central registration frames, uint8, shape (R, 64, 64).
    """

    hashes: np.ndarray
    luma: np.ndarray


def sample_indices(num_frames: int, native_fps: float, fps: float) -> np.ndarray:
    """Frame indices at `fps` frames per second of video (every frame when the video is not faster).

    Returns:
        int64 indices, shape (T,), T = max(1, floor(duration * fps)).
    """
    if native_fps <= fps:
        return np.arange(num_frames, dtype=np.int64)
    times = np.arange(max(1, int(num_frames / native_fps * fps))) / fps
    return np.minimum(np.round(times * native_fps).astype(np.int64), num_frames - 1)


def central_window(length: int, size: int) -> tuple[int, int]:
    """[start, stop) of the `size` central positions of a sequence of `length`."""
    start = max(0, (length - size) // 2)
    return start, min(length, start + size)


def _area_resize(n: int, size: int) -> np.ndarray:
    """Box-filter resize matrix n -> size, shape (size, n); rows sum to 1."""
    edges = np.linspace(0.0, n, size + 1)
    pixels = np.arange(n)
    overlap = np.clip(np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """Area resize of (T, H, W, C) float frames to (T, size, size, C)."""
    _, h, w, _ = frames.shape
    return np.einsum("ih,thwc,jw->tijc", _area_resize(h, size), frames, _area_resize(w, size), optimize=True)


def _simhash(vectors: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """128-bit SimHash of L2-normalised rows, shape (N, 192) -> uint64 (N, 2); rows flagged `blank` hash to 0."""
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    bits = (vectors / np.maximum(norm, 1e-6)) @ PROJECTION > 0  # (N, 128)
    bits[blank] = False
    return (bits.reshape(len(vectors), 2, 64).astype(np.uint64) * _BIT_WEIGHTS).sum(axis=2, dtype=np.uint64)


def fingerprint(frames: np.ndarray, config: DedupConfig) -> Fingerprint:
    """The fingerprint of a window of frames (module docstring).

    Args:
        frames: uint8 RGB, shape (T, H, W, 3): the central ``config.window`` sampled frames of a video.
        config: ``min_motion`` and ``registration_frames`` are used.

    Returns:
        The fingerprint: hashes (T, 4) uint64 and luma (R, 64, 64) uint8.
    """
    rgb = frames.astype(np.float32)
    thumbs = _resize(rgb, THUMB_SIZE).reshape(len(frames), -1)  # (W, 192)
    motion = thumbs - thumbs.mean(axis=0, keepdims=True)
    per_channel = thumbs.reshape(len(frames), -1, 3)
    appearance = (per_channel - per_channel.mean(axis=1, keepdims=True)).reshape(len(frames), -1)
    floor = config.min_motion * np.sqrt(thumbs.shape[1])
    hashes = np.concatenate([_simhash(motion, np.linalg.norm(motion, axis=1) < floor),
                             _simhash(appearance, np.linalg.norm(appearance, axis=1) < floor)], axis=1)
    central = rgb[slice(*central_window(len(frames), config.registration_frames))]
    luma = _resize(central @ _LUMA[:, None], REGISTRATION_SIZE)[..., 0]  # (R, 64, 64)
    return Fingerprint(hashes, np.clip(np.rint(luma), 0, 255).astype(np.uint8))


def window_distances(fingerprints: list[Fingerprint], pairs: np.ndarray, max_shift: int,
                     batch: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Best temporal offset and mean Hamming distances of the windows of many pairs, vectorised.

    Frame k of video i is compared with frame k - offset of video j, for offsets -max_shift..max_shift; an
    offset counts only where the windows overlap on at least half of the shorter one. The best offset
    minimises the sum of the motion and appearance distances.

    Args:
        fingerprints: one per video.
        pairs: int64 (P, 2) video positions.
        max_shift: largest offset in sampled frames.
        batch: pairs per vectorised batch.

    Returns:
        ``offset`` int64 (P,) and ``distance`` float64 (P, 2): mean motion and appearance Hamming distances
        (bits of 128 per aligned frame) at that offset; inf without enough overlap.
    """
    width = max((len(f.hashes) for f in fingerprints), default=1)
    padded = np.zeros((len(fingerprints), width + 2 * max_shift, 2, 2), np.uint64)  # (N, W + 2S, hash, word)
    valid = np.zeros((len(fingerprints), width + 2 * max_shift), bool)
    lengths = np.array([len(f.hashes) for f in fingerprints])
    for k, f in enumerate(fingerprints):
        padded[k, max_shift:max_shift + len(f.hashes)] = f.hashes.reshape(-1, 2, 2)
        valid[k, max_shift:max_shift + len(f.hashes)] = True
    best_offset = np.zeros(len(pairs), np.int64)
    best = np.full((len(pairs), 2), np.inf)
    for lo in range(0, len(pairs), batch):
        i, j = pairs[lo:lo + batch, 0], pairs[lo:lo + batch, 1]
        x, x_ok = padded[i, max_shift:max_shift + width], valid[i, max_shift:max_shift + width]  # (B, W, 2, 2)
        need = np.maximum(np.minimum(lengths[i], lengths[j]) // 2, 1)
        for offset in range(-max_shift, max_shift + 1):
            view = slice(max_shift - offset, max_shift - offset + width)
            both = x_ok & valid[j, view]  # (B, W)
            bits = np.bitwise_count(x ^ padded[j, view]).sum(axis=3, dtype=np.int32)  # (B, W, 2)
            count = both.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where((count >= need)[:, None], (bits * both[..., None]).sum(axis=1) / count[:, None],
                                np.inf)  # (B, 2)
            better = mean.sum(axis=1) < best[lo:lo + batch].sum(axis=1)
            best[lo:lo + batch][better] = mean[better]
            best_offset[lo:lo + batch][better] = offset
    return best_offset, best


def registration_residual(a: Fingerprint, b: Fingerprint, config: DedupConfig) -> float:
    """How far `b`'s frames are from a shifted, re-lit copy of `a`'s (step 3 of the module docstring).

    Args:
        a, b: fingerprints.
        config: ``max_offset``, ``max_shift_px``, ``block``, ``blur_sigma`` are used.

    Returns:
        The median over aligned frames of the largest block RMS of the smoothed residual, in grey levels
        (about 2 for a re-encoded copy); inf when the frames never overlap on half of them.
    """
    n, m = REGISTRATION_SIZE, config.max_shift_px
    x = a.luma.astype(np.float32)
    y = b.luma.astype(np.float32)
    fx = np.fft.rfft2(x - x.mean(axis=(1, 2), keepdims=True))  # (Ra, 64, 33)
    fy = np.fft.rfft2(y - y.mean(axis=(1, 2), keepdims=True))
    freq_y, freq_x = np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None, :]
    shifts = np.fft.fftfreq(n, 1 / n)  # the integer shift of each correlation row / column
    allowed = (np.abs(shifts)[:, None] <= m) & (np.abs(shifts)[None, :] <= m)
    need = max(2, min(len(x), len(y)) // 2)
    peaks = []  # (peak height, offset, dy, dx)
    for offset in range(-config.max_offset, config.max_offset + 1):
        lo, hi = max(0, offset), min(len(x), len(y) + offset)  # frame k of a shows frame k - offset of b
        if hi - lo < need:
            continue
        cross = (np.conj(fx[lo:hi]) * fy[lo - offset:hi - offset]).sum(axis=0)
        corr = np.where(allowed, np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=(n, n)), -np.inf)
        row, col = np.unravel_index(np.argmax(corr), corr.shape)
        peaks.append((corr[row, col], offset, shifts[row], shifts[col]))
    blur = np.exp(-2 * (np.pi * config.blur_sigma) ** 2 * (freq_y ** 2 + freq_x ** 2))
    side = (n - 2 * m) // config.block * config.block
    best = float("inf")
    for _, offset, dy, dx in sorted(peaks, reverse=True)[:2]:
        lo, hi = max(0, offset), min(len(x), len(y) + offset)
        xs = fx[lo:hi] * np.exp(-2j * np.pi * (freq_y * dy + freq_x * dx))  # a, shifted by (dy, dx)
        ys = fy[lo - offset:hi - offset]
        gain = np.real((np.conj(xs) * ys).sum()) / max(float((np.abs(xs) ** 2).sum()), 1e-9)
        residual = np.fft.irfft2((ys - gain * xs) * blur, s=(n, n))[:, m:m + side, m:m + side]  # border cut
        blocks = residual.reshape(len(residual), side // config.block, config.block, side // config.block,
                                  config.block)
        worst = np.sqrt((blocks ** 2).mean(axis=(2, 4))).reshape(len(residual), -1).max(axis=1)
        best = min(best, float(np.median(worst)))
    return best


def _tokens(fingerprints: list[Fingerprint], band_bits: int) -> pd.DataFrame:
    """Distinct (video, token) rows; a token encodes (band index, band value) of a non-zero hash word."""
    flat = np.concatenate([f.hashes for f in fingerprints]) if fingerprints else np.zeros((0, 4), np.uint64)
    video = np.repeat(np.arange(len(fingerprints)), [len(f.hashes) for f in fingerprints])
    per_word = 64 // band_bits
    mask = np.uint64((1 << band_bits) - 1)
    frames, tokens = [], []
    for w in range(flat.shape[1]):
        nonzero = flat[:, w] != 0
        for b in range(per_word):
            band = (flat[nonzero, w] >> np.uint64(b * band_bits)) & mask
            tokens.append(band | np.uint64((w * per_word + b) << band_bits))
            frames.append(video[nonzero])
    return pd.DataFrame({"video": np.concatenate(frames), "token": np.concatenate(tokens)}).drop_duplicates()


def candidate_pairs(fingerprints: list[Fingerprint], config: DedupConfig) -> np.ndarray:
    """Pairs of videos that share at least ``min_shared_tokens`` LSH tokens (step 1).

    Returns:
        int64 array, shape (P, 2), rows (i, j) with i < j.
    """
    tokens = _tokens(fingerprints, config.band_bits)
    size = tokens.groupby("token")["video"].transform("size")
    tokens = tokens[(size > 1) & (size <= config.max_bucket)]
    pairs = tokens.merge(tokens, on="token", suffixes=("_a", "_b"))
    pairs = pairs[pairs["video_a"] < pairs["video_b"]]
    shared = pairs.groupby(["video_a", "video_b"]).size()
    shared = shared[shared >= config.min_shared_tokens]
    return np.array(shared.index.tolist(), dtype=np.int64).reshape(-1, 2)


def find_near_duplicates(fingerprints: list[Fingerprint], config: DedupConfig) -> pd.DataFrame:
    """Confirmed near-duplicate pairs among `fingerprints` (steps 1-3 of the module docstring).

    Args:
        fingerprints: one per video, from frames sampled at ``config.fps``.
        config: search settings.

    Returns:
        Columns ``a``, ``b`` (positions in `fingerprints`, a < b), ``offset`` (sampled frames, step 2),
        ``motion_bits``, ``appearance_bits`` (step 2) and ``residual`` (grey levels, step 3).
    """
    pairs = candidate_pairs(fingerprints, config)
    offset, hamming = window_distances(fingerprints, pairs, config.max_offset, config.batch_pairs)
    keep = (hamming[:, 0] <= config.max_motion_bits) & (hamming[:, 1] <= config.max_appearance_bits)
    pairs, offset, hamming = pairs[keep], offset[keep], hamming[keep]
    residual = np.array([registration_residual(fingerprints[i], fingerprints[j], config) for i, j in pairs],
                        dtype=np.float64)
    confirmed = residual <= config.max_residual
    return pd.DataFrame({"a": pairs[confirmed, 0], "b": pairs[confirmed, 1], "offset": offset[confirmed],
                         "motion_bits": hamming[confirmed, 0], "appearance_bits": hamming[confirmed, 1],
                         "residual": residual[confirmed]})


def duplicate_groups(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """Connected components of the near-duplicate graph.

    Args:
        n: number of videos.
        pairs: the table returned by `find_near_duplicates`.

    Returns:
        int64 group label per video, shape (n,); a video without a duplicate is alone in its group.
    """
    graph = coo_matrix((np.ones(len(pairs)), (pairs["a"].to_numpy(), pairs["b"].to_numpy())), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)
