"""The human-evaluation protocol: sample instructions on videos, collect responses, write a blinded rating package.

Follows the zero-shot instruction evaluation of Youku-mPLUG (Xu et al., 2023, arXiv 2306.04362, §5.4 and Fig. 5):
raters read an instruction about a video and grade each model's response on the four-level scale that the
paper takes from mPLUG-Owl's OwlEval (Ye et al., 2023, arXiv 2304.14178), itself from Self-Instruct (Wang et al.,
2022): A correct and satisfying, B acceptable with minor imperfections, C responds but with significant errors,
D irrelevant or invalid. Panda-70M (Chen et al., CVPR 2024) adds a preference question: which response is best.
The brief's sizes (65 instructions on 50 videos, 3 models) could not be confirmed in a stored copy of the paper
(paper_notes §5); they are the defaults of :class:`ProtocolConfig`.

Sampling rule (:func:`sample_items`), for ``n`` instructions over ``m`` videos (``n >= m``):

1. draw ``m`` videos uniformly without replacement from the pool (kept in pool order);
2. every video gets ``n // m`` instructions and ``n % m`` videos, drawn without replacement, get one more;
3. instruction *aspects* are balanced: the aspect list is repeated to length ``n`` and shuffled, and item ``k``
   takes the ``k``-th aspect, so aspect counts differ by at most one;
4. within an aspect the template is drawn uniformly, without replacement per video, so no video gets the same
   instruction twice.

Blinding: each item's responses go to anonymous slots "A", "B", "C", … in an order shuffled per item. The package
folder (``items.json``, ``frames/``, ``rating.html``) holds no model name; the slot → model key is written to a
separate path, which must lie outside the package, so raters can be handed the folder as it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vlstudy.fonts import embed_cjk_font
from vlstudy.humaneval.page import render_page
from vlstudy.io import write_json

__all__ = [
    "GRADES", "GRADE_LABELS", "GRADE_DEFINITIONS", "ASPECTS", "INSTRUCTIONS", "Instruction", "VideoItem", "EvalItem",
    "ProtocolConfig", "Responder", "draw_videos", "sample_items", "generate_responses", "assign_slots", "build_manifest",
    "write_package", "read_manifest", "read_key",
]

GRADES: tuple[str, ...] = ("A", "B", "C", "D")
"""The four grades, best first."""

GRADE_LABELS: dict[str, str] = {"A": "正确满意", "B": "可接受", "C": "有明显错误", "D": "无关或无效"}
"""Short Chinese labels (figure legends, rating buttons)."""

GRADE_DEFINITIONS: dict[str, str] = {
    "A": "回答正确且令人满意 (correct and satisfying)",
    "B": "可以接受，有小瑕疵 (acceptable, minor imperfections)",
    "C": "有回应，但有明显错误 (responds, but with significant errors)",
    "D": "无关或无效 (irrelevant or invalid)",
}
"""The full definitions shown to raters."""


@dataclass(frozen=True)
class Instruction:
    """One instruction template of the bank.

    Attributes:
        aspect: the ability it probes (one of :data:`ASPECTS`).
        text: the Chinese instruction as shown to the model and the rater.
    """

    aspect: str
    text: str


ASPECTS: dict[str, str] = {
    "overall": "整体描述",
    "detail": "细节",
    "category": "类目",
    "scene": "场景背景",
    "scene_text": "画面文字",
    "intent": "意图",
    "knowledge": "开放知识",
}
"""The abilities the bank covers (the paper's abstract names overall and detailed visual semantics, scene text
and open-domain knowledge; category, scene and intent follow the kit's tasks and VideoMind's intent layer)."""

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "overall": ("描述这个视频的内容。", "请用一段话概括这个视频。", "这个视频主要讲了什么？",
                "简要介绍一下这个视频。"),
    "detail": ("视频里的人在做什么？", "视频中出现了哪些物体？", "视频中主体的外观是什么样的？",
               "视频中的动作是按什么顺序发生的？"),
    "category": ("这个视频属于什么类目？", "这是一个什么类型的视频？", "这个视频适合放在哪个频道？"),
    "scene": ("视频的背景是什么？", "这个视频是在什么地方拍摄的？", "视频发生在室内还是室外？"),
    "scene_text": ("视频画面中出现了哪些文字？", "视频里的字幕或标牌写了什么？", "请读出视频中出现的文字。"),
    "intent": ("拍摄这个视频的目的是什么？", "视频作者想向观众传达什么？", "这个视频想吸引什么样的观众？"),
    "knowledge": ("关于视频的主题，你还知道哪些相关知识？", "根据视频内容，给观众一个实用的建议。",
                  "做视频中的事情需要注意什么？"),
}

INSTRUCTIONS: tuple[Instruction, ...] = tuple(
    Instruction(aspect, text) for aspect, texts in _TEMPLATES.items() for text in texts
)
"""The bank of Chinese instruction templates, grouped by aspect."""


@dataclass(frozen=True, eq=False)
class VideoItem:
    """A video as the rating protocol sees it: a few keyframes.

    Attributes:
        video_id: the id of the video in the data tables.
        frames: uint8 RGB keyframes, shape (T, H, W, 3).
    """

    video_id: str
    frames: np.ndarray

    def __post_init__(self):
        f = self.frames
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3 or len(f) == 0:
            got = f"{f.dtype} {f.shape}" if isinstance(f, np.ndarray) else type(f).__name__
            raise ValueError(f"video {self.video_id!r}: frames must be a uint8 array (T, H, W, 3) with T >= 1, "
                             f"got {got}")


@dataclass(frozen=True)
class EvalItem:
    """One instruction on one video: the unit that every model answers and every rater grades.

    Attributes:
        item_id: "q001", "q002", … in package order.
        video_id: the video the instruction is about.
        aspect: the ability probed (a key of :data:`ASPECTS`).
        instruction: the Chinese instruction text.
    """

    item_id: str
    video_id: str
    aspect: str
    instruction: str


@dataclass
class ProtocolConfig:
    """How many items to sample and how frames are stored.

    Attributes:
        n_videos: videos drawn from the pool (paper, as given in the brief: 50).
        n_instructions: instructions spread over them (paper, as given in the brief: 65); at least ``n_videos``.
        jpeg_quality: JPEG quality of the keyframes written to ``frames/`` and inlined in the page.
    """

    n_videos: int = 50
    n_instructions: int = 65
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.n_videos < 1:
            raise ValueError(f"n_videos must be >= 1, got {self.n_videos}")
        if self.n_instructions < self.n_videos:
            raise ValueError(f"n_instructions ({self.n_instructions}) must be >= n_videos ({self.n_videos}): "
                             "every sampled video gets at least one instruction")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")


Responder = Callable[[list[VideoItem], list[str]], list[str]]
"""A model under evaluation: videos and one instruction per video → one response text per video."""


def draw_videos(video_ids: Sequence[str], config: ProtocolConfig,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 and 2 of the sampling rule: ``(chosen, counts)``, the drawn indices into `video_ids` (increasing)
    and each one's number of instructions. Raises ValueError on a pool below ``n_videos`` or a duplicated id."""
    ids = list(video_ids)
    dup = [v for v, c in Counter(ids).items() if c > 1]
    if dup:
        raise ValueError(f"video pool: duplicated video_id {dup[0]!r}")
    m, n = config.n_videos, config.n_instructions
    if len(ids) < m:
        raise ValueError(f"video pool has {len(ids)} videos, fewer than n_videos={m}")
    chosen = np.sort(rng.choice(len(ids), size=m, replace=False))
    counts = np.full(m, n // m)
    counts[rng.choice(m, size=n % m, replace=False)] += 1
    return chosen, counts


def sample_items(video_ids: Sequence[str], config: ProtocolConfig, rng: np.random.Generator,
                 bank: Sequence[Instruction] = INSTRUCTIONS) -> list[EvalItem]:
    """Draw ``config.n_instructions`` items over ``config.n_videos`` videos by the rule in the module docstring.

    Args:
        video_ids: the pool to draw from (unique ids).
        config: sizes.
        rng: the only source of randomness.
        bank: instruction templates; every aspect must have as many templates as one video can get.

    Returns:
        The items, grouped by video in pool order, with ids "q001", "q002", ….

    Raises:
        ValueError: on a pool smaller than ``n_videos``, a duplicated id, or an aspect with too few templates.
    """
    ids = list(video_ids)
    chosen, counts = draw_videos(ids, config, rng)
    n = config.n_instructions
    by_aspect: dict[str, list[str]] = {}
    for ins in bank:
        by_aspect.setdefault(ins.aspect, []).append(ins.text)
    aspects = rng.permutation(np.resize(np.array(list(by_aspect)), n))

    items: list[EvalItem] = []
    for video_index, count in zip(chosen, counts):
        first = len(items)  # this video's items take the next `count` aspects
        video_aspects = [str(a) for a in aspects[first:first + count]]
        texts: dict[str, list[str]] = {}
        for aspect in dict.fromkeys(video_aspects):
            pool, k = by_aspect[aspect], video_aspects.count(aspect)
            if k > len(pool):
                raise ValueError(f"instruction bank: aspect {aspect!r} has {len(pool)} templates, "
                                 f"a video needs {k} distinct ones")
            texts[aspect] = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
        for aspect in video_aspects:
            items.append(EvalItem(f"q{len(items) + 1:03d}", ids[video_index], aspect, texts[aspect].pop()))
    return items


def generate_responses(items: Sequence[EvalItem], videos: Mapping[str, VideoItem],
                       responders: Mapping[str, Responder], batch_size: int = 8) -> dict[str, list[str]]:
    """Ask every model every item's instruction, in batches.

    Args:
        items: the sampled items.
        videos: the videos by id (every item's video must be there).
        responders: model name → responder.
        batch_size: items per responder call.

    Returns:
        Model name → one response per item, in item order.

    Raises:
        KeyError: an item's video is missing. ValueError: a responder returned the wrong number of responses or
        something that is not a string.
    """
    missing = [it for it in items if it.video_id not in videos]
    if missing:
        raise KeyError(f"item {missing[0].item_id}: no frames for video {missing[0].video_id!r}")
    out: dict[str, list[str]] = {}
    for model, respond in responders.items():
        texts: list[str] = []
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            answers = list(respond([videos[it.video_id] for it in batch], [it.instruction for it in batch]))
            if len(answers) != len(batch):
                raise ValueError(f"model {model!r}: {len(answers)} responses for a batch of {len(batch)} items "
                                 f"(from {batch[0].item_id})")
            for it, answer in zip(batch, answers):
                if not isinstance(answer, str):
                    raise ValueError(f"model {model!r}, item {it.item_id}: response is "
                                     f"{type(answer).__name__}, not str")
            texts.extend(answers)
        out[model] = texts
    return out


def assign_slots(item_ids: Sequence[str], models: Sequence[str], rng: np.random.Generator) -> dict[str, dict[str, str]]:
    """The blinding key: for every item, an independent random permutation of the models over slots "A", "B", ….

    Returns:
        item_id → {slot: model}, slots in alphabetical order.
    """
    if not 1 <= len(models) <= 26 or len(set(models)) != len(models):
        raise ValueError(f"need 1..26 distinct model names, got {list(models)}")
    slots = string.ascii_uppercase[:len(models)]
    return {item_id: {slot: models[j] for slot, j in zip(slots, rng.permutation(len(models)))} for item_id in item_ids}


def _encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def build_manifest(items: Sequence[EvalItem], responses: Mapping[str, Sequence[str]],
                   assignment: Mapping[str, Mapping[str, str]], frame_names: Mapping[str, list[str]]) -> dict:
    """The content of ``items.json`` (no model names): every item with its frames and its slot → response text.

    Args:
        items: the items, in package order.
        responses: model → one response per item.
        assignment: item_id → {slot: model}, from :func:`assign_slots`.
        frame_names: video_id → file names of its keyframes under ``frames/``.

    Returns:
        ``{"package_id", "slots", "grades", "items": [...]}``; the id is a hash of the content, so a changed
        package never mixes its ratings with an older one's in the page's storage.
    """
    entries = []
    for k, it in enumerate(items):
        slots = assignment[it.item_id]
        entries.append({
            "item_id": it.item_id,
            "video_id": it.video_id,
            "aspect": it.aspect,
            "instruction": it.instruction,
            "frames": list(frame_names[it.video_id]),
            "responses": {slot: responses[model][k] for slot, model in slots.items()},
        })
    body = json.dumps(entries, ensure_ascii=False, sort_keys=True).encode("utf-8")
    slots = sorted(next(iter(assignment.values()))) if assignment else []
    return {"package_id": hashlib.sha256(body).hexdigest()[:12], "slots": slots, "grades": GRADE_DEFINITIONS,
            "items": entries}


def write_package(package_dir: str | Path, key_path: str | Path, items: Sequence[EvalItem],
                  videos: Sequence[VideoItem], responses: Mapping[str, Sequence[str]], rng: np.random.Generator,
                  config: ProtocolConfig | None = None) -> dict:
    """Write the blinded rating package and, separately, its key.

    Layout of ``package_dir`` (replaced whole, atomically)::

        items.json     the manifest of :func:`build_manifest`
        frames/        JPEG keyframes, video<k>_<t>.jpg
        rating.html    the self-contained rating page (frames inlined)

    ``key_path`` gets ``{"package_id", "models", "assignment": {item_id: {slot: model}}}``.

    Args:
        package_dir: the folder to hand to raters.
        key_path: where the key goes; must not lie inside ``package_dir``.
        items: the items (from :func:`sample_items`).
        videos: the videos with their keyframes (every item's video).
        responses: model → one response per item (from :func:`generate_responses` or elsewhere).
        rng: draws the per-item slot order.
        config: JPEG quality; the default when None.

    Returns:
        The manifest written to ``items.json``.
    """
    config = config or ProtocolConfig()
    package_dir, key_path = Path(package_dir), Path(key_path)
    if key_path.resolve().is_relative_to(package_dir.resolve()):
        raise ValueError(f"key {key_path} lies inside the package {package_dir}: raters would see the models")
    for model, texts in responses.items():
        if len(texts) != len(items):
            raise ValueError(f"model {model!r}: {len(texts)} responses for {len(items)} items")
    by_id: dict[str, VideoItem] = {}
    for v in videos:
        if v.video_id in by_id:
            raise ValueError(f"videos: duplicated video_id {v.video_id!r}")
        by_id[v.video_id] = v
    needed = list(dict.fromkeys(it.video_id for it in items))
    missing = [v for v in needed if v not in by_id]
    if missing:
        raise KeyError(f"no frames for video {missing[0]!r}")

    frame_bytes: dict[str, bytes] = {}
    frame_names: dict[str, list[str]] = {}
    for k, video_id in enumerate(needed):
        names = [f"video{k:03d}_{t:02d}.jpg" for t in range(len(by_id[video_id].frames))]
        for name, frame in zip(names, by_id[video_id].frames):
            frame_bytes[name] = _encode_jpeg(frame, config.jpeg_quality)
        frame_names[video_id] = names

    models = list(responses)
    assignment = assign_slots([it.item_id for it in items], models, rng)
    manifest = build_manifest(items, responses, assignment, frame_names)
    html = embed_cjk_font(render_page(manifest, frame_bytes))  # Chinese renders on a machine without a CJK font

    tmp = package_dir.with_name(f".{package_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "frames").mkdir(parents=True)
    for name, data in frame_bytes.items():
        (tmp / "frames" / name).write_bytes(data)
    write_json(tmp / "items.json", manifest)
    (tmp / "rating.html").write_text(html, encoding="utf-8")
    if package_dir.exists():
        shutil.rmtree(package_dir)
    os.replace(tmp, package_dir)
    write_json(key_path, {"package_id": manifest["package_id"], "models": models, "assignment": assignment})
    return manifest


def read_manifest(package_dir: str | Path) -> dict:
    """``items.json`` of a package folder."""
    path = Path(package_dir) / "items.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no items.json; is {package_dir} a rating package?")
    return json.loads(path.read_text(encoding="utf-8"))


def read_key(key_path: str | Path) -> dict:
    """The blinding key written by :func:`write_package`."""
    path = Path(key_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: blinding key not found")
    return json.loads(path.read_text(encoding="utf-8"))
