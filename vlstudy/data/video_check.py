"""Which videos of a table can be read, checked before anything trains or evaluates on them.

The official Youku-mPLUG datasets (X-PLUG/Youku-mPLUG, ``dataset/video_downstream_datasets.py``) meet a bad file
only when an item is loaded: training silently substitutes the next video, evaluation crashes. The ``data``
stage checks instead, up front, and drops what cannot be read (`vlstudy.data.youku`), so every later stage sees
the same, reported set of videos. Two depths:

- ``exists``: the file is there (one ``stat``; cheap enough for every row of every split).
- ``decode``: the file opens with the decoders, has frames, and its first and last frames decode
  (`vlstudy.data.video.read_clip`: decord, PyAV as the fallback). Decoding the last frame catches truncated
  downloads, whose header promises more frames than the file holds. About 7 ms for a small clip; files are
  checked by up to ``workers`` processes.

A reason is the empty string for a readable video, else ``file not found``, ``no video frames`` or what the
decoders reported (`vlstudy.data.video.VideoReadError.reason`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
from tqdm import tqdm  # text bars: readable in terminals, logs and rendered notebooks alike

from vlstudy.data.video import VideoReadError, read_clip

__all__ = ["probe_video", "probe_videos"]


def _first_and_last(num_frames: int) -> np.ndarray:
    return np.array([0, num_frames - 1], dtype=np.int64)


def probe_video(path: str, decode: bool) -> str:
    """Why `path` cannot be read ('' when it can): existence only, or (``decode``) its first and last frames."""
    if not decode:
        return "" if os.path.isfile(path) else "file not found"
    try:
        read_clip(path, _first_and_last)
    except VideoReadError as error:
        return error.reason
    return ""


def probe_videos(paths: Sequence[str], decode: bool, workers: int = 2, desc: str = "check videos") -> list[str]:
    """`probe_video` over many files, in order; decoding uses up to `workers` processes and shows a progress bar.

    Returns:
        One reason per path ('' = readable).
    """
    if not decode:
        return [probe_video(p, False) for p in paths]
    work = partial(probe_video, decode=True)
    progress = partial(tqdm, total=len(paths), desc=desc, unit="video")
    if workers <= 1 or len(paths) < 2:
        return [work(p) for p in progress(paths)]
    with ProcessPoolExecutor(workers) as pool:
        return list(progress(pool.map(work, paths, chunksize=16)))
