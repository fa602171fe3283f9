"""Rendering mini-Youku videos: textured scenes, a moving shape, shots with cuts, fades and dissolves, scene text.

A :class:`VideoSpec` fully describes a video (every random choice is drawn when the spec is made), so that
rendering is a pure function ``spec → frames`` and a duplicate can be rendered from its original's spec with
small perturbations. Frames are uint8 RGB arrays (T, H, W, 3), encoded with
:func:`vlstudy.data.video.write_video` using ``ENCODER_OPTIONS`` (one thread, so the bytes are reproducible).

Written by hand because it *is* the dataset: no library draws this world.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from vlstudy.data.mini_youku.world import COLOURS, DISTRACTOR_COLOUR, NEUTRAL_SCENE, SCENES, Scene

__all__ = ["ShotSpec", "VideoSpec", "render", "render_events", "ENCODER_OPTIONS"]


@dataclass(frozen=True)
class ShotSpec:
    """One shot: its length, how it begins, the camera and the object's path."""

    n_frames: int
    transition: str  # how the shot begins: "none" (first shot) | "cut" | "fade" | "dissolve"
    pan: tuple[float, float]  # camera offset (px) at the shot start
    pan_velocity: tuple[float, float]  # px per frame
    zoom: float  # pattern scale factor
    center: tuple[float, float]  # object path centre (x, y) in px
    amplitude: float  # path amplitude in px
    period: float  # path period in frames
    phase: float  # radians
    radius: float  # object half-size in px
    text: str | None = None  # scene text shown in the lower band of this shot, if any
    zoom_velocity: float = 0.0  # change of `zoom` per frame (a camera zoom); 0 keeps the zoom fixed
    transition_frames: int = 0  # frames of a fade / dissolve on each side of the boundary (0: the 2-frame fade)
    exposure: float = 1.0  # gain on this shot's picture (another camera's lighting)


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render a video. ``scene`` is an index into SCENES, or -1 for the neutral room."""

    scene: int
    shape: str
    motion: str
    colour: tuple[int, int, int]
    shots: tuple[ShotSpec, ...]
    size: int = 64
    fps: int = 4
    brightness: float = 1.0
    noise_seed: int = 0
    noise_std: float = 2.0
    shift: tuple[int, int] = (0, 0)  # duplicate perturbation: whole-frame shift in px
    trim: tuple[int, int] = (0, 0)  # duplicate perturbation: frames dropped at (start, end)
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.shots) - self.trim[0] - self.trim[1]

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def perturbed(self, rng: np.random.Generator) -> VideoSpec:
        """A near-duplicate: shifted by 1-3 px, brightness +-10%, up to 1 s trimmed at either end, new noise."""
        shift = tuple(int(v) * int(rng.choice([-1, 1])) for v in rng.integers(1, 4, size=2))
        trim = tuple(int(v) for v in rng.integers(0, self.fps + 1, size=2))
        return replace(self, shift=shift, trim=trim, brightness=self.brightness * float(rng.uniform(0.9, 1.1)),
                       noise_seed=int(rng.integers(2**31)))


def _background(scene: Scene, shot: ShotSpec, size: int) -> np.ndarray:
    """(T, H, W, 3) float background of one shot, with the camera panning."""
    t = np.arange(shot.n_frames, dtype=np.float32)[:, None, None]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    zoom = shot.zoom + shot.zoom_velocity * t if shot.zoom_velocity else shot.zoom  # (T, 1, 1) or a number
    x = (x[None] + shot.pan[0] + shot.pan_velocity[0] * t) / zoom
    y = (y[None] + shot.pan[1] + shot.pan_velocity[1] * t) / zoom
    p = scene.period
    if scene.pattern == "hstripes":
        w = np.sin(2 * np.pi * y / p)
    elif scene.pattern == "vstripes":
        w = np.sin(2 * np.pi * x / p)
    elif scene.pattern == "checker":
        w = np.sin(np.pi * x / p) * np.sin(np.pi * y / p)
    elif scene.pattern == "diagonal":
        w = np.sin(2 * np.pi * (x + y) / (p * 1.4))
    elif scene.pattern == "rings":
        w = np.sin(2 * np.pi * np.hypot(x - 32 / zoom, y - 32 / zoom) / p)
    else:  # flat: a soft vertical gradient
        w = (y - y.mean()) / (size * 2)
    w = (np.clip(w * 1.5, -1, 1) + 1) / 2  # (T, H, W) in [0, 1]
    a = np.asarray(scene.colour_a, np.float32)
    b = np.asarray(scene.colour_b, np.float32)
    return a * w[..., None] + b * (1 - w[..., None])


def _object_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "disc":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return np.maximum(ax, ay) <= r * 0.85
    if shape == "triangle":  # apex up
        return (dy <= r * 0.8) & (dy >= -r) & (ax <= (dy + r) * 0.55)
    if shape == "cross":
        return ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r))
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (r * 0.55) ** 2)
    raise ValueError(f"unknown shape {shape!r}")


def _object_path(motion: str, shot: ShotSpec) -> tuple[np.ndarray, np.ndarray]:
    """Object centre per frame: bounce moves only vertically, slide only horizontally, orbit on a circle."""
    angle = 2 * np.pi * np.arange(shot.n_frames) / shot.period + shot.phase
    cx, cy = shot.center
    if motion == "bounce":
        return np.full(shot.n_frames, cx), cy - shot.amplitude * np.abs(np.sin(angle)) + shot.amplitude / 2
    if motion == "slide":
        return cx + shot.amplitude * np.sin(angle), np.full(shot.n_frames, cy)
    if motion == "orbit":
        return cx + shot.amplitude * np.cos(angle), cy + shot.amplitude * np.sin(angle)
    raise ValueError(f"unknown motion {motion!r}")


@lru_cache(maxsize=256)
def _text_bitmap(text: str, height: int, width: int) -> np.ndarray:
    """(height, width) float alpha mask of `text` in the kit's CJK font, centred."""
    from PIL import Image, ImageDraw, ImageFont

    from vlstudy.plotting import cjk_font_path

    font = ImageFont.truetype(str(cjk_font_path()), size=max(height - 2, 6))
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top), text, fill=255, font=font)
    return np.asarray(img, np.float32) / 255.0


def _render_shot(spec: VideoSpec, shot: ShotSpec) -> np.ndarray:
    scene = NEUTRAL_SCENE if spec.scene < 0 else SCENES[spec.scene]
    frames = _background(scene, shot, spec.size)  # (T, H, W, 3)
    y, x = np.mgrid[0:spec.size, 0:spec.size].astype(np.float32)
    xs, ys = _object_path(spec.motion, shot)
    colour = np.asarray(spec.colour, np.float32)
    for t in range(shot.n_frames):
        mask = _object_mask(spec.shape, x - xs[t], y - ys[t], shot.radius)
        frames[t][mask] = colour
    if shot.text:
        band = max(spec.size // 6, 9)
        alpha = _text_bitmap(shot.text, band, spec.size)[None, :, :, None]
        lower = frames[:, -band:]
        frames[:, -band:] = lower * 0.35 * (1 - alpha) + 255.0 * alpha
    if shot.exposure != 1.0:
        frames *= np.float32(shot.exposure)
    return frames


def _shot_window(shot: ShotSpec, start: int, n_frames: int) -> ShotSpec:
    """The same camera and object path, frames ``[start, start + n_frames)`` of it (`start` may be negative)."""
    return replace(shot, n_frames=n_frames,
                   pan=(shot.pan[0] + shot.pan_velocity[0] * start, shot.pan[1] + shot.pan_velocity[1] * start),
                   zoom=shot.zoom + shot.zoom_velocity * start, phase=shot.phase + 2 * np.pi * start / shot.period)


def _join(before: np.ndarray, shot: ShotSpec, after: np.ndarray, continued: Callable[[int], np.ndarray],
          started_early: Callable[[int], np.ndarray]) -> None:
    """Apply the transition into `shot` in place: `before` = the previous shot's frames, `after` = this shot's.

    ``fade`` without ``transition_frames``: the original 2-frame dip to black. ``fade`` with k frames: a linear
    ramp to black over the last k frames of the previous shot and back over the first k of this one.
    ``dissolve`` with k frames (default 2): over the 2k frames around the boundary the picture blends linearly
    from the previous shot, continued past its end (``continued(k)``: its next k frames), to this one, started
    k frames early (``started_early(k)``); the blend is half way exactly at the boundary.
    """
    k = shot.transition_frames
    if shot.transition == "fade" and not k:  # fade through black over 2 frames out and 2 frames in
        ramp = np.array([0.15, 0.55], np.float32)[:, None, None, None]
        before[-2:] *= ramp[::-1]
        after[:2] *= ramp
        return
    k = k or 2
    if k > min(len(before), len(after)):
        raise ValueError(f"a {shot.transition} of {k} frames needs shots of >= {k} frames on both sides, got "
                         f"{len(before)} and {len(after)}")
    if shot.transition == "fade":
        ramp = (np.arange(1, k + 1, dtype=np.float32) / (k + 1))[:, None, None, None]  # (k, 1, 1, 1)
        before[-k:] *= ramp[::-1]
        after[:k] *= ramp
    else:  # dissolve
        outgoing = np.concatenate([before[-k:], continued(k)])  # (2k, H, W, 3)
        incoming = np.concatenate([started_early(k), after[:k]])
        alpha = ((np.arange(2 * k, dtype=np.float32) + 0.5) / (2 * k))[:, None, None, None]
        blend = (1 - alpha) * outgoing + alpha * incoming
        before[-k:], after[:k] = blend[:k], blend[k:]


def _window(spec: VideoSpec, shot: ShotSpec, start: int, n_frames: int, gain: np.float32 | None) -> np.ndarray:
    """Float frames ``[start, start + n_frames)`` of `shot` (times `gain` if given)."""
    frames = _render_shot(spec, _shot_window(shot, start, n_frames))
    return frames if gain is None else frames * gain


def _shots(spec: VideoSpec, gain: np.float32 | None = None) -> list[np.ndarray]:
    """Float frames of each shot of `spec` (times `gain` if given), with the transitions between them applied."""
    shots: list[np.ndarray] = []
    for k, shot in enumerate(spec.shots):
        frames = _render_shot(spec, shot)
        if gain is not None:
            frames *= gain
        if shots and shot.transition in ("fade", "dissolve"):
            previous = spec.shots[k - 1]
            _join(shots[-1], shot, frames, lambda n, p=previous: _window(spec, p, p.n_frames, n, gain),
                  lambda n, s=shot: _window(spec, s, -n, n, gain))
        shots.append(frames)
    return shots


def _finish(video: np.ndarray, noise_seed: int, noise_std: float) -> np.ndarray:
    """`video` with the luma noise of `noise_seed` added in place (float; quantised by the caller)."""
    rng = np.random.default_rng(noise_seed)
    video += noise_std * rng.standard_normal(size=(*video.shape[:3], 1), dtype=np.float32)  # luma noise
    return video


def render(spec: VideoSpec) -> np.ndarray:
    """Render a video: (T, H, W, 3) uint8, with fades and dissolves between shots where the spec asks for them."""
    video = _finish(np.concatenate(_shots(spec)) * spec.brightness, spec.noise_seed, spec.noise_std)
    if spec.shift != (0, 0):
        video = np.roll(video, shift=spec.shift, axis=(2, 1))
    start, end = spec.trim
    video = video[start: len(video) - end]
    return np.clip(video, 0, 255).astype(np.uint8)


def render_events(events: Sequence[VideoSpec], noise_seed: int, noise_std: float = 2.0) -> np.ndarray:
    """Render several specs back to back as one video: (sum of their frames, H, W, 3) uint8.

    Each spec is an event with its own scene, object and brightness; the first shot of each later spec says how
    the event begins (``cut``, ``fade`` or ``dissolve``, over its ``transition_frames``), and that transition
    joins it to the previous event exactly as transitions join shots within a spec. The luma noise is drawn
    once for the whole video from `noise_seed`; the specs' own noise, shift and trim are not used.
    """
    if not events:
        raise ValueError("render_events needs at least one event")
    sizes = {(spec.size, spec.fps) for spec in events}
    if len(sizes) > 1:
        raise ValueError(f"events differ in (frame size, fps): {sorted(sizes)}")
    parts: list[np.ndarray] = []
    for k, spec in enumerate(events):
        shots = _shots(spec, np.float32(spec.brightness))
        first = spec.shots[0]
        if parts and first.transition in ("fade", "dissolve"):
            before, last = events[k - 1], events[k - 1].shots[-1]
            _join(parts[-1], first, shots[0],
                  lambda n: _window(before, last, last.n_frames, n, np.float32(before.brightness)),  # noqa: B023
                  lambda n: _window(spec, first, -n, n, np.float32(spec.brightness)))  # noqa: B023 (called now)
        parts.extend(shots)
    return np.clip(_finish(np.concatenate(parts), noise_seed, noise_std), 0, 255).astype(np.uint8)


ENCODER_OPTIONS = {"preset": "ultrafast", "threads": "1", "crf": "26"}
DISTRACTOR_RGB = DISTRACTOR_COLOUR[1]
OBJECT_RGB = {k: v[1] for k, v in COLOURS.items()}
