"""Video decoding: decord first, PyAV as the fallback.

(Minimal first version: the video I/O work extends it with frame sampling, transforms and caching.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VideoReadError", "VideoInfo", "video_info", "read_frames"]


class VideoReadError(RuntimeError):
    """A video that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0


def _pyav_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def video_info(path: str | Path) -> VideoInfo:
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "file not found")
    try:
        import decord

        vr = decord.VideoReader(str(path), num_threads=1)
        h, w = vr[0].shape[:2] if len(vr) else (0, 0)
        info = VideoInfo(len(vr), float(vr.get_avg_fps()), w, h)
    except Exception:
        try:
            frames = _pyav_frames(path)
        except Exception as e:
            raise VideoReadError(path, f"cannot decode ({type(e).__name__}: {e})") from e
        import av

        with av.open(str(path)) as c:
            fps = float(c.streams.video[0].average_rate or 0)
        h, w = frames[0].shape[:2] if frames else (0, 0)
        info = VideoInfo(len(frames), fps, w, h)
    if info.num_frames == 0:
        raise VideoReadError(path, "no frames")
    return info


def read_frames(path: str | Path, indices: list[int] | np.ndarray) -> np.ndarray:
    """Frames at `indices` as uint8 RGB, shape (T, H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "file not found")
    try:
        import decord

        vr = decord.VideoReader(str(path), num_threads=1)
        return vr.get_batch(list(indices)).asnumpy()
    except Exception:
        try:
            frames = _pyav_frames(path)
        except Exception as e:
            raise VideoReadError(path, f"cannot decode ({type(e).__name__}: {e})") from e
        if not frames:
            raise VideoReadError(path, "no frames")
        return np.stack([frames[min(int(i), len(frames) - 1)] for i in indices])
