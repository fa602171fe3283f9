"""Instructions grounded in mini-Youku's truth: what to ask about a video, and what a correct answer must state.

Youku-mPLUG (Xu et al., 2023, arXiv 2306.04362) §5.4 and appendix A (Figs. 6–8) ask models Chinese instructions
about a video — describe it (Fig. 6, "这个视频片段讲了什么?"), read its scene text (Fig. 7), name what is in it
(Fig. 8) — and raters grade the answers A–D. On mini-Youku every video's content is known
(:mod:`vlstudy.data.mini_youku.generate`, ``ground_truth.csv``), so each instruction here carries its checklist:
the facts (:class:`Fact`) a correct answer must state, plus a reference answer that states them. The rubric
(:mod:`vlstudy.humaneval.rubric`) grades an answer against that checklist. The official repository
(X-PLUG/Youku-mPLUG) releases neither the paper's 65 instructions nor its grading, so the templates here are
written after the figures' questions.

The truth of a video (:class:`VideoTruth`) is read from the generator's ground-truth table (columns ``label``,
``scene_shown``, ``object_shown``, ``shape``, ``motion``, ``scene_text``) and the fixed world
(:mod:`vlstudy.data.mini_youku.world`): category, subject and activity of the class, the object's colour, shape
and motion as shown (a grey distractor when the class's object is not shown), the place (``室内`` when the scene
is not shown), the scene text, and the intent of VideoMind's intent layer ("[主体]通过[动作]旨在[意图]").

Aspects (:data:`GROUNDED_ASPECTS`) and the facts each one asks:

=============  ===================================================
overall        subject, activity, colour, shape, motion, place
action         subject, activity
object         colour, shape, motion
scene          place
scene_text     scene_text (only videos that show scene text)
category       category
intent         subject, activity, intent
=============  ===================================================

The *key* fact of an aspect (:data:`KEY_SLOTS`: activity for action, intent for intent) is what the question is
about: leaving it out is a significant error for the rubric, not a minor omission.

Every aspect has two disjoint template sets: ``eval`` (the rating package: :func:`sample_grounded_items`) and
``train`` (the instruction-tuning pairs: :func:`instruction_pairs`), so the evaluation stays zero-shot in its
wording, as the paper's instructions were not among its models' training instructions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.world import CLASSES, COLOURS, DISTRACTOR_COLOUR, MOTIONS, SHAPES
from vlstudy.humaneval.protocol import EvalItem, ProtocolConfig, draw_videos

__all__ = ["SLOTS", "GROUNDED_ASPECTS", "ASPECT_SLOTS", "KEY_SLOTS", "TRUTH_COLUMNS", "Fact", "VideoTruth", "GroundedItem",
           "InstructionPair", "InstructionPairsConfig", "read_truth", "templates", "applicable_aspects",
           "reference_answer", "ground", "sample_grounded_items", "instruction_pairs"]

SLOTS: tuple[str, ...] = ("category", "subject", "activity", "colour", "shape", "motion", "place", "scene_text",
                          "intent")
"""The kinds of fact the truth knows about a video."""

GROUNDED_ASPECTS: dict[str, str] = {
    "overall": "整体描述", "action": "人物动作", "object": "物体细节", "scene": "场景背景",
    "scene_text": "画面文字", "category": "类目", "intent": "意图",
}
"""The aspects of grounded instructions (key → Chinese label)."""

ASPECT_SLOTS: dict[str, tuple[str, ...]] = {
    "overall": ("subject", "activity", "colour", "shape", "motion", "place"),
    "action": ("subject", "activity"),
    "object": ("colour", "shape", "motion"),
    "scene": ("place",),
    "scene_text": ("scene_text",),
    "category": ("category",),
    "intent": ("subject", "activity", "intent"),
}
"""The facts each aspect asks for: the checklist of a correct answer."""

KEY_SLOTS: dict[str, str] = {"action": "activity", "intent": "intent"}
"""The fact an answer of the aspect cannot leave out without a significant error (what is done; why); aspects
not listed weigh their facts alike (one fact alone is trivially the key)."""

TRUTH_COLUMNS: tuple[str, ...] = ("video_id", "label", "scene_shown", "object_shown", "shape", "motion", "scene_text")
"""The ground-truth table columns :func:`read_truth` needs."""

_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "eval": {
        "overall": ("描述这个视频的内容。", "这个视频片段讲了什么？", "请详细描述视频中的画面。"),
        "action": ("视频中的主体在做什么？", "视频里是谁？在做什么？", "请说说视频中的主角正在干什么。"),
        "object": ("视频中出现了什么物体？它是怎样运动的？", "画面里那个会动的东西是什么颜色、什么形状？它怎么动？"),
        "scene": ("这个视频是在什么地方拍摄的？", "视频中的场景在哪里？"),
        "scene_text": ("视频画面中出现了什么文字？", "请读出视频中出现的文字。"),
        "category": ("这个视频属于什么类目？", "这是一个什么类型的视频？"),
        "intent": ("这个视频的意图是什么？请按“[主体]通过[动作]旨在[意图]”的格式回答。",
                   "用一句话说明：谁通过做什么，想达到什么目的？"),
    },
    "train": {
        "overall": ("请描述一下这段视频。", "简要介绍视频里发生了什么。"),
        "action": ("画面中的人物在干什么？", "说一说视频里的人在做什么。"),
        "object": ("描述一下视频中运动的物体。", "视频里的物体是什么样子的，怎么移动？"),
        "scene": ("视频的背景是什么地方？", "这段视频发生在哪里？"),
        "scene_text": ("画面上写了什么字？", "视频里的字幕或标牌写了什么？"),
        "category": ("这个视频应该放在哪个频道？", "判断这个视频的类别。"),
        "intent": ("拍摄这个视频的目的是什么？请说明主体、动作和意图。", "视频中的主体做这件事是为了什么？"),
    },
}

_ANSWERS: dict[str, tuple[str, ...]] = {
    "overall": ("{subject}在{place}{activity}，画面中一个{colour}的{shape}{motion}。",
                "视频里，{subject}正在{place}{activity}，还能看到一个{colour}的{shape}{motion}。",
                "在{place}，{subject}在{activity}，一个{colour}的{shape}不停地{motion}。"),
    "action": ("{subject}正在{activity}。", "视频中{subject}在{activity}。"),
    "object": ("画面中有一个{colour}的{shape}，它在{motion}。", "一个{colour}的{shape}在{motion}。"),
    "scene": ("视频发生在{place}。", "这个视频是在{place}拍摄的。"),
    "scene_text": ("画面中出现了文字“{scene_text}”。", "视频里的文字是“{scene_text}”。"),
    "category": ("这个视频属于{category}类目。", "这是一个{category}视频。"),
    "intent": ("{subject}通过{activity}旨在{intent}。",),
}


@dataclass(frozen=True)
class Fact:
    """One fact a correct answer states: its slot (one of :data:`SLOTS`) and the true value, in the canonical
    wording of the world (e.g. ``Fact("colour", "红色")``, ``Fact("motion", "上下弹跳")``, ``Fact("place", "舞台上")``)."""

    slot: str
    value: str


@dataclass(frozen=True)
class VideoTruth:
    """What a mini-Youku video shows and is about, in the world's canonical Chinese wording.

    Attributes:
        video_id: the video.
        category: its class name, e.g. 翻唱.
        subject, activity: who is in it and what they do, e.g. 一位歌手, 深情演唱.
        colour, shape, motion: the moving object as shown, e.g. 红色, 圆球, 上下弹跳 (灰色 for the distractor).
        place: where it happens, e.g. 舞台上; 室内 when the scene is not shown (a neutral grey room).
        scene_text: the text a shot shows, or None.
        intent: why it was made (VideoMind's intent layer), e.g. 展示自己的歌声.
    """

    video_id: str
    category: str
    subject: str
    activity: str
    colour: str
    shape: str
    motion: str
    place: str
    scene_text: str | None
    intent: str

    @classmethod
    def from_cues(cls, video_id: str, cues: T.Cues, scene_text: str | None) -> VideoTruth:
        """The truth of a video from the cues the generator drew for it and the scene text it rendered."""
        d = cues.design
        colour = COLOURS[d.look.colour][0] if cues.object_shown else DISTRACTOR_COLOUR[0]
        return cls(video_id, CLASS_NAMES[cues.label], d.subject, d.activity, colour, SHAPES[cues.shape],
                   MOTIONS[cues.motion][0], T.where(cues), scene_text or None, d.intent)

    def facts(self, slots: Sequence[str] = SLOTS) -> tuple[Fact, ...]:
        """The facts of `slots` that this video has (no scene_text fact when it shows none)."""
        return tuple(Fact(s, getattr(self, s)) for s in slots if getattr(self, s) is not None)


@dataclass(frozen=True)
class GroundedItem(EvalItem):
    """An :class:`~vlstudy.humaneval.protocol.EvalItem` with its checklist (it goes into a package unchanged).

    Attributes:
        facts: what a correct answer must state (:data:`ASPECT_SLOTS` of the aspect).
        known: every other fact of the video, against which a claim the answer makes unasked is checked.
        reference: a reference answer that states every fact of ``facts``.
    """

    facts: tuple[Fact, ...] = ()
    known: tuple[Fact, ...] = ()
    reference: str = ""

    def to_dict(self) -> dict:
        """Plain JSON-ready values (e.g. to keep the items with their checklists beside the package)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> GroundedItem:
        facts = {k: tuple(Fact(**f) for f in data[k]) for k in ("facts", "known")}
        return cls(**{**data, **facts})


@dataclass(frozen=True)
class InstructionPair:
    """One instruction-tuning example: an instruction about a video and the answer to learn."""

    video_id: str
    aspect: str
    instruction: str
    answer: str


@dataclass
class InstructionPairsConfig:
    """How many instruction-tuning pairs to draw per training video, and of which aspects.

    Attributes:
        per_video: distinct aspects per video (fewer where fewer apply, e.g. no scene text).
        aspects: the aspects to draw from (keys of :data:`GROUNDED_ASPECTS`).
    """

    per_video: int = 3
    aspects: list[str] = field(default_factory=lambda: list(GROUNDED_ASPECTS))

    def __post_init__(self):
        unknown = [a for a in self.aspects if a not in GROUNDED_ASPECTS]
        if unknown:
            raise ValueError(f"unknown aspect {unknown[0]!r}; known: {', '.join(GROUNDED_ASPECTS)}")
        if self.per_video < 1 or not self.aspects:
            raise ValueError(f"need per_video >= 1 and at least one aspect, got {self.per_video}, {self.aspects}")


def _flag(value, where: str) -> bool:
    """A boolean cell as pandas reads it back from CSV (bool, or the strings True/False)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if str(value) in ("True", "False"):
        return str(value) == "True"
    raise ValueError(f"{where}: expected True or False, got {value!r}")


def read_truth(table: pd.DataFrame | str | Path, task: str | None = None,
               split: str | None = None) -> list[VideoTruth]:
    """The truth of every video of mini-Youku's ``ground_truth.csv`` (optionally one task's split), in row order.

    Args:
        table: the ground-truth table or the path of its CSV.
        task, split: keep only rows of this task / split (e.g. ``captioning``, ``val``).

    Raises:
        KeyError: a column of :data:`TRUTH_COLUMNS` is missing. ValueError: a row with an unknown label, shape or
        motion, or a flag that is not True/False (named by its CSV row, header = row 1, or its table index).
    """
    from_file = not isinstance(table, pd.DataFrame)
    source = str(table) if from_file else "ground truth"
    df = pd.read_csv(table, dtype={"video_id": str}) if from_file else table
    missing = [c for c in TRUTH_COLUMNS + tuple(c for c, v in (("task", task), ("split", split)) if v)
               if c not in df.columns]
    if missing:
        raise KeyError(f"{source}: missing column(s) {missing}")
    if task is not None:
        df = df[df["task"] == task]
    if split is not None:
        df = df[df["split"] == split]
    out = []
    for row_number, row in zip(df.index, df.itertuples(index=False)):
        where = f"{source} row {row_number + 2}" if from_file else f"{source} index {row_number}"
        if not (isinstance(row.label, (int, np.integer)) and 0 <= row.label < len(CLASSES)):
            raise ValueError(f"{where}: label {row.label!r} is not a class index 0..{len(CLASSES) - 1}")
        if row.shape not in SHAPES or row.motion not in MOTIONS:
            raise ValueError(f"{where}: unknown shape {row.shape!r} or motion {row.motion!r}")
        cues = T.Cues(label=int(row.label), scene_shown=_flag(row.scene_shown, where),
                      object_shown=_flag(row.object_shown, where), group_cue=False, keyword_cue=False,
                      shape=row.shape, motion=row.motion)
        text = row.scene_text if isinstance(row.scene_text, str) else None
        out.append(VideoTruth.from_cues(str(row.video_id), cues, text))
    return out


def templates(aspect: str, split: str = "eval") -> tuple[str, ...]:
    """The instruction templates of an aspect: ``eval`` (rating package) or ``train`` (instruction tuning)."""
    if split not in _TEMPLATES or aspect not in _TEMPLATES[split]:
        raise KeyError(f"no templates for aspect {aspect!r} in split {split!r}")
    return _TEMPLATES[split][aspect]


def applicable_aspects(truth: VideoTruth, aspects: Sequence[str] = tuple(GROUNDED_ASPECTS)) -> list[str]:
    """The aspects a video can be asked about (scene_text only when it shows scene text)."""
    return [a for a in aspects if all(getattr(truth, s) is not None for s in ASPECT_SLOTS[a])]


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def reference_answer(truth: VideoTruth, aspect: str, rng: np.random.Generator) -> str:
    """An answer stating every fact the aspect asks for, in one of a few wordings (the motion in one of the
    world's variants)."""
    motion_key = next(k for k, v in MOTIONS.items() if v[0] == truth.motion)
    values = {**asdict(truth), "motion": _pick(MOTIONS[motion_key], rng)}
    return _pick(_ANSWERS[aspect], rng).format(**values)


def ground(item_id: str, truth: VideoTruth, aspect: str, instruction: str,
           rng: np.random.Generator) -> GroundedItem:
    """A grounded item: `instruction` about `truth`'s video, with the aspect's checklist and a reference."""
    if aspect not in applicable_aspects(truth, [aspect]):
        raise ValueError(f"video {truth.video_id!r}: aspect {aspect!r} does not apply (no scene text)")
    facts = truth.facts(ASPECT_SLOTS[aspect])
    known = truth.facts([s for s in SLOTS if s not in ASPECT_SLOTS[aspect] and s != "scene_text"])
    return GroundedItem(item_id, truth.video_id, aspect, instruction, facts, known,
                        reference_answer(truth, aspect, rng))


def sample_grounded_items(truths: Sequence[VideoTruth], config: ProtocolConfig,
                          rng: np.random.Generator) -> list[GroundedItem]:
    """Draw ``config.n_instructions`` grounded items over ``config.n_videos`` videos (the rating package's items).

    The rule of :func:`~vlstudy.humaneval.protocol.sample_items`, steps 1–2 (videos, counts per video), then,
    item by item in pool order: the aspect is one of the video's applicable aspects not yet used for it, the
    least used so far over the whole sample (ties drawn uniformly), so aspects stay balanced as far as scene
    text allows; the instruction is an ``eval`` template of the aspect drawn uniformly.

    Raises:
        ValueError: as ``draw_videos``, or a video drawn more instructions than it has applicable aspects.
    """
    chosen, counts = draw_videos([t.video_id for t in truths], config, rng)
    used: Counter[str] = Counter()
    items: list[GroundedItem] = []
    for video_index, count in zip(chosen, counts):
        truth = truths[video_index]
        free = applicable_aspects(truth)
        if count > len(free):
            raise ValueError(f"video {truth.video_id!r}: {count} instructions asked, {len(free)} aspects apply")
        for _ in range(count):
            least = min(used[a] for a in free)
            aspect = _pick([a for a in free if used[a] == least], rng)
            free.remove(aspect)
            used[aspect] += 1
            items.append(ground(f"q{len(items) + 1:03d}", truth, aspect, _pick(templates(aspect), rng), rng))
    return items


def instruction_pairs(truths: Sequence[VideoTruth], config: InstructionPairsConfig,
                      rng: np.random.Generator) -> list[InstructionPair]:
    """Instruction-tuning pairs from the truth of training videos (pass the TRAINING split only).

    Per video: ``min(per_video, applicable)`` distinct aspects drawn uniformly from ``config.aspects``, each with
    a ``train`` template and a :func:`reference_answer`. Pure: the same truths and generator state give the
    same pairs.
    """
    pairs = []
    for truth in truths:
        options = applicable_aspects(truth, config.aspects)
        if not options:
            continue
        for index in sorted(rng.choice(len(options), size=min(config.per_video, len(options)), replace=False)):
            aspect = options[int(index)]
            pairs.append(InstructionPair(truth.video_id, aspect, _pick(templates(aspect, "train"), rng),
                                         reference_answer(truth, aspect, rng)))
    return pairs


assert all(set(_TEMPLATES[s]) == set(GROUNDED_ASPECTS) == set(_ANSWERS) for s in _TEMPLATES)
assert not set(sum(_TEMPLATES["eval"].values(), ())) & set(sum(_TEMPLATES["train"].values(), ()))
assert set(ASPECT_SLOTS) == set(GROUNDED_ASPECTS)
