"""Video datasets and loaders: records → normalised clips, with reproducible randomness and deterministic sharding.

Follows the Youku-mPLUG downstream datasets (X-PLUG/Youku-mPLUG, ``dataset/video_downstream_datasets.py``):
train items read ``sample='rand'`` frames with the train transform, eval items ``sample='middle'`` frames with the
eval transform (:mod:`vlstudy.data.video`, :mod:`vlstudy.data.transforms`). Frames per clip are task settings
(the task configs' defaults: classification 8 and captioning 16 as in the official ``configs/cls`` and
``configs/caption`` YAML files, retrieval 4 as the official ``video_retrieval_dataset_train`` default, pre-training
4 as the study's protocol table).

Differences from the official datasets, on purpose:

- **Explicit randomness.** Item ``i`` in epoch ``e`` draws its frames, crop and flip from
  ``numpy.random.default_rng([seed, e, i, 1])`` (the trailing 1 keeps item streams apart from the sampler's
  ``[seed, e, 2]``; numpy's seed sequences treat trailing zeros as absent). Results depend neither on the number
  of workers nor on which worker loads an item, and a run resumed at epoch ``e`` reproduces the same samples.
  :meth:`VideoDataset.set_epoch` is the one call per epoch; the loader's sampler reads the same epoch.
- **Bad videos.** The official code silently substitutes the next (or a random) video. Here ``on_error="raise"``
  raises :class:`~vlstudy.data.video.VideoReadError` naming the file; ``on_error="skip"`` (the documented
  training behaviour) marks the item, :func:`collate_videos` drops it from the batch and lists it in
  ``batch["skipped"]``, and the loader counts it and logs it once, with the file name, on the
  ``vlstudy.data`` logger.
- **Sharding.** :func:`make_loader` uses the trainer's :class:`~vlstudy.data.sampler.GlobalBatchSampler`: global
  batches of ``batch_size * world_size`` items from one permutation of ``(seed, epoch)``; rank ``r`` takes the
  ``r``-th slice of ``batch_size`` of each. Together the
  ``world_size`` processes therefore see exactly the batches one process with ``batch_size * world_size`` sees
  (``torch.utils.data.DistributedSampler`` interleaves ranks item by item instead). For a pool too large for a
  folder of files, :mod:`vlstudy.data.shards` streams WebDataset tar shards into the same items
  (:func:`decode_item`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from vlstudy.data.frame_cache import FrameCache
from vlstudy.data.sampler import GlobalBatchSampler
from vlstudy.data.schema import RECORD_COLUMNS, validate_frame
from vlstudy.data.transforms import TransformConfig, eval_transform, train_transform
from vlstudy.data.video import Backend, VideoReadError, read_clip, sample_frame_indices

__all__ = ["VideoDataset", "item_rng", "decode_item", "collate_videos", "SkipLog", "VideoLoader",
           "make_loader"]

logger = logging.getLogger("vlstudy.data")

_ITEM_STREAM = 1    # last word of an item's seed: [seed, epoch, index, 1]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item `index` (its row in the record table) in `epoch`: frames, crop and flip."""
    return np.random.default_rng([seed, epoch, index, _ITEM_STREAM])


def decode_item(item: dict[str, Any], frames: Callable[[], np.ndarray], mode: Literal["train", "eval"],
                transform: TransformConfig, rng: np.random.Generator | None,
                on_error: Literal["skip", "raise"]) -> dict[str, Any]:
    """`item` with its ``video``: ``frames()`` ((T, H, W, 3) uint8) through the train or eval transform.

    A `VideoReadError` from ``frames()`` is raised (``on_error="raise"``) or gives ``video`` None and ``error``
    the reason naming the file (``"skip"``). Shared by `VideoDataset` and the shard loader
    (:mod:`vlstudy.data.shards`), so both produce the same item for the same record, seed and epoch.
    """
    try:
        clip = frames()
    except VideoReadError as error:
        if on_error == "raise":
            raise
        return {**item, "video": None, "error": str(error)}
    item["video"] = train_transform(clip, transform, rng) if mode == "train" else eval_transform(clip, transform)
    return item


def _plain(value: Any) -> Any:
    """A record value as a plain Python object: NA → None, numpy scalars → Python scalars."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


class VideoDataset(Dataset):
    """Clips of the videos in a record table.

    Items are dicts: ``video`` (T, 3, S, S) float32, normalised; ``index`` (int); ``video_id`` (str); and the
    record fields named in `fields`. An unreadable video with ``on_error="skip"`` gives an item whose ``video``
    is None and whose ``error`` is the reason (``"<file>: <reason>"``); :func:`collate_videos` drops it.

    Args:
        records: a table in the record schema (:mod:`vlstudy.data.schema`).
        num_frames: frames per clip (T); each task config sets its own (the official protocol values).
        mode: ``"train"`` (``rand`` frames, random crop and flip) or ``"eval"`` (``middle`` frames, resize).
        image_size: side S of the output frames.
        seed: base of every item's randomness (train mode), >= 0.
        cache: a frame cache built for the same records, num_frames and mode; frames then come from it.
        on_error: ``"skip"`` or ``"raise"`` for videos that cannot be read.
        fields: record columns copied into each item, e.g. ``("title", "label")`` or ``("captions",)``.
        backend: video backend when reading files (see :func:`~vlstudy.data.video.read_clip`).
    """

    def __init__(self, records: pd.DataFrame, num_frames: int, mode: Literal["train", "eval"], image_size: int,
                 seed: int = 0, cache: FrameCache | None = None, on_error: Literal["skip", "raise"] = "skip",
                 fields: Sequence[str] = (), backend: Backend = "auto"):
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        unknown = [f for f in fields if f not in RECORD_COLUMNS]
        if unknown:
            raise ValueError(f"fields: {unknown[0]!r} is not a record column (columns: {', '.join(RECORD_COLUMNS)})")
        records = validate_frame(records, where="VideoDataset records")
        self.num_frames, self.mode, self.seed, self.on_error, self.backend = num_frames, mode, seed, on_error, backend
        self.transform = TransformConfig(image_size=image_size)
        self.video_ids: list[str] = records["video_id"].tolist()
        self.video_paths: list[str] = records["video_path"].tolist()
        self.fields = {f: [_plain(v) for v in records[f]] for f in fields}
        self.cache = cache
        if cache is not None:
            self._check_cache(cache)
        self.epoch = 0

    def _check_cache(self, cache: FrameCache) -> None:
        config = cache.config
        if (config.num_frames, config.mode) != (self.num_frames, self.mode):
            raise ValueError(f"frame cache {cache.index_path} holds num_frames={config.num_frames}, "
                             f"mode={config.mode!r}; the dataset needs num_frames={self.num_frames}, "
                             f"mode={self.mode!r}")
        absent = [v for v in self.video_ids if v not in cache]
        if absent:
            raise ValueError(f"frame cache {cache.index_path} lacks video {absent[0]!r} "
                             f"({len(absent)} of {len(self.video_ids)} missing); build it from these records")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose randomness (and, through the loader, whose order) the next pass uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.video_ids)

    def item_rng(self, index: int) -> np.random.Generator:
        """The generator of item `index` in the current epoch."""
        return item_rng(self.seed, self.epoch, index)

    def _frames(self, index: int, rng: np.random.Generator | None) -> np.ndarray:
        """(T, H, W, 3) uint8 frames of item `index`, from the cache or the file."""
        if self.cache is not None:
            return self.cache.clip(self.video_ids[index], rng).frames
        sample = "rand" if self.mode == "train" else "middle"
        return read_clip(self.video_paths[index],
                         lambda vlen: sample_frame_indices(self.num_frames, vlen, sample, rng), self.backend).frames

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "video_id": self.video_ids[index]}
        item.update({name: values[index] for name, values in self.fields.items()})
        rng = self.item_rng(index) if self.mode == "train" else None
        return decode_item(item, lambda: self._frames(index, rng), self.mode, self.transform, rng, self.on_error)


def collate_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack readable items into a batch; drop and report skipped ones.

    Args:
        items: dataset items (``video`` (T, 3, S, S), or None for a skipped video).

    Returns:
        ``video`` (B, T, 3, S, S) float32 (None if every item was skipped: skip that step); every other field
        as a list of B values; ``skipped``: the video ids dropped; ``errors``: their reasons, naming the files.
    """
    kept = [item for item in items if item["video"] is not None]
    dropped = [item for item in items if item["video"] is None]
    keys = [k for k in items[0] if k not in ("video", "error")] if items else []
    batch: dict[str, Any] = {"video": torch.stack([item["video"] for item in kept]) if kept else None}
    batch.update({key: [item[key] for item in kept] for key in keys})
    batch["skipped"] = [item["video_id"] for item in dropped]
    batch["errors"] = [item["error"] for item in dropped]
    return batch


class SkipLog:
    """Every video skipped so far (video id → reason); logs each one once (``vlstudy.data`` logger, WARNING).

    Fed the batches of :func:`collate_videos`; batches of other collate functions (no ``skipped`` key) pass.
    """

    def __init__(self):
        self.skipped: dict[str, str] = {}

    def record(self, batch: Any) -> None:
        if not isinstance(batch, Mapping):
            return
        for video_id, error in zip(batch.get("skipped", ()), batch.get("errors", ())):
            if video_id not in self.skipped:
                self.skipped[video_id] = error
                logger.warning("skipping unreadable video %s (%s skipped so far): %s", video_id,
                               len(self.skipped), error)


class VideoLoader(DataLoader):
    """A DataLoader that counts skipped videos and logs each one once (:class:`SkipLog`).

    Attributes:
        skipped: video id → reason, for every video skipped so far by this loader.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip_log = SkipLog()

    @property
    def skipped(self) -> dict[str, str]:
        return self.skip_log.skipped

    def __iter__(self):
        for batch in super().__iter__():
            self.skip_log.record(batch)
            yield batch


def make_loader(dataset: VideoDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int,
                drop_last: bool, rank: int = 0, world_size: int = 1) -> VideoLoader:
    """A loader for one pass over `dataset` (epoch ``dataset.epoch``) with the trainer's
    :class:`~vlstudy.data.sampler.GlobalBatchSampler` and :func:`collate_videos`.

    Batches are the same for any `num_workers` (items carry their own randomness, order comes from the
    sampler). Call ``dataset.set_epoch(epoch)`` before each pass; workers are started anew for each pass (not
    persistent), so they see that epoch.

    Args:
        dataset: the dataset.
        batch_size: items per batch on this rank (global batch = batch_size * world_size).
        shuffle: permute each epoch.
        seed: base of the permutation.
        num_workers: loading processes (0: load in this process).
        drop_last: drop the last incomplete global batch (training).
        rank, world_size: this process's place in a distributed run.
    """
    sampler = GlobalBatchSampler(len(dataset), batch_size, seed=seed, epoch=getattr(dataset, "epoch", 0), rank=rank,
                                 world_size=world_size, shuffle=shuffle, drop_last=drop_last)
    return VideoLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_videos,
                       pin_memory=torch.cuda.is_available())
