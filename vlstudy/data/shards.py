"""WebDataset shards: pack a record table and its videos into tar files, and stream them back split over ranks and
loader workers, with the frame sampling, transforms and bad-video accounting of `VideoDataset`.

Ten million videos as ten million files make a file system slow to list, copy and read at random; WebDataset
(Aizman et al. 2019, "High Performance I/O For Large Scale Deep Learning"; the ``webdataset`` package) stores
samples in POSIX tar files read sequentially. The files here are plain WebDataset shards: a sample is the members
sharing a key, ``<key>.json`` (the record, :mod:`vlstudy.data.schema` columns, plus ``index``) and
``<key>.<ext>`` (the video file's bytes, its own extension: ``mp4``, ``flv``); any WebDataset reader can open them.

Layout of a shard folder (`pack_shards`, ``python -m vlstudy.data.shards pack``)::

    shard-000000.tar     rows 0 .. shard_size-1 of the record table, in table order
    shard-000001.tar     ...
    shards.json          the index: every shard's name, first row and sample count (written last)

The key is the record's row, 9 digits (``000001234``), so a sample's place in its shard is known without reading
it. A video missing at packing time is packed as its record alone, with ``error`` set; the loader counts and
names it like an unreadable one. Shards are written by a pool of processes, each to a temporary name renamed into
place; ``shards.json`` last, so a folder without it is an unfinished pack. Bytes are reproducible (fixed mtime).

Loading (`ShardDataset`). Each epoch's order is the shards in a permutation drawn from
``default_rng([seed, epoch, ORDER_STREAM])`` (the sampler's stream), each shard's samples in key order. This
stream of N samples is cut into contiguous ranges, one per rank, then each rank's range into one per loader
worker, so every sample is read by exactly one worker of one rank. The remainder rule: with ``drop_last=True``
(training) every rank gets ``N // W`` samples and the last ``N % W`` of the epoch's order are left out of that
epoch (different ones each epoch, as the shard order changes): all ranks then run the same number of batches,
which DDP needs. With ``drop_last=False`` (evaluation) nothing is left out and the first ``N % W`` ranks get one
sample more. Worker ranges differ by at most one sample. Ranges are cut at sample, not shard, boundaries: a worker
reads only the shards its range touches, skipping (without copying) the members before its first sample.
Optionally a buffer of `shuffle_buffer` samples per worker mixes consecutive samples (seeded from seed, epoch,
rank and worker); then the order, not the set, depends on the number of workers.

Items are those of `VideoDataset` for the same record: frames chosen by `sample_frame_indices` and transformed
with the item's generator ``[seed, epoch, row, 1]``, so a shard item equals the `VideoDataset` item of the same
row bit for bit. Videos are decoded through a temporary file (in ``/dev/shm`` where it exists) with `read_clip`,
the same backends and fallback as the folder loader; decord's error log would otherwise print the whole bytes of
a corrupt in-memory video. `make_shard_loader` batches with `collate_videos` into a `VideoLoader`, whose `SkipLog`
counts the skipped videos and logs each once, naming the shard member and the file it was packed from.

The ``webdataset`` package writes the tars (``TarWriter``) and reads them (``tar_file_iterator``,
``group_by_keys``); its own shard-level splitting (``split_by_node`` / ``split_by_worker``) is not used, because
whole shards per rank cannot give every rank the same number of samples.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import IterableDataset, get_worker_info
from tqdm import tqdm
from webdataset import TarWriter
from webdataset.tariterators import group_by_keys, tar_file_iterator

from vlstudy import distributed
from vlstudy.data.datasets import VideoLoader, collate_videos, decode_item, item_rng
from vlstudy.data.sampler import ORDER_STREAM
from vlstudy.data.schema import RECORD_COLUMNS, read_table, validate_frame
from vlstudy.data.transforms import TransformConfig
from vlstudy.data.video import Backend, VideoReadError, read_clip, sample_frame_indices
from vlstudy.io import atomic_path, read_json, write_json

__all__ = ["INDEX_NAME", "ShardInfo", "ShardIndex", "pack_shards", "read_index", "epoch_ranges", "ShardDataset",
           "make_shard_loader"]

INDEX_NAME = "shards.json"
SHARD_FORMAT = 1
_BUFFER_STREAM = 3  # last seed word of a worker's shuffle buffer: [seed, epoch, rank, worker, 3]
_MTIME = 0.0        # tar member time: reproducible shard bytes


@dataclass(frozen=True)
class ShardInfo:
    """One tar file: its name in the folder, the table row of its first sample, its samples, its videos absent
    at packing time."""

    name: str
    start: int
    count: int
    missing: int = 0


@dataclass(frozen=True)
class ShardIndex:
    """The content of ``shards.json``: the shards in row order and the size they were cut at."""

    shards: tuple[ShardInfo, ...]
    shard_size: int

    @property
    def total(self) -> int:
        """Samples over all shards (N)."""
        return sum(s.count for s in self.shards)


def _key(row: int) -> str:
    return f"{row:09d}"


def _write_shard(task: tuple[Path, str, int, pd.DataFrame]) -> ShardInfo:
    """Write one tar of the records `table` (rows `start`...) to ``folder/name``; returns its index entry."""
    folder, name, start, table = task
    missing = 0
    with atomic_path(folder / name) as tmp, tmp.open("wb") as stream, TarWriter(stream, encoder=False,
                                                                                mtime=_MTIME) as tar:
        for offset, record in enumerate(table.to_dict("records")):
            meta = {column: _jsonable(record[column]) for column in RECORD_COLUMNS}
            sample = {"__key__": _key(start + offset)}
            path = Path(record["video_path"])
            if path.is_file():
                sample[path.suffix.lower().lstrip(".") or "video"] = path.read_bytes()
            else:
                meta["error"] = f"{path}: file not found"
                missing += 1
            meta["index"] = start + offset
            sample["json"] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
            tar.write(sample)
    return ShardInfo(name=name, start=start, count=len(table), missing=missing)


def _jsonable(value: Any) -> Any:
    """A record value as JSON: lists stay lists, NA and NaN become null, numpy scalars Python scalars."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def pack_shards(records: pd.DataFrame, out_dir: str | Path, shard_size: int, workers: int = 1,
                progress: bool = True) -> ShardIndex:
    """Pack a record table and its video files into WebDataset tar shards of `shard_size` samples.

    Args:
        records: a table in the record schema; ``video_path`` names each file (the keys are the rows).
        out_dir: the shard folder (created); an index already there is replaced at the end.
        shard_size: samples per shard (the last one may hold fewer). Shards of a few hundred MB to 1 GB suit
            sequential reads (a 720p Youku clip is ~2-10 MB, so ~100-500 videos per shard).
        workers: processes writing shards in parallel (reading the videos dominates).
        progress: show a progress bar over shards.

    Returns:
        The index, also written to ``out_dir/shards.json``.
    """
    if shard_size < 1 or workers < 1:
        raise ValueError(f"shard_size and workers must be >= 1, got {shard_size}, {workers}")
    records = validate_frame(records, where="pack_shards records")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_shards = math.ceil(len(records) / shard_size)
    tasks = ((out_dir, f"shard-{i:06d}.tar", i * shard_size, records.iloc[i * shard_size:(i + 1) * shard_size])
             for i in range(num_shards))
    pool = multiprocessing.get_context().Pool(workers) if workers > 1 else None
    try:
        written = pool.imap(_write_shard, tasks) if pool is not None else map(_write_shard, tasks)
        shards = list(tqdm(written, total=num_shards, desc="pack shards", unit="shard", disable=not progress,
                           mininterval=1.0))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    index = ShardIndex(shards=tuple(shards), shard_size=shard_size)
    write_json(out_dir / INDEX_NAME, {"format": SHARD_FORMAT, "shard_size": shard_size, "total": index.total,
                                      "shards": [asdict(s) for s in shards]})
    return index


def read_index(shard_dir: str | Path) -> ShardIndex:
    """The index of a shard folder.

    Raises:
        FileNotFoundError: no ``shards.json`` (not a shard folder, or packing did not finish).
        ValueError: an index of another format, or one whose shards do not follow each other row by row.
    """
    path = Path(shard_dir) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no shard index (not a shard folder, or pack_shards did not finish)")
    data = read_json(path)
    if data.get("format") != SHARD_FORMAT:
        raise ValueError(f"{path}: shard format {data.get('format')!r}; this code reads format {SHARD_FORMAT}")
    shards = tuple(ShardInfo(**s) for s in data["shards"])
    for before, after in pairwise(shards):
        if after.start != before.start + before.count:
            raise ValueError(f"{path}: shard {after.name} starts at row {after.start}, expected "
                             f"{before.start + before.count}")
    return ShardIndex(shards=shards, shard_size=data["shard_size"])


def epoch_ranges(total: int, world_size: int, num_workers: int, drop_last: bool) -> list[list[tuple[int, int]]]:
    """``[rank][worker] -> (first, end)``: positions in an epoch's stream of `total` samples read by each worker.

    Example (10 samples, 3 ranks, 2 workers): ``drop_last=True`` gives each rank 3 samples, ranges
    ``[[(0, 2), (2, 3)], [(3, 5), (5, 6)], [(6, 8), (8, 9)]]`` (position 9 left out); ``drop_last=False`` gives
    4, 3, 3: ``[[(0, 2), (2, 4)], [(4, 6), (6, 7)], [(7, 9), (9, 10)]]``.
    """
    if drop_last:
        per_rank = total // world_size
        rank_bounds = [r * per_rank for r in range(world_size + 1)]
    else:
        rank_bounds = [0, *np.cumsum([len(a) for a in np.array_split(np.arange(total), world_size)]).tolist()]
    out = []
    for first, end in pairwise(rank_bounds):
        sizes = [len(a) for a in np.array_split(np.arange(first, end), num_workers)]
        out.append(list(pairwise([first, *(first + np.cumsum(sizes)).tolist()])))
    return out


class ShardDataset(IterableDataset):
    """Streams the clips of a shard folder; items as `VideoDataset` items (see the module docstring).

    Args:
        shard_dir: a folder written by `pack_shards`.
        num_frames, mode, image_size, seed, on_error, fields, backend: as for `VideoDataset`.
        rank, world_size: this process's place; None reads them from the process group
            (`vlstudy.distributed`, 0 and 1 without one).
        shuffle: permute the shards each epoch (from seed and epoch); False keeps row order.
        drop_last: the remainder rule of the module docstring (True for training).
        shuffle_buffer: samples each worker mixes in a buffer (0: none).
    """

    def __init__(self, shard_dir: str | Path, num_frames: int, mode: Literal["train", "eval"], image_size: int,
                 seed: int = 0, on_error: Literal["skip", "raise"] = "skip", fields: Sequence[str] = (),
                 backend: Backend = "auto", rank: int | None = None, world_size: int | None = None,
                 shuffle: bool = True, drop_last: bool = True, shuffle_buffer: int = 0):
        unknown = [f for f in fields if f not in RECORD_COLUMNS]
        if unknown:
            raise ValueError(f"fields: {unknown[0]!r} is not a record column (columns: {', '.join(RECORD_COLUMNS)})")
        if mode not in ("train", "eval") or on_error not in ("skip", "raise") or num_frames < 1 or shuffle_buffer < 0:
            raise ValueError(f"bad settings: mode={mode!r}, on_error={on_error!r}, num_frames={num_frames}, "
                             f"shuffle_buffer={shuffle_buffer}")
        self.shard_dir = Path(shard_dir)
        self.index = read_index(shard_dir)
        self.num_frames, self.mode, self.seed, self.on_error, self.backend = num_frames, mode, seed, on_error, backend
        self.fields = tuple(fields)
        self.transform = TransformConfig(image_size=image_size)
        self.rank = distributed.rank() if rank is None else rank
        self.world_size = distributed.world_size() if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside [0, {self.world_size})")
        self.shuffle, self.drop_last, self.shuffle_buffer = shuffle, drop_last, shuffle_buffer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and item randomness the next pass uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples this rank reads per epoch (skipped videos included)."""
        return sum(end - first for first, end in epoch_ranges(self.index.total, self.world_size, 1,
                                                              self.drop_last)[self.rank])

    def shard_order(self) -> list[int]:
        """The shards of the current epoch, in reading order."""
        if not self.shuffle:
            return list(range(len(self.index.shards)))
        return np.random.default_rng([self.seed, self.epoch, ORDER_STREAM]).permutation(len(self.index.shards)).tolist()

    def _samples(self, first: int, end: int) -> Iterator[dict[str, Any]]:
        """The raw samples at stream positions [first, end) of this epoch: dicts with "json" and the video."""
        position = 0
        for s in self.shard_order():
            shard = self.index.shards[s]
            lo, hi = max(first - position, 0), min(end - position, shard.count)  # in-shard sample range
            position += shard.count
            if lo >= hi:
                continue
            wanted = {_key(shard.start + i) for i in range(lo, hi)}
            with (self.shard_dir / shard.name).open("rb") as stream:
                members = tar_file_iterator(stream,
                                            select_files=lambda name, keys=wanted: name.split(".", 1)[0] in keys)
                yield from group_by_keys({**member, "__url__": shard.name} for member in members)

    def _shuffled(self, samples: Iterator[dict], worker: int) -> Iterator[dict]:
        if self.shuffle_buffer == 0:
            yield from samples
            return
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, _BUFFER_STREAM])
        buffer: list[dict] = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        first, end = epoch_ranges(self.index.total, self.world_size, num_workers, self.drop_last)[self.rank][worker]
        spool_root = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryDirectory(prefix="vlstudy-shards-", dir=spool_root) as spool:
            for sample in self._shuffled(self._samples(first, end), worker):
                yield self._item(sample, Path(spool))

    def _item(self, sample: dict[str, Any], spool: Path) -> dict[str, Any]:
        meta = json.loads(sample["json"])
        index = meta["index"]
        item: dict[str, Any] = {"index": index, "video_id": meta["video_id"]}
        item.update({name: meta[name] for name in self.fields})
        rng = item_rng(self.seed, self.epoch, index) if self.mode == "train" else None
        video_ext = next((k for k in sample if not k.startswith("__") and k != "json"), None)
        name = f"{sample['__url__']}:{sample['__key__']}.{video_ext or 'json'} (packed from {meta['video_path']})"

        def frames() -> np.ndarray:
            if video_ext is None:
                raise VideoReadError(name, meta.get("error", "no video member"))
            path = spool / f"clip.{video_ext}"
            path.write_bytes(sample[video_ext])
            sample_mode = "rand" if self.mode == "train" else "middle"
            try:
                return read_clip(path, lambda vlen: sample_frame_indices(self.num_frames, vlen, sample_mode, rng),
                                 self.backend).frames
            except VideoReadError as error:  # the decoders' reason, naming the packed file instead of the spool
                raise VideoReadError(name, error.reason.replace(str(path), meta["video_path"])) from None

        return decode_item(item, frames, self.mode, self.transform, rng, self.on_error)


def make_shard_loader(dataset: ShardDataset, batch_size: int, num_workers: int) -> VideoLoader:
    """A loader for one pass over `dataset` (epoch ``dataset.epoch``): `collate_videos` batches of `batch_size`
    (each worker's last batch may be smaller), skipped videos counted and logged (`VideoLoader`). Call
    ``dataset.set_epoch(epoch)`` before each pass."""
    return VideoLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_videos,
                       pin_memory=torch.cuda.is_available())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m vlstudy.data.shards pack OUT_DIR (--table T.parquet | --youku ROOT --task T [--split S])``."""
    parser = argparse.ArgumentParser(prog="python -m vlstudy.data.shards", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="pack a record table and its videos into WebDataset shards")
    pack.add_argument("out_dir", type=Path)
    source = pack.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", type=Path, help="a prepared record table (Parquet, vlstudy.data.schema)")
    source.add_argument("--youku", type=Path, help="a folder in the official Youku-mPLUG layout (CSVs + videos/)")
    pack.add_argument("--task", default="pretrain", help="with --youku: pretrain, classification, ...")
    pack.add_argument("--split", default=None, help="with --youku: pool (pretrain), train, val or test")
    pack.add_argument("--shard-size", type=int, default=256, help="samples per shard")
    pack.add_argument("--workers", type=int, default=1, help="processes writing shards")
    args = parser.parse_args(argv)
    if args.table is not None:
        records = read_table(args.table)
    else:
        from vlstudy.data.youku import POOL, YoukuSourceConfig, load_split

        split = args.split or (POOL if args.task == "pretrain" else "train")
        records = load_split(YoukuSourceConfig(root=args.youku), args.task, split).records
    index = pack_shards(records, args.out_dir, args.shard_size, workers=args.workers)
    missing = sum(s.missing for s in index.shards)
    print(f"{args.out_dir}: {index.total} samples in {len(index.shards)} shards ({missing} videos missing)")


if __name__ == "__main__":
    main()
