"""mini-Youku's knobs: sizes, cue probabilities (they set the designed ceilings, see `world.py`) and defect rates.

The defaults are the default study's (params.yaml ``mini_youku`` gives the same values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CueConfig", "SplitCounts", "DefectRates", "MiniYoukuConfig"]


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


@dataclass
class CueConfig:
    """Probabilities that a video shows its scene / object and that its title carries wording / a keyword."""

    p_scene: float = 0.85
    p_object: float = 0.6
    p_group: float = 0.7
    p_keyword: float = 0.2

    def __post_init__(self):
        for k, v in vars(self).items():
            _check_prob(k, v)


@dataclass
class SplitCounts:
    train: int
    val: int
    test: int

    def __post_init__(self):
        for k, v in vars(self).items():
            if v < 0:
                raise ValueError(f"{k} must be >= 0, got {v}")


@dataclass
class DefectRates:
    """Share of the pre-training pool given each defect (disjoint)."""

    duplicate: float = 0.04
    mismatched_title: float = 0.04
    ad_title: float = 0.02
    meaningless_title: float = 0.02
    short_title: float = 0.015
    long_title: float = 0.015
    too_short: float = 0.015
    too_long: float = 0.015
    corrupt: float = 0.01

    def __post_init__(self):
        for k, v in vars(self).items():
            _check_prob(k, v)
        if sum(vars(self).values()) > 0.5:
            raise ValueError(f"defect rates sum to {sum(vars(self).values()):.2f}; at most 0.5 of the pool")


@dataclass
class MiniYoukuConfig:
    """Sizes and knobs of mini-Youku. The defaults make the whole default study run in minutes on 2 cores."""

    seed: int = 0
    frame_size: int = 64
    fps: int = 4
    pool_videos: int = 3000
    classification_per_class: SplitCounts = field(default_factory=lambda: SplitCounts(10, 30, 5))
    captioning: SplitCounts = field(default_factory=lambda: SplitCounts(900, 225, 90))
    retrieval: SplitCounts = field(default_factory=lambda: SplitCounts(900, 300, 90))
    clips_per_source: tuple[int, int] = (2, 3)
    references: int = 4
    pool_duration: tuple[float, float] = (10.0, 30.0)
    benchmark_duration: tuple[float, float] = (10.0, 20.0)
    clip_duration: tuple[float, float] = (4.0, 8.0)
    corpus_videos: int = 2000
    classification_cues: CueConfig = field(default_factory=CueConfig)
    content_cues: CueConfig = field(default_factory=lambda: CueConfig(0.9, 0.8, 0.7, 0.3))
    defects: DefectRates = field(default_factory=DefectRates)
    object_radius: tuple[float, float] = (4.5, 7.5)
    scene_text: float = 0.3
    fade: float = 0.3
    night: float = 0.15
    max_shots: int = 3
    workers: int = 2

    def __post_init__(self):
        for name in ("scene_text", "fade", "night"):
            _check_prob(name, getattr(self, name))
        if self.frame_size % 2 or self.frame_size < 32:
            raise ValueError(f"frame_size must be even and >= 32 (H.264 yuv420p), got {self.frame_size}")
        lo, hi = self.clips_per_source
        if not 1 <= lo <= hi:
            raise ValueError(f"clips_per_source must be 1 <= low <= high, got {self.clips_per_source}")
        if self.references < 1:
            raise ValueError(f"references must be >= 1, got {self.references}")
