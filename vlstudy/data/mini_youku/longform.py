"""Long multi-scene source videos with ground truth: the test bed of Panda-70M's splitting and captioning stages.

Panda-70M (Chen et al., CVPR 2024, Sec. 3.1) cuts long videos into semantically coherent clips, then captions each
clip from its frames and its metadata (title, description, subtitles). This module generates long videos whose
structure is known, deterministically from a seed, with the mini-Youku renderer
(:func:`vlstudy.data.mini_youku.render.render_events`) and its texts (:mod:`vlstudy.data.mini_youku.text`).

A source video is a sequence of **events**: one subject (a class of the mini-Youku world: its scene, its object and
the object's motion) filmed in one or more **shots** joined by hard cuts. Shots of an event differ in camera:
a new pan offset and pattern zoom (an "angle"), or a close-up of the object; a camera may also have other
lighting (exposure 1 or 0.5). Events are joined by a hard cut, a fade through black or a dissolve. Some events
are one long static shot (no camera or object motion, only sensor noise); some repeat an earlier event's subject
(``repeat_of``: the redundancy Panda's splitting removes). Inside a shot the camera pans, and sometimes zooms.

Designed properties (defaults; measured on the default set, seed 0: 20 videos, 854 s, 81 events, 130 shots, by
``benchmarks/panda_splitting.py``):

* **Event boundaries are visible**: consecutive events never share a scene; two textured scenes are >= 4 hue steps
  (96 degrees) apart, or one of them is the grey room. PySceneDetect's ContentDetector (threshold 25, 15 frames)
  fires within 1 s of 100 % of the hard cuts and of the fades between events, and of 47 % of the dissolves (a
  gradual change: the case Panda's 5 s pieces and transition filter exist for).
* **Within-event cuts are mostly detectable only with a lighting change**: a cut that also changes the exposure
  (1 <-> 0.5, probability ``p_relight``) scores 21-67 and is detected in 91 % of cases; a cut that keeps it
  (same scene, new pan, zoom or a close-up) scores 11-29 and is detected in 7 %.
* **Transitions last** ``transition_seconds`` per side (3-6 frames at 4 fps); the boundary of a fade or dissolve
  is its midpoint, exactly where the shot lengths put it.
* **Static events** last ``static_duration`` (longer than the 7 s after which Panda's cut detection splits a shot
  into 5 s pieces); frame-to-frame change is sensor noise only.
* **Shots last >= min_shot** (4 s), longer than PySceneDetect's minimum scene length of 15 frames (3.75 s at 4 fps).
* **Texts** per event, each with its relevance as ground truth: the source's title and description describe the
  main (longest moving) event, or with probability ``p_misleading_meta`` a class not in the video
  (``unrelated``); for other events they are ``other_event``. Subtitles are the event's own speech
  (``event``), chit-chat (``generic``), speech of a neighbouring event (``other_event``: misaligned in time) or of a
  class not in the video (``unrelated``), with probabilities ``subtitles``. ``misleading`` = other_event or
  unrelated. Each event has ``references`` paraphrased reference captions (subject, action, object, place).

Output of :func:`generate_longform`: ``videos/<video_id>.mp4`` and ``manifest.json`` (the configuration and, per
source, every event, shot, boundary and static segment in frames and seconds). Every random choice of source
``i`` comes from ``numpy.random.default_rng([seed, 7, i])``.

Written by hand because it *is* the data set: no library generates this world.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vlstudy.config import to_dict
from vlstudy.data.classes import CLASS_NAMES, NUM_CLASSES
from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.generate import CueConfig, _draw_cues  # one way to draw a subject's cues
from vlstudy.data.mini_youku.render import (DISTRACTOR_RGB, ENCODER_OPTIONS, OBJECT_RGB, ShotSpec, VideoSpec,
                                            render_events)
from vlstudy.data.mini_youku.world import CLASSES, SCENES
from vlstudy.data.video import write_video
from vlstudy.io import write_json

__all__ = ["LongformConfig", "plan_longform", "generate_longform", "TRANSITIONS", "RELEVANCE", "MIN_SCENE_GAP"]

log = logging.getLogger("vlstudy.data")

TRANSITIONS = ("cut", "fade", "dissolve")
RELEVANCE = ("event", "generic", "other_event", "unrelated")
MIN_SCENE_GAP = 4  # hue steps between the scenes of consecutive events (index distance; the grey room is -1)
_CHATTER = ("大家好，欢迎回来", "我们继续往下看", "记得点赞关注", "好的，那么接下来", "这个真的很有意思",
            "大家怎么看呢")


def _check_range(name: str, pair: tuple[float, float], low: float = 0.0) -> None:
    if not low <= pair[0] <= pair[1]:
        raise ValueError(f"{name} must satisfy {low} <= low <= high, got {pair}")


@dataclass
class LongformConfig:
    """Sizes and knobs of the long-form set (durations in seconds). Defaults: 20 videos of 30-60 s, 64 px, 4 fps."""

    seed: int = 0
    sources: int = 20
    duration: tuple[float, float] = (30.0, 60.0)
    frame_size: int = 64
    fps: int = 4
    event_duration: tuple[float, float] = (6.0, 15.0)
    static_duration: tuple[float, float] = (8.0, 14.0)
    min_shot: float = 4.0
    max_shots: int = 3
    transition_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)  # cut, fade, dissolve between events
    transition_seconds: tuple[float, float] = (0.75, 1.5)  # per side of the boundary
    p_static: float = 0.15
    p_repeat: float = 0.1
    p_closeup: float = 0.4
    p_relight: float = 0.6
    p_zoom: float = 0.3
    p_misleading_meta: float = 0.15
    subtitles: tuple[float, float, float, float] = (0.55, 0.2, 0.1, 0.15)  # event, generic, other_event, unrelated
    references: int = 4
    cues: CueConfig = field(default_factory=lambda: CueConfig(0.9, 0.8, 0.7, 0.3))

    def __post_init__(self):
        if self.frame_size % 2 or self.frame_size < 32:
            raise ValueError(f"frame_size must be even and >= 32 (H.264 yuv420p), got {self.frame_size}")
        for name in ("duration", "event_duration", "static_duration", "transition_seconds"):
            _check_range(name, getattr(self, name))
        if self.event_duration[0] < self.min_shot or self.duration[0] < self.event_duration[1]:
            raise ValueError("need min_shot <= event_duration low and event_duration high <= duration low, got "
                             f"{self.min_shot}, {self.event_duration}, {self.duration}")
        if 2 * self.transition_seconds[1] > self.min_shot:
            raise ValueError(f"transitions of {self.transition_seconds[1]} s per side do not fit shots of "
                             f"{self.min_shot} s")
        for name in ("p_static", "p_repeat", "p_closeup", "p_relight", "p_zoom", "p_misleading_meta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("transition_weights", "subtitles"):
            weights = np.asarray(getattr(self, name), float)
            if (weights < 0).any() or not weights.sum() > 0:
                raise ValueError(f"{name} must be non-negative weights with a positive sum, got {weights.tolist()}")
        if self.sources < 0 or self.references < 1 or self.max_shots < 1:
            raise ValueError("need sources >= 0, references >= 1 and max_shots >= 1")


def _scene_of(cues: T.Cues) -> int:
    return CLASSES[cues.label].scene if cues.scene_shown else -1


def _scenes_apart(a: int, b: int) -> bool:
    """Whether consecutive events with scenes `a` and `b` look different (module docstring)."""
    if a < 0 or b < 0:
        return a != b
    return abs(a - b) >= MIN_SCENE_GAP


def _subject(previous_scene: int | None, cfg: LongformConfig, rng: np.random.Generator) -> T.Cues:
    for _ in range(1000):
        cues = _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.cues, 0.0, rng)
        if previous_scene is None or _scenes_apart(previous_scene, _scene_of(cues)):
            return cues
    raise RuntimeError("could not draw a subject whose scene differs from the previous event's")


def _camera(n_frames: int, kind: str, exposure: float, cfg: LongformConfig, rng: np.random.Generator) -> ShotSpec:
    """One shot: ``wide`` / ``angle`` (object radius 4.5-7.5 px at 64 px), ``closeup`` (radius 12-14), ``static``."""
    s = cfg.frame_size
    closeup, static = kind == "closeup", kind == "static"
    speed, heading = rng.uniform(0.3, 0.7), rng.uniform(0, 2 * np.pi)  # pan, px per frame
    zoom_velocity = 0.0
    if not static and rng.random() < cfg.p_zoom:
        zoom_velocity = float(rng.uniform(0.004, 0.01) * rng.choice([-1, 1]))
    return ShotSpec(
        n_frames=n_frames, transition="cut",
        pan=(float(rng.uniform(0, 40)), float(rng.uniform(0, 40))),
        pan_velocity=(0.0, 0.0) if static else (float(speed * np.cos(heading)), float(speed * np.sin(heading))),
        zoom=float(rng.uniform(1.6, 1.9) if closeup else rng.uniform(0.85, 1.25)),
        center=(float(rng.uniform(0.4, 0.6) * s), float(rng.uniform(0.4, 0.55) * s)),
        amplitude=0.0 if static else float(rng.uniform(0.05, 0.1) * s if closeup else rng.uniform(0.15, 0.25) * s),
        period=float(rng.uniform(6, 16)), phase=float(rng.uniform(0, 2 * np.pi)),
        radius=float((rng.uniform(12, 14) if closeup else rng.uniform(4.5, 7.5)) * s / 64),
        zoom_velocity=zoom_velocity, exposure=exposure)


def _event_shots(n_frames: int, static: bool, cfg: LongformConfig,
                 rng: np.random.Generator) -> list[tuple[ShotSpec, str]]:
    """The shots of one event and their kinds: 1..max_shots shots of >= min_shot, the first one wide."""
    if static:
        return [(_camera(n_frames, "static", 1.0, cfg, rng), "static")]
    min_len = int(round(cfg.min_shot * cfg.fps))
    n_shots = max(1, min(int(rng.integers(1, cfg.max_shots + 1)), n_frames // min_len))
    extra = n_frames - n_shots * min_len
    lengths = [min_len + int(w) for w in np.floor(extra * rng.dirichlet(np.ones(n_shots)))]
    lengths[-1] += n_frames - sum(lengths)
    shots, exposure = [], 1.0
    for k, length in enumerate(lengths):
        kind = "wide" if k == 0 else ("closeup" if rng.random() < cfg.p_closeup else "angle")
        if k and rng.random() < cfg.p_relight:
            exposure = 1.5 - exposure  # 1.0 <-> 0.5: another camera's lighting
        shots.append((_camera(length, kind, exposure, cfg, rng), kind))
    return shots


def _lengths(total: int, cfg: LongformConfig, rng: np.random.Generator) -> list[tuple[int, bool]]:
    """(frames, static) of each event, filling `total` frames; the last event absorbs a short remainder."""
    out: list[tuple[int, bool]] = []
    min_event = int(round(cfg.event_duration[0] * cfg.fps))
    while total > 0:
        static = bool(rng.random() < cfg.p_static) and not (out and out[-1][1])
        low, high = cfg.static_duration if static else cfg.event_duration
        length = int(round(rng.uniform(low, high) * cfg.fps))
        if total - length < min_event:
            length = total
        out.append((length, static))
        total -= length
    return out


def _texts(events: list[dict], cfg: LongformConfig, rng: np.random.Generator) -> dict:
    """Title and description of the source; subtitles, references and relevance flags of each event (in place)."""
    labels = {e["cues"].label for e in events}
    moving = [e for e in events if not e["static"]] or events
    main = max(moving, key=lambda e: e["n_frames"])["cues"]
    outside = [c for c in range(NUM_CLASSES) if c not in labels]

    def stranger() -> T.Cues:
        return _draw_cues(int(rng.choice(outside)), cfg.cues, 0.0, rng)

    misleading_meta = bool(rng.random() < cfg.p_misleading_meta)
    meta_cues = stranger() if misleading_meta else main
    source = {"title": T.pool_title(meta_cues, rng), "description": T.description(meta_cues, rng),
              "meta_label": meta_cues.label, "meta_misleading": misleading_meta}
    weights = np.asarray(cfg.subtitles, float) / sum(cfg.subtitles)
    for k, event in enumerate(events):
        cues = event["cues"]
        meta = "event" if meta_cues.label == cues.label else ("other_event" if meta_cues.label in labels
                                                                else "unrelated")
        kind = RELEVANCE[int(rng.choice(len(RELEVANCE), p=weights))]
        neighbours = [events[j]["cues"] for j in (k - 1, k + 1)
                      if 0 <= j < len(events) and events[j]["cues"].label != cues.label]
        if kind == "other_event" and not neighbours:
            kind = "generic"
        if kind == "event":
            speech = T.subtitles(cues, rng)
        elif kind == "generic":
            speech = "\n".join(str(line) for line in rng.choice(_CHATTER, size=3, replace=False))
        else:
            speech = T.subtitles(neighbours[int(rng.integers(len(neighbours)))] if kind == "other_event"
                                 else stranger(), rng)
        event.update(title_relevance=meta, description_relevance=meta, subtitles=speech, subtitles_relevance=kind,
                     misleading={"title": meta in RELEVANCE[2:], "description": meta in RELEVANCE[2:],
                                 "subtitles": kind in RELEVANCE[2:]},
                     references=T.references(cues, rng, cfg.references))
    return source


def _plan_source(index: int, cfg: LongformConfig) -> tuple[dict, list[VideoSpec]]:
    """Ground truth (a JSON-ready dict) and the per-event specs of source `index`."""
    rng = np.random.default_rng([cfg.seed, 7, index])
    total = int(round(rng.uniform(*cfg.duration) * cfg.fps))
    transition_p = np.asarray(cfg.transition_weights, float) / sum(cfg.transition_weights)
    events: list[dict] = []
    specs: list[VideoSpec] = []
    for k, (length, static) in enumerate(_lengths(total, cfg, rng)):
        previous = _scene_of(events[-1]["cues"]) if events else None
        earlier = [j for j in range(k - 1) if _scenes_apart(previous, _scene_of(events[j]["cues"]))
                   and events[j]["repeat_of"] is None]
        repeat_of = int(rng.choice(earlier)) if earlier and rng.random() < cfg.p_repeat else None
        cues = events[repeat_of]["cues"] if repeat_of is not None else _subject(previous, cfg, rng)
        shots, kinds = zip(*_event_shots(length, static, cfg, rng))
        transition, frames = "none", 0
        if k:
            transition = TRANSITIONS[int(rng.choice(len(TRANSITIONS), p=transition_p))]
            if transition != "cut":
                frames = int(round(rng.uniform(*cfg.transition_seconds) * cfg.fps))
        shots = (replace(shots[0], transition=transition, transition_frames=frames), *shots[1:])
        colour = OBJECT_RGB[CLASSES[cues.label].look.colour] if cues.object_shown else DISTRACTOR_RGB
        brightness = specs[repeat_of].brightness if repeat_of is not None else float(rng.uniform(0.9, 1.1))
        specs.append(VideoSpec(scene=_scene_of(cues), shape=cues.shape, motion=cues.motion, colour=colour,
                               shots=shots, size=cfg.frame_size, fps=cfg.fps, brightness=brightness))
        events.append({"cues": cues, "n_frames": length, "static": static, "repeat_of": repeat_of,
                       "transition": transition, "transition_frames": frames, "shot_kinds": kinds})
    source = _texts(events, cfg, rng)
    return _ground_truth(index, cfg, source, events, specs), specs


def _span(start: int, end: int, fps: int) -> dict:
    return {"start_frame": start, "end_frame": end, "start": start / fps, "end": end / fps}


def _ground_truth(index: int, cfg: LongformConfig, source: dict, events: list[dict],
                  specs: list[VideoSpec]) -> dict:
    fps = cfg.fps
    out_events, shots, boundaries, static = [], [], [], []
    start = 0
    for k, (event, spec) in enumerate(zip(events, specs)):
        end = start + event["n_frames"]
        cues = event["cues"]
        if k:
            half = event["transition_frames"]
            boundaries.append({"frame": start, "time": start / fps, "level": "event",
                               "transition": event["transition"], "span": [start - half, start + half]})
        shot_start = start
        for j, (shot, kind) in enumerate(zip(spec.shots, event["shot_kinds"])):
            if j:
                boundaries.append({"frame": shot_start, "time": shot_start / fps, "level": "shot",
                                   "transition": "cut", "span": [shot_start, shot_start],
                                   "relit": spec.shots[j - 1].exposure != shot.exposure})
            shots.append({**_span(shot_start, shot_start + shot.n_frames, fps), "event": k, "kind": kind,
                          "exposure": shot.exposure, "zoom_velocity": shot.zoom_velocity})
            shot_start += shot.n_frames
        if event["static"]:
            static.append(_span(start, end, fps))
        out_events.append({
            "index": k, **_span(start, end, fps), "transition": event["transition"],
            "transition_frames": event["transition_frames"], "static": event["static"],
            "repeat_of": event["repeat_of"], "label": cues.label, "label_name": CLASS_NAMES[cues.label],
            "scene": SCENES[spec.scene].name if spec.scene >= 0 else "室内", "scene_index": spec.scene,
            "object": cues.object_words, "shape": cues.shape, "motion": cues.motion,
            "object_shown": cues.object_shown, "title": source["title"], "description": source["description"],
            **{key: event[key] for key in ("title_relevance", "description_relevance", "subtitles",
                                           "subtitles_relevance", "misleading", "references")},
        })
        start = end
    return {"video_id": f"long{index:04d}", "file": f"videos/long{index:04d}.mp4", "fps": fps, "n_frames": start,
            "duration": start / fps, "title": source["title"], "description": source["description"],
            "meta_label": source["meta_label"], "meta_misleading": source["meta_misleading"],
            "events": out_events, "shots": shots, "boundaries": boundaries, "static_segments": static}


def plan_longform(cfg: LongformConfig) -> list[tuple[dict, list[VideoSpec]]]:
    """Ground truth and event specs of every source, without rendering anything."""
    return [_plan_source(i, cfg) for i in range(cfg.sources)]


def generate_longform(cfg: LongformConfig, out_dir: str | Path) -> dict:
    """Render the long-form set into `out_dir` (``videos/*.mp4`` + ``manifest.json``) and return the manifest.

    Returns:
        ``{"generator", "config", "counts", "sources": [ground truth of each video]}``; each source lists its
        ``events``, ``shots``, ``boundaries`` (``level`` event or shot, ``transition``, ``span`` of frames) and
        ``static_segments``, in frames (``*_frame``, end exclusive) and seconds.
    """
    out = Path(out_dir)
    sources = []
    for i, (truth, specs) in enumerate(plan_longform(cfg)):
        frames = render_events(specs, noise_seed=int(np.random.default_rng([cfg.seed, 8, i]).integers(2**31)))
        assert len(frames) == truth["n_frames"], "rendered frame count differs from the plan"
        write_video(out / truth["file"], frames, cfg.fps, ENCODER_OPTIONS)
        sources.append(truth)
    events = [e for s in sources for e in s["events"]]
    manifest = {
        "generator": "vlstudy.data.mini_youku.longform", "config": to_dict(cfg),
        "counts": {"sources": len(sources), "events": len(events), "shots": sum(len(s["shots"]) for s in sources),
                   "static_events": sum(e["static"] for e in events),
                   "repeated_events": sum(e["repeat_of"] is not None for e in events),
                   "seconds": sum(s["duration"] for s in sources),
                   **{f"event_{t}": sum(e["transition"] == t for e in events) for t in TRANSITIONS}},
        "sources": sources,
    }
    write_json(out / "manifest.json", manifest)
    log.info("long-form set: %d videos, %d events, %.0f s in %s", len(sources), len(events),
             manifest["counts"]["seconds"], out)
    return manifest
