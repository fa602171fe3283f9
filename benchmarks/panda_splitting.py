"""Panda-70M splitting on the long-form mini-Youku set: generation time, designed properties, splitting quality.

Prints, for one generated set (default: the default :class:`LongformConfig`, seed 0):

1. generation time (plan + render + H.264 + manifest);
2. the designed properties stated in ``vlstudy/data/mini_youku/longform.py``: the share of true boundaries that
   PySceneDetect's ContentDetector (threshold 25, 15 frames) fires within 1 s of, by kind (event cut / fade /
   dissolve, within-event cut with and without a lighting change), and ContentDetector's frame scores at
   within-event cuts;
3. splitting quality against the ground truth (``vlstudy.panda.split_quality``): boundary precision / recall /
   F1 at +-0.5 s against event boundaries, purity, event coverage, mean clip length, static time in clips,
   repeated clips and
   Max Running LPIPS (mean over clips), for PySceneDetect alone, the official cut detection (+ 5 s pieces),
   stitching with the paper's and the released code's settings (boundaries of the stitched events, the rest on
   the final clips) and fixed windows. The frame embedder is the fixed pixel-statistics one; LPIPS uses a random
   AlexNet unless ``--alexnet`` names the ImageNet weights (the printed label says which).

Usage:
    python benchmarks/panda_splitting.py [--sources 20] [--seed 0] [--out DIR] [--alexnet PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vlstudy.data.mini_youku.longform import LongformConfig, generate_longform
from vlstudy.data.video import read_frames
from vlstudy.panda.embedders import PixelStatsEmbedder
from vlstudy.panda.lpips import load_lpips, max_running_lpips
from vlstudy.panda.split_quality import split_quality, truth_from_source
from vlstudy.panda.splitting import (PAPER_SETTINGS, RELEASED_SETTINGS, Segment, cut_long_shots, detect_scenes,
                                     fixed_windows, split_video)


def detection_rates(manifest: dict, root: Path) -> None:
    """How often ContentDetector fires within 1 s of each kind of true boundary, and its within-event scores."""
    from scenedetect import ContentDetector
    from scenedetect.common import FrameTimecode

    hits: dict[str, list[bool]] = {}
    scores: dict[str, list[float]] = {"relit": [], "same light": []}
    for source in manifest["sources"]:
        scenes, fps = detect_scenes(root / source["file"])
        cuts = np.array([s.start for s in scenes[1:]], dtype=float)
        frames = read_frames(root / source["file"], np.arange(source["n_frames"]))
        detector = ContentDetector(threshold=25, min_scene_len=15)
        frame_scores = [detector._calculate_frame_score(FrameTimecode(t, fps), np.ascontiguousarray(f[..., ::-1]))
                        for t, f in enumerate(frames)]
        for b in source["boundaries"]:
            kind = f"event {b['transition']}" if b["level"] == "event" else \
                ("shot, relit" if b["relit"] else "shot, same light")
            hits.setdefault(kind, []).append(bool(len(cuts) and np.abs(cuts - b["frame"]).min() <= fps))
            if b["level"] == "shot":
                scores["relit" if b["relit"] else "same light"].append(frame_scores[b["frame"]])
    print("ContentDetector fires within 1 s of:")
    for kind, values in sorted(hits.items()):
        print(f"  {kind:18s} {100 * np.mean(values):5.1f} % of {len(values)}")
    for kind, values in scores.items():
        if values:
            print(f"  within-event cut score, {kind}: {min(values):.1f}-{max(values):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for the set (default: a temporary one)")
    parser.add_argument("--alexnet", type=Path, default=None, help="ImageNet AlexNet weights for LPIPS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        start = time.perf_counter()
        manifest = generate_longform(LongformConfig(seed=args.seed, sources=args.sources), root)
        print(f"generated {manifest['counts']} in {time.perf_counter() - start:.1f} s")
        detection_rates(manifest, root)

        embedder, lpips = PixelStatsEmbedder(), load_lpips(args.alexnet)
        truths = {s["video_id"]: truth_from_source(s) for s in manifest["sources"]}
        frames = {s["video_id"]: read_frames(root / s["file"], np.arange(s["n_frames"])) for s in manifest["sources"]}
        start = time.perf_counter()
        results = {name: {s["video_id"]: split_video(root / s["file"], embedder, settings)
                          for s in manifest["sources"]} for name, settings in
                   (("paper", PAPER_SETTINGS), ("released", RELEASED_SETTINGS))}
        print(f"split {2 * len(truths)} videos in {time.perf_counter() - start:.1f} s")
        paper = results["paper"]
        rows = {
            "PySceneDetect": ({v: r.scenes for v, r in paper.items()},) * 2,
            "cut detection (+5 s pieces)": ({v: cut_long_shots(r.scenes, r.fps) for v, r in paper.items()},) * 2,
            "stitching, paper settings": ({v: r.stitching.events for v, r in paper.items()},
                                          {v: r.clips for v, r in paper.items()}),
            "stitching, released code": ({v: r.stitching.events for v, r in results["released"].items()},
                                         {v: r.clips for v, r in results["released"].items()}),
        }
        for window in (5.0, 8.0):
            windows = {v: fixed_windows(r.n_frames, r.fps, window) for v, r in paper.items()}
            rows[f"fixed {window:g} s windows"] = (windows, windows)
        print(f"\nagainst event boundaries (+-0.5 s); Max Running LPIPS label: {lpips.label}")
        print(f"{'method':30s} {'P':>6s} {'R':>6s} {'F1':>6s} {'purity':>7s} {'cover':>6s} {'len s':>6s} "
              f"{'clips':>6s} {'static%':>8s} {'repeat':>6s} {'MR-LPIPS':>9s}")
        for name, (boundary_segments, clips) in rows.items():
            fps = {v: paper[v].fps for v in truths}
            seconds = {v: [Segment(*s).seconds(fps[v]) for s in segs] for v, segs in boundary_segments.items()}
            clip_seconds = {v: [Segment(*s).seconds(fps[v]) for s in segs] for v, segs in clips.items()}
            lpips_values = {v: max_running_lpips([frames[v][s:e] for s, e in clips[v]], fps[v], lpips).values
                            for v in truths}
            s = split_quality(seconds, clip_seconds, truths, clip_scores=lpips_values).summary
            print(f"{name:30s} {s['precision']:6.1f} {s['recall']:6.1f} {s['F1']:6.1f} {s['purity']:7.1f} "
                  f"{s['event_coverage']:6.1f} {s['mean_clip_seconds']:6.2f} {s['n_clips']:6d} {s['static_in_clips']:8.1f} "
                  f"{s['n_repeated_clips']:6d} {s['clip_score']:9.3f}")


if __name__ == "__main__":
    main()
