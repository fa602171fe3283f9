"""Frame cache: decode every video once into one compact uint8 store, so that epochs do not re-decode.

Decoding dominates the cost of a video batch (a 64x64 mini-Youku clip decodes in milliseconds, a 720p one in
hundreds). The official Youku-mPLUG code (``dataset/video_utils/utils.py``) decodes on every access; a cache
trades disk for that time while keeping the official sampling:

- **eval** (``"middle"``): the cache stores exactly the frames :func:`~vlstudy.data.video.sample_frame_indices`
  picks, so cached evaluation is identical to decoding.
- **train** (``"rand"``): ``rand`` may pick any frame of each segment, so the cache stores ``C`` candidate frames
  per segment (``candidates``), evenly spaced inside the frames ``rand`` can draw there (the segment's official
  ``range(a, b)``; candidate ``j`` of ``m`` drawable frames is ``a + floor((j + 0.5) * m / C)``). Reading picks one
  candidate per segment with the item's RNG. With ``C >=`` the segment length every drawable frame is stored and
  the pick is the official draw itself: the same generator gives the same frame indices as decoding with
  ``rand`` (tested). Videos short enough for the official fallback (a segment of one frame, i.e. fewer than
  ``2 * num_frames`` frames) store ``min(vlen, num_frames * C)`` evenly spaced frames and draw a sorted random
  subset, again exactly the official draw whenever the whole video fits (always when ``C >= 2``).

A cache is identified by the videos (ids, paths, file sizes and modification times) and its settings
(:class:`FrameCacheConfig`), hashed into its file names, so a changed video or setting builds a new cache. On
disk: ``frames-<key>.npy``, a (N, slots, size, size, 3) uint8 array read through a memory map, and
``frames-<key>.json``, the index (video id → row, frame count, and a ``missing`` flag with the reason for videos
that could not be read). Both are written to temporary files and renamed into place, the index last, so a
half-built cache is never used. Disk use is ``N * slots * size**2 * 3`` bytes (eval: slots = num_frames; train:
num_frames * candidates), e.g. 1 000 videos, 8 frames, C=4, size 224: 4.8 GB; mini-Youku (64x64): a few MB.

Frames are resized to ``size x size`` with the same resize the eval transform uses
(:func:`~vlstudy.data.transforms.resize_frames`), so with ``size = image_size`` cached evaluation equals the
uncached path exactly. Training crops are then taken from the square-resized frames, not from the original
aspect ratio; keep ``size`` at least the training ``image_size``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm  # text bars: readable in terminals, logs and rendered notebooks alike

from vlstudy.data.transforms import resize_frames, to_tensor
from vlstudy.data.video import Backend, Clip, VideoReadError, read_clip, sample_frame_indices, segment_bounds
from vlstudy.io import atomic_path, write_json

__all__ = ["FrameCacheConfig", "FrameCache", "build_frame_cache", "cache_key", "stored_frame_indices",
           "sample_stored_slots"]

CACHE_FORMAT = 1


@dataclass(frozen=True)
class FrameCacheConfig:
    """What a frame cache stores.

    Attributes:
        num_frames: frames per clip (T).
        mode: ``"eval"`` stores the ``middle`` frames; ``"train"`` stores candidates for ``rand``.
        size: side of the stored square frames (pixels).
        candidates: frames stored per segment in train mode (C); ignored in eval mode.
    """

    num_frames: int
    mode: Literal["train", "eval"]
    size: int
    candidates: int = 4

    def __post_init__(self):
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {self.mode!r}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")

    @property
    def slots(self) -> int:
        """Frames stored per video."""
        return self.num_frames * self.candidates if self.mode == "train" else self.num_frames


# ----------------------------------------------------------------------------------------------------------------
# Which frames are stored, and how a clip is drawn from them (pure functions of the video length)
# ----------------------------------------------------------------------------------------------------------------

def _drawable_ranges(num_frames: int, vlen: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per segment, the first drawable frame and the number of drawable frames for ``rand``; None when the
    official fallback applies (some segment holds a single frame)."""
    bounds = segment_bounds(num_frames, vlen)
    first, count = bounds[:-1], bounds[1:] - 1 - bounds[:-1]         # official range(a, b): b - a frames
    return (first, count) if np.all(count > 0) else None


def _pad(values: np.ndarray, length: int) -> np.ndarray:
    """`values` extended to `length` by repeating the last one (the official padding)."""
    out = np.full(length, values[-1], dtype=np.int64)
    out[: len(values)] = values
    return out


def _evenly_spaced(first: np.ndarray, count: np.ndarray, k: int) -> np.ndarray:
    """Per row, k of the ``count`` frames from ``first``, evenly spaced (centres of k equal bins); all of them when
    k >= count, the last one repeated to fill k columns. (R,), (R,) → (R, k) int64."""
    kept = np.minimum(k, count)[:, None]
    column = np.minimum(np.arange(k)[None, :], kept - 1)
    return first[:, None] + np.floor((column + 0.5) * count[:, None] / kept).astype(np.int64)


def stored_frame_indices(config: FrameCacheConfig, vlen: int) -> np.ndarray:
    """The video frames a cache row holds.

    Args:
        config: the cache settings.
        vlen: frames in the video.

    Returns:
        (slots,) int64 frame indices. Eval: the ``middle`` sample. Train: ``candidates`` per segment, segment
        after segment (fewer distinct ones padded by repeating the last); in the fallback case the first
        ``min(vlen, slots)`` slots hold evenly spaced frames of the whole video.
    """
    if config.mode == "eval":
        return sample_frame_indices(config.num_frames, vlen, "middle")
    ranges = _drawable_ranges(config.num_frames, vlen)
    if ranges is None:
        return _evenly_spaced(np.zeros(1, np.int64), np.array([vlen]), config.slots)[0]
    return _evenly_spaced(*ranges, config.candidates).reshape(-1)


def sample_stored_slots(config: FrameCacheConfig, vlen: int, rng: np.random.Generator | None) -> np.ndarray:
    """Which slots of a cache row make one clip.

    Eval: all slots in order. Train: one candidate per segment, uniformly (``rng.integers(0, k)`` per segment,
    which with ``k`` = all drawable frames is the same draw as the official ``rng.integers(a, b)``); in the
    fallback case a sorted random subset of the stored frames (``rng.permutation``, as the official code).

    Returns:
        (num_frames,) int64 slot positions in ``[0, slots)``.
    """
    if config.mode == "eval":
        return np.arange(config.num_frames)
    if rng is None:
        raise ValueError("train-mode cache reads need a numpy Generator (rng)")
    ranges = _drawable_ranges(config.num_frames, vlen)
    if ranges is None:
        stored = min(vlen, config.slots)
        return _pad(np.sort(rng.permutation(stored)[: min(config.num_frames, vlen)]), config.num_frames)
    kept = np.minimum(ranges[1], config.candidates)
    return np.arange(config.num_frames) * config.candidates + rng.integers(0, kept)


# ----------------------------------------------------------------------------------------------------------------
# Building and reading
# ----------------------------------------------------------------------------------------------------------------

def cache_key(videos: list[tuple[str, str]], config: FrameCacheConfig) -> str:
    """Hash of the videos (id, absolute path, size, mtime; -1 for a missing file) and the settings."""
    entries = []
    for video_id, path in videos:
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except FileNotFoundError:
            size, mtime = -1, -1
        entries.append([video_id, os.path.abspath(path), size, mtime])
    payload = json.dumps({"format": CACHE_FORMAT, "config": asdict(config), "videos": entries}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def _decode_row(task: tuple[str, FrameCacheConfig, Backend]) -> tuple[np.ndarray | None, int, str | None]:
    """Decode one video's stored frames → ((slots, size, size, 3) uint8 or None, frame count, failure reason)."""
    path, config, backend = task
    try:
        clip = read_clip(path, lambda vlen: stored_frame_indices(config, vlen), backend)
    except VideoReadError as error:
        return None, 0, error.reason
    frames = resize_frames(to_tensor(clip.frames), config.size, config.size)     # (slots, 3, size, size)
    return frames.permute(0, 2, 3, 1).numpy(), clip.video_frames, None


def _single_thread_worker() -> None:
    torch.set_num_threads(1)


def _decode_all(tasks: list[tuple[str, FrameCacheConfig, Backend]], workers: int):
    """Decoded rows in task order: a pool of `workers` processes, or this process when workers <= 1."""
    if workers <= 1:
        yield from map(_decode_row, tasks)
        return
    with multiprocessing.get_context().Pool(workers, initializer=_single_thread_worker) as pool:
        yield from pool.imap(_decode_row, tasks, chunksize=1)


def _write_frames(path: Path, videos: list[tuple[str, str]], config: FrameCacheConfig, workers: int,
                  backend: Backend, progress: bool) -> list[dict]:
    """Decode every video into a new (N, slots, size, size, 3) uint8 .npy at `path`; return the index entries."""
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                      shape=(len(videos), config.slots, config.size, config.size, 3))
    tasks = [(video_path, config, backend) for _, video_path in videos]
    rows = tqdm(_decode_all(tasks, workers), total=len(tasks), desc="frame cache", unit="video",
                disable=not progress)
    entries = []
    for row, (frames, vlen, reason) in enumerate(rows):
        if frames is not None:
            store[row] = frames
        video_id, video_path = videos[row]
        entries.append({"video_id": video_id, "path": video_path, "row": row, "video_frames": vlen,
                        "missing": frames is None, "reason": reason})
    store.flush()
    return entries


def build_frame_cache(records: pd.DataFrame, config: FrameCacheConfig, cache_dir: str | Path, workers: int = 2,
                      backend: Backend = "auto", progress: bool = True) -> FrameCache:
    """Decode the videos of `records` into a cache under `cache_dir`, or open the cache built before.

    Args:
        records: a table with columns ``video_id`` and ``video_path`` (the record schema).
        config: what to store.
        cache_dir: the folder for cache files (created if needed).
        workers: decoding processes (a multiprocessing pool); 0 or 1 decodes in this process.
        backend: video backend (see :func:`~vlstudy.data.video.read_clip`).
        progress: show a tqdm progress bar.

    Returns:
        The opened :class:`FrameCache`. Unreadable videos are kept as rows flagged missing, with the reason.
    """
    for column in ("video_id", "video_path"):
        if column not in records.columns:
            raise ValueError(f"frame cache records: missing column {column!r}")
    duplicated = records["video_id"][records["video_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"frame cache records: duplicated video_id {duplicated.iloc[0]!r}")
    videos = [(str(v), str(p)) for v, p in zip(records["video_id"], records["video_path"])]
    if not videos:
        raise ValueError("frame cache records: the table is empty")
    key = cache_key(videos, config)
    cache_dir = Path(cache_dir)
    index_path = cache_dir / f"frames-{key}.json"
    if index_path.is_file():
        return FrameCache(index_path)
    cache_dir.mkdir(parents=True, exist_ok=True)

    frames_path = cache_dir / f"frames-{key}.npy"
    with atomic_path(frames_path) as tmp_frames:
        entries = _write_frames(tmp_frames, videos, config, workers, backend, progress)

    index = {"format": CACHE_FORMAT, "key": key, "config": asdict(config), "frames_file": frames_path.name,
             "videos": entries}
    write_json(index_path, index)
    return FrameCache(index_path)


class FrameCache:
    """A built frame cache, opened read-only (memory map opened lazily, so the object pickles to workers).

    Args:
        index_path: the cache's ``frames-<key>.json``.
    """

    def __init__(self, index_path: str | Path):
        self.index_path = Path(index_path)
        index = json.loads(self.index_path.read_text(encoding="utf-8"))
        if index.get("format") != CACHE_FORMAT:
            raise ValueError(f"{self.index_path}: cache format {index.get('format')!r}, expected {CACHE_FORMAT}")
        self.key: str = index["key"]
        self.config = FrameCacheConfig(**index["config"])
        self.frames_path = self.index_path.with_name(index["frames_file"])
        self._entries: dict[str, dict] = {entry["video_id"]: entry for entry in index["videos"]}
        self._frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._entries

    @property
    def missing(self) -> dict[str, str]:
        """video id → reason, for videos that could not be read when the cache was built."""
        return {v: e["reason"] for v, e in self._entries.items() if e["missing"]}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_frames": None}

    def clip(self, video_id: str, rng: np.random.Generator | None = None) -> Clip:
        """One clip of a cached video.

        Args:
            video_id: the video.
            rng: draws the training clip (train mode); unused in eval mode.

        Returns:
            A :class:`~vlstudy.data.video.Clip`: frames (T, size, size, 3) uint8, their indices in the video.

        Raises:
            KeyError: the video is not in this cache.
            VideoReadError: the video could not be read when the cache was built.
        """
        try:
            entry = self._entries[video_id]
        except KeyError:
            raise KeyError(f"video {video_id!r} is not in the frame cache {self.index_path}") from None
        if entry["missing"]:
            raise VideoReadError(entry["path"], entry["reason"])
        if self._frames is None:
            self._frames = np.asarray(np.load(self.frames_path, mmap_mode="r"))     # a plain view of the map
        vlen = entry["video_frames"]
        slots = sample_stored_slots(self.config, vlen, rng)
        frames = np.asarray(self._frames[entry["row"], slots])                  # (T, size, size, 3), a copy
        return Clip(frames, stored_frame_indices(self.config, vlen)[slots], vlen)
