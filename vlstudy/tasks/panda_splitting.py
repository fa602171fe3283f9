"""Panda-70M semantics-aware splitting on long videos (Chen et al., CVPR 2024, Sec. 3.1, Table 2).

The stage generates the long-form mini-Youku set (:mod:`vlstudy.data.mini_youku.longform`: multi-event videos
with known events, shots, transitions, static and repeated events), or reads a folder of real videos, and splits
every video by shot detection alone, by Panda's stitching (paper and released-code settings) and by fixed
windows (:mod:`vlstudy.panda.split_study`). The stitching embedder is the kit's own pre-trained video encoder by
default (``checkpoints/pretrain_mplug_video/model``; ImageBind in the paper), any local Hugging Face vision model
folder, or the parameter-free ``pixel_stats``. Each method gets Table 2's measures with 95 % intervals over videos:
boundary precision / recall / F1 (+-0.5 s) against the true event boundaries and clip purity (generated set only),
average clip length and Max Running LPIPS (with a random AlexNet unless ImageNet weights are given: then the label
says "not comparable with the paper"). The finding: does stitching give longer clips than shot detection at a
comparable Max Running LPIPS (:func:`vlstudy.panda.split_study.stitching_finding`)?

Outputs in ``paths.out``: ``clips.csv`` (every method's clips of every video, frames and seconds, with their Max
Running LPIPS) and ``per_video_<method>.csv`` (the per-video counts behind each interval). With the generated set,
``paths.data`` receives it (``videos/*.mp4`` + ``manifest.json``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import DegenerateDataWarning

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.mini_youku.longform import LongformConfig, generate_longform
from vlstudy.metrics.bootstrap import check_n_boot
from vlstudy.panda.embedders import load_embedder
from vlstudy.panda.lpips import load_lpips
from vlstudy.panda.split_quality import truth_from_source
from vlstudy.panda.split_study import (
    PAPER_ROWS,
    SHOT_DETECTION,
    STITCHING,
    keyframe_lpips,
    method_quality,
    split_methods,
    stitching_finding,
)
from vlstudy.panda.splitting import PAPER_SETTINGS, SplitSettings, split_video
from vlstudy.tasks.common import PhaseTimer, TaskPaths, TaskResult, interval_summary

__all__ = ["PandaSplittingParams", "VIDEO_SUFFIXES", "MEASURES", "list_videos", "look_inside", "table2", "run"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv")
MEASURES = {"precision": "boundary P", "recall": "boundary R", "F1": "boundary F1", "purity": "purity (%)",
            "mean_clip_seconds": "avg clip length (s)", "clip_score": "max running LPIPS"}


@dataclass
class PandaSplittingParams:
    """``panda_splitting`` (Panda-70M Table 2): split long videos four ways and compare the clips.

    Attributes:
        longform: the generated long-form set (sizes, probabilities; see vlstudy/data/mini_youku/longform.py).
        videos: a folder of real videos to split instead of the generated set (no ground truth: lengths and LPIPS
            only); null generates.
        embedder: stitching's frame embedder: a kit model folder (its video encoder), pixel_stats, or a local
            Hugging Face vision model folder.
        windows: lengths (s) of the content-blind fixed-window baselines.
        tolerance: seconds within which a predicted boundary matches a true one.
        lpips_alexnet: ImageNet AlexNet weights for LPIPS (safetensors or a state dict); null = a random AlexNet,
            labelled "not comparable with the paper".
        lpips_max_side: keyframes with a longer side are scaled down before LPIPS (real videos).
        lpips_margin: the largest Max Running LPIPS increase over shot detection, as a share of its value, that
            the finding still calls comparable.
        n_boot: bootstrap resamples (intervals over videos).
        seed: the generated set and the bootstrap.
    """

    longform: LongformConfig = field(default_factory=LongformConfig)
    videos: str | None = None
    embedder: str = "checkpoints/pretrain_mplug_video/model"
    windows: list[float] = field(default_factory=lambda: [5.0, 8.0])
    tolerance: float = 0.5
    lpips_alexnet: str | None = None
    lpips_max_side: int = 256
    lpips_margin: float = 0.1
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self):
        check_n_boot(self.n_boot)
        check_positive(self, "lpips_max_side")
        if any(w <= 0 for w in self.windows) or self.tolerance < 0 or not 0 <= self.lpips_margin:
            raise ValueError(f"windows must be > 0 s, tolerance and lpips_margin >= 0; got {self.windows}, "
                             f"{self.tolerance}, {self.lpips_margin}")


def list_videos(folder: str | Path) -> list[Path]:
    """The video files directly in `folder` (by suffix), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of videos")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not found:
        raise FileNotFoundError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return found


def _sources(config: PandaSplittingParams, data: Path) -> tuple[list[tuple[str, Path]], dict | None]:
    """(video id, file) of every video, and the long-form manifest (None for real videos)."""
    if config.videos is not None:
        return [(p.stem, p) for p in list_videos(config.videos)], None
    manifest = generate_longform(config.longform, data)
    return [(s["video_id"], data / s["file"]) for s in manifest["sources"]], manifest


def _clip_rows(splits, lpips: dict) -> pd.DataFrame:
    rows = [{"video_id": s.video_id, "method": m, "clip": k, "start_frame": a, "end_frame": b,
             "start": a / s.fps, "end": b / s.fps, "max_running_lpips": float(lpips[s.video_id][m][k])}
            for s in splits for m, (_, clips) in s.methods.items() for k, (a, b) in enumerate(clips)]
    return pd.DataFrame(rows)


def _event_seconds(manifest: dict | None) -> float | None:
    """The mean length of the true moving events of the generated set (None for real videos)."""
    if manifest is None:
        return None
    lengths = [e["end"] - e["start"] for s in manifest["sources"] for e in s["events"] if not e["static"]]
    return float(np.mean(lengths)) if lengths else None


def _finding(decision: dict, label: str, comparable_with_paper: bool, margin: float, shot_seconds: float,
             event_seconds: float | None) -> dict:
    note = (f"stitching minus shot detection: clip length {decision['ours']:+.2f} s [{decision['low']:.2f}, "
            f"{decision['high']:.2f}]; Max Running LPIPS {decision['lpips_increase']:+.3f} "
            f"[{decision['lpips_increase_low']:.3f}, {decision['lpips_increase_high']:.3f}], comparable if the upper "
            f"bound <= {decision['lpips_allowed']:.3f} ({margin:.0%} of shot detection's); paired bootstrap over "
            f"videos. Shot detection's clips last {shot_seconds:.1f} s on average"
            + (f" against true moving events of {event_seconds:.1f} s" if event_seconds else "")
            + f". {label}"
            + ("." if comparable_with_paper else " (its values order the methods; their scale is not the paper's)."))
    return {"claim": "stitching gives longer clips than shot detection at a comparable Max Running LPIPS",
            "ours": decision["ours"], "low": decision["low"], "high": decision["high"],
            "holds": decision["holds"], "note": note}


def look_inside(path: str | Path, embedder, settings: SplitSettings = PAPER_SETTINGS) -> pd.DataFrame:
    """One video's shots and the two distances stitching decides on, against the paper's thresholds.

    Returns:
        One row per shot: its span (s), the start-end feature distance (a transition above
        ``transition_threshold``), the distance from the previous shot's end (merged at or below
        ``merge_threshold``), and what stitching did with it.
    """
    result = split_video(path, embedder, settings)
    f = result.features
    kept = set(map(tuple, result.stitching.kept_shots))
    rows = []
    for k, (a, b) in enumerate(result.shots):
        inner = float(np.linalg.norm(f[k, 0] - f[k, 1]))
        gap = float(np.linalg.norm(f[k - 1, 1] - f[k, 0])) if k else float("nan")
        merged = k and (a, b) in kept and tuple(result.shots[k - 1]) in kept and gap <= settings.merge_threshold
        rows.append({"shot": k, "start_s": a / result.fps, "end_s": b / result.fps,
                     f"start-end distance (> {settings.transition_threshold}: transition)": round(inner, 3),
                     f"from previous end (<= {settings.merge_threshold}: merge)": round(gap, 3),
                     "stitching": "dropped (transition)" if (a, b) not in kept else
                     ("merged with the previous shot" if merged else "starts an event")})
    return pd.DataFrame(rows)


def table2(metrics: dict) -> pd.DataFrame:
    """Table 2 as numbers: one row per method, each measure's estimate, ``_low`` and ``_high`` (NaN when the
    measure needs ground truth the videos lack); ``paper_row``: the method's row in the paper's Table 2 (or None)."""
    rows = []
    for method, values in metrics["methods"].items():
        row = {"method": method, "n_clips": values["n_clips"]["estimate"]}
        for measure in MEASURES:
            entry = values.get(measure, {})
            for suffix, key in (("", "estimate"), ("_low", "low"), ("_high", "high")):
                row[measure + suffix] = entry.get(key, np.nan)
        row["paper_row"] = PAPER_ROWS.get(method)
        rows.append(row)
    return pd.DataFrame(rows)


def run(config: PandaSplittingParams, paths: TaskPaths) -> TaskResult:
    """Generate (or list) the videos, split them every way, measure, decide the finding; write the outputs."""
    timer = PhaseTimer()
    data, out = Path(paths.data), Path(paths.out)
    with timer("generate"):
        sources, manifest = _sources(config, data)
    truths = {s["video_id"]: truth_from_source(s) for s in manifest["sources"]} if manifest else None
    embedder = load_embedder(config.embedder)
    with timer("split"):
        splits = [split_methods(path, video_id, embedder, config.windows) for video_id, path in sources]
    lpips_model = load_lpips(config.lpips_alexnet, seed=config.seed)
    with timer("lpips"):
        lpips = {s.video_id: keyframe_lpips(s, lpips_model, config.lpips_max_side) for s in splits}
    methods = list(splits[0].methods) if splits else []
    with timer("evaluate"):
        results = {m: method_quality(splits, m, lpips, truths, config.tolerance) for m in methods}
        rng = np.random.default_rng(config.seed)
        with warnings.catch_warnings():  # purity or precision at 100 % on every resample: a point interval
            warnings.simplefilter("ignore", DegenerateDataWarning)
            metrics = {m: interval_summary(r, config.seed, config.n_boot) for m, r in results.items()}
        decision = stitching_finding(results[SHOT_DETECTION], results[STITCHING], rng, config.n_boot,
                                     config.lpips_margin)
        finding = _finding(decision, lpips_model.label, lpips_model.comparable_with_paper, config.lpips_margin,
                           results[SHOT_DETECTION].summary["mean_clip_seconds"], _event_seconds(manifest))
    with timer("write"):
        io.write_table(out / "clips.csv", _clip_rows(splits, lpips))
        for method, result in results.items():
            io.write_table(out / f"per_video_{method}.csv", result.per_item)
    return TaskResult(
        metrics={"methods": metrics, "findings": {"panda_stitching_longer_clips": finding}},
        protocol={"videos": len(sources), "source": config.videos or "generated long-form mini-Youku",
                  "seconds": round(sum(s.n_frames / s.fps for s in splits), 1), "embedder": config.embedder,
                  "lpips": lpips_model.label, "lpips_backbone": lpips_model.backbone,
                  "boundaries": f"against true event boundaries, +-{config.tolerance} s, one-to-one"
                  if truths else "no ground truth", "windows_s": config.windows,
                  "interval": f"95% bootstrap over videos ({config.n_boot})"},
        training={"comparable_with_paper": lpips_model.comparable_with_paper,
                  "n_clips": {m: int(r.summary["n_clips"]) for m, r in results.items()}},
        timings=timer.seconds)
