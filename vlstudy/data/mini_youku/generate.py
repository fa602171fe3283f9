"""mini-Youku: the embedded default dataset, generated deterministically from a seed.

It mirrors the Youku-mPLUG release (Xu et al., 2023; X-PLUG/Youku-mPLUG) at toy scale so that the same
ingestion code reads both: real H.264 mp4 files and the official CSV formats (columns exactly as released):

===============================  ========================================================================
file                             columns
===============================  ========================================================================
pretrain.csv                     ``video_id:FILE,title`` — the raw pool, with injected defects
classification_{split}.csv       ``video_id:FILE,title,label`` (label = Chinese class name; empty in test)
captioning_{split}.csv           ``video_id:FILE,golden_caption`` (train: one caption; val: a string
                                 holding a list of references; test: empty)
retrieval_{split}.csv            ``clip_name:FILE,caption`` (test: empty)
ground_truth.csv                 one row per video: task, split, source, label, duration, the injected
                                 defect and what each video shows (the generator's truth; see below), its
                                 VideoMind layers ``factual``, ``abstract``, ``intent`` and 6W tags
                                 ``tags_6w`` (JSON; designed evidence: ``text.py``), description, subtitles
text_corpus.txt                  web-like Chinese text for the text-LM stage, one text per line, pages
                                 separated by an empty line: the stand-in for what an off-the-shelf LM has
                                 read (it describes no video of the set)
meta.json                        the configuration, counts and the designed per-modality ceilings
===============================  ========================================================================

What each modality can know about the category is designed (see :mod:`vlstudy.data.mini_youku.world` for the
cues and :func:`~vlstudy.data.mini_youku.world.designed_ceilings` for the exact ceilings).

Defects are injected into the pre-training pool only, at most one per video, with ground-truth flags so that
each construction filter's precision and recall can be measured: ``duplicate`` (a perturbed re-render of
another pool video), ``mismatched_title`` (another category's title), ``ad_title``, ``meaningless_title``,
``short_title`` / ``long_title`` (outside 5–30 jieba words), ``too_short`` / ``too_long`` (outside 10–120 s),
``corrupt`` (an unreadable file).

Every random choice comes from ``numpy.random.default_rng([seed, task, index])`` for its video, so a video does
not depend on how many others are generated or on the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm  # text bars: readable in terminals, logs and rendered notebooks alike

from vlstudy.config import to_dict
from vlstudy.data.classes import CLASS_NAMES, NUM_CLASSES
from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.render import DISTRACTOR_RGB, ENCODER_OPTIONS, OBJECT_RGB, ShotSpec, VideoSpec, render
from vlstudy.data.mini_youku.world import CLASSES, MOTIONS, SCENE_TEXTS, SHAPES, designed_ceilings
from vlstudy.data.mini_youku.config import CueConfig, DefectRates, MiniYoukuConfig, SplitCounts
from vlstudy.data.video import write_video
from vlstudy.io import write_json, write_table, write_text

__all__ = ["CueConfig", "SplitCounts", "DefectRates", "MiniYoukuConfig", "Item", "generate", "plan", "text_corpus",
           "TASK_FILES", "DEFECTS"]

log = logging.getLogger("vlstudy.data")

TASK_FILES = {
    "pretrain": "pretrain.csv",
    "classification": "classification_{split}.csv",
    "captioning": "captioning_{split}.csv",
    "retrieval": "retrieval_{split}.csv",
}
DEFECTS = ("duplicate", "mismatched_title", "ad_title", "meaningless_title", "short_title", "long_title",
           "too_short", "too_long", "corrupt")
_TASK_CODE = {"pretrain": 1, "classification": 2, "captioning": 3, "retrieval": 4, "corpus": 5, "defects": 9}


@dataclass
class Item:
    """One video to generate, with every text that belongs to it."""

    video_id: str
    task: str
    split: str
    source_id: str
    cues: T.Cues
    spec: VideoSpec
    title: str | None = None
    captions: list[str] = field(default_factory=list)
    defect: str = ""
    duplicate_of: str = ""
    extras: dict = field(default_factory=dict)


def _video_id(seed: int, task: str, index: int) -> str:
    """An opaque id (like the release's hashed names) that reveals neither task, split nor label."""
    return hashlib.sha1(f"{seed}/{task}/{index}".encode()).hexdigest()[:16] + ".mp4"


def _draw_cues(label: int, probs: CueConfig, night_p: float, rng: np.random.Generator) -> T.Cues:
    object_shown = bool(rng.random() < probs.p_object)
    look = CLASSES[label].look
    shape = look.shape if object_shown else str(rng.choice(list(SHAPES)))
    motion = look.motion if object_shown else str(rng.choice(list(MOTIONS)))
    return T.Cues(label=label, scene_shown=bool(rng.random() < probs.p_scene), object_shown=object_shown,
                  group_cue=bool(rng.random() < probs.p_group), keyword_cue=bool(rng.random() < probs.p_keyword),
                  shape=shape, motion=motion, night=bool(rng.random() < night_p))


def _shots(n_frames: int, cfg: MiniYoukuConfig, rng: np.random.Generator) -> tuple[ShotSpec, ...]:
    """Split `n_frames` into 1..max_shots shots of >= 2 s, with cuts or fades and a fresh camera each."""
    min_len = 2 * cfg.fps
    n_shots = max(1, min(int(rng.integers(1, cfg.max_shots + 1)), n_frames // min_len))
    if n_shots == 1:
        lengths = [n_frames]
    else:
        extra = n_frames - n_shots * min_len
        lengths = [min_len + int(w) for w in np.floor(extra * rng.dirichlet(np.ones(n_shots)))]
        lengths[-1] += n_frames - sum(lengths)
    text_shot = int(rng.integers(len(lengths))) if rng.random() < cfg.scene_text else -1
    s = cfg.frame_size
    out = []
    for k, length in enumerate(lengths):
        out.append(ShotSpec(
            n_frames=length,
            transition="none" if k == 0 else ("fade" if rng.random() < cfg.fade else "cut"),
            pan=(float(rng.uniform(0, 40)), float(rng.uniform(0, 40))),
            pan_velocity=(float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.6, 0.6))),
            zoom=float(rng.uniform(0.8, 1.25)),
            center=(float(rng.uniform(0.35, 0.65) * s), float(rng.uniform(0.35, 0.6) * s)),
            amplitude=float(rng.uniform(0.15, 0.25) * s),
            period=float(rng.uniform(6, 16)),
            phase=float(rng.uniform(0, 2 * np.pi)),
            radius=float(rng.uniform(*cfg.object_radius) * s / 64),
            text=str(rng.choice(SCENE_TEXTS)) if k == text_shot else None,
        ))
    return tuple(out)


def _spec(cues: T.Cues, duration: float, cfg: MiniYoukuConfig, rng: np.random.Generator) -> VideoSpec:
    n_frames = max(int(round(duration * cfg.fps)), 2)
    colour = OBJECT_RGB[CLASSES[cues.label].look.colour] if cues.object_shown else DISTRACTOR_RGB
    return VideoSpec(
        scene=CLASSES[cues.label].scene if cues.scene_shown else -1,
        shape=cues.shape, motion=cues.motion, colour=colour, shots=_shots(n_frames, cfg, rng),
        size=cfg.frame_size, fps=cfg.fps,
        brightness=0.55 if cues.night else float(rng.uniform(0.9, 1.1)),
        noise_seed=int(rng.integers(2**31)),
    )


def _title_ok(title: str, seen: set[str]) -> bool:
    from vlstudy.data.title_rules import title_word_count

    return title not in seen and 5 <= title_word_count(title) <= 30


def _unique_title(make, seen: set[str], rng: np.random.Generator) -> str:
    """Draw titles until one is new and 5–30 words long (ordinary titles never trip the length filter)."""
    for _ in range(200):
        title = make(rng)
        if _title_ok(title, seen):
            seen.add(title)
            return title
    raise RuntimeError("could not draw a new title in 200 tries; the title vocabulary is too small")


def _attach_layers(item: Item, rng: np.random.Generator) -> Item:
    item.extras.update(T.videomind_layers(item.cues, rng))  # factual, abstract, intent, tags_6w
    item.extras["description"] = T.description(item.cues, rng)
    item.extras["subtitles"] = T.subtitles(item.cues, rng)
    return item


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` labels as balanced as possible (each class floor(n/45) or one more), in random order."""
    return rng.permutation(np.resize(np.arange(NUM_CLASSES), n)) if n else np.array([], int)


def _pool(cfg: MiniYoukuConfig, titles: set[str]) -> list[Item]:
    base_rng = np.random.default_rng([cfg.seed, _TASK_CODE["pretrain"]])
    labels = _labels(cfg.pool_videos, base_rng)
    items = []
    for i, label in enumerate(labels):
        rng = np.random.default_rng([cfg.seed, _TASK_CODE["pretrain"], i])
        cues = _draw_cues(int(label), cfg.content_cues, cfg.night, rng)
        vid = _video_id(cfg.seed, "pretrain", i)
        item = Item(vid, "pretrain", "pool", vid, cues, _spec(cues, rng.uniform(*cfg.pool_duration), cfg, rng))
        item.title = _unique_title(lambda r, c=cues: T.pool_title(c, r), titles, rng)
        items.append(_attach_layers(item, rng))
    _inject_defects(items, cfg, titles)
    return items


def _inject_defects(items: list[Item], cfg: MiniYoukuConfig, titles: set[str]) -> None:
    """Give disjoint random subsets of the pool one defect each (in place)."""
    rng = np.random.default_rng([cfg.seed, _TASK_CODE["defects"]])
    n = len(items)
    order = rng.permutation(n)
    counts = {d: int(round(getattr(cfg.defects, d) * n)) for d in DEFECTS}
    start = 0
    chosen: dict[str, np.ndarray] = {}
    for d in DEFECTS:
        chosen[d] = order[start: start + counts[d]]
        start += counts[d]
    clean = order[start:]  # originals for duplicates and donors of mismatched titles come from here
    # A duplicate may lose up to 1 s at each end: its original lasts >= 12 s so the copy stays within 10-120 s.
    long_enough = np.array([i for i in clean if items[i].spec.duration >= 12.0])
    for i in chosen["duplicate"]:
        original = items[int(rng.choice(long_enough))]
        item = items[i]
        item.cues, item.extras = original.cues, dict(original.extras)
        item.spec = original.spec.perturbed(rng)
        item.title = original.title if rng.random() < 0.6 else _unique_title(
            lambda r, c=original.cues: T.pool_title(c, r), titles, rng)
        item.defect, item.duplicate_of = "duplicate", original.video_id
    for i in chosen["mismatched_title"]:
        while True:
            donor = items[int(rng.choice(clean))]
            if donor.cues.label != items[i].cues.label:
                break
        items[i].title, items[i].defect = donor.title, "mismatched_title"
    makers = {
        "ad_title": lambda it: T.ad_title(it.cues, rng),
        "meaningless_title": lambda it: T.meaningless_title(rng),
        "short_title": lambda it: T.short_title(it.cues, rng),
        "long_title": lambda it: T.long_title(it.cues, rng),
    }
    for d, make in makers.items():
        for i in chosen[d]:
            items[i].title, items[i].defect = make(items[i]), d
    for d, (lo, hi) in (("too_short", (3.0, 9.0)), ("too_long", (125.0, 150.0))):
        for i in chosen[d]:
            n_frames = int(round(rng.uniform(lo, hi) * cfg.fps))
            items[i].spec = replace(items[i].spec, shots=_shots(n_frames, cfg, rng))
            items[i].defect = d
    for i in chosen["corrupt"]:
        items[i].defect = "corrupt"


def _classification(cfg: MiniYoukuConfig, titles: set[str]) -> list[Item]:
    items = []
    counts = cfg.classification_per_class
    index = 0
    for split in ("train", "val", "test"):
        per_class = getattr(counts, split)
        for label in range(NUM_CLASSES):
            for _ in range(per_class):
                rng = np.random.default_rng([cfg.seed, _TASK_CODE["classification"], index])
                cues = _draw_cues(label, cfg.classification_cues, cfg.night, rng)
                vid = _video_id(cfg.seed, "classification", index)
                spec = _spec(cues, rng.uniform(*cfg.benchmark_duration), cfg, rng)
                item = Item(vid, "classification", split, vid, cues, spec)
                item.title = _unique_title(lambda r, c=cues: T.benchmark_title(c, r), titles, rng)
                items.append(_attach_layers(item, rng))
                index += 1
    return items


def _captioning(cfg: MiniYoukuConfig) -> list[Item]:
    items = []
    index = 0
    for split in ("train", "val", "test"):
        n = getattr(cfg.captioning, split)
        labels = _labels(n, np.random.default_rng([cfg.seed, _TASK_CODE["captioning"], 10**6, len(items)]))
        for label in labels:
            rng = np.random.default_rng([cfg.seed, _TASK_CODE["captioning"], index])
            cues = _draw_cues(int(label), cfg.content_cues, cfg.night, rng)
            vid = _video_id(cfg.seed, "captioning", index)
            item = Item(vid, "captioning", split, vid, cues, _spec(cues, rng.uniform(*cfg.benchmark_duration), cfg, rng))
            item.captions = [T.caption(cues, rng)] if split == "train" else T.references(cues, rng, cfg.references)
            items.append(_attach_layers(item, rng))
            index += 1
    return items


def _retrieval(cfg: MiniYoukuConfig) -> list[Item]:
    """Clips cut from multi-clip source videos: a source's clips share scene and subject, not the object."""
    items = []
    index = source_index = 0
    for split in ("train", "val", "test"):
        n = getattr(cfg.retrieval, split)
        made = 0
        while made < n:
            src_rng = np.random.default_rng([cfg.seed, _TASK_CODE["retrieval"], 10**6 + source_index])
            label = int(src_rng.integers(NUM_CLASSES))
            k = min(int(src_rng.integers(cfg.clips_per_source[0], cfg.clips_per_source[1] + 1)), n - made)
            source = f"src{source_index:06d}"
            base = _draw_cues(label, cfg.content_cues, cfg.night, src_rng)
            for _ in range(k):
                rng = np.random.default_rng([cfg.seed, _TASK_CODE["retrieval"], index])
                other = _draw_cues(label, cfg.content_cues, cfg.night, rng)
                cues = replace(other, scene_shown=base.scene_shown, night=base.night)
                vid = _video_id(cfg.seed, "retrieval", index)
                item = Item(vid, "retrieval", split, source, cues,
                            _spec(cues, rng.uniform(*cfg.clip_duration), cfg, rng))
                item.captions = [T.caption(cues, rng)]
                items.append(_attach_layers(item, rng))
                index += 1
                made += 1
            source_index += 1
    return items


def plan(cfg: MiniYoukuConfig) -> list[Item]:
    """Every video of mini-Youku with its texts, without rendering anything."""
    titles: set[str] = set()
    return [*_pool(cfg, titles), *_classification(cfg, titles), *_captioning(cfg), *_retrieval(cfg)]


def text_corpus(cfg: MiniYoukuConfig) -> list[list[str]]:
    """Pages of web-like text, one per imagined video (`corpus_videos` of them; see ``text.corpus_lines``)."""
    pages = []
    for i in range(cfg.corpus_videos):
        rng = np.random.default_rng([cfg.seed, _TASK_CODE["corpus"], i])
        cues = _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        other = _draw_cues(int(rng.integers(NUM_CLASSES)), cfg.content_cues, cfg.night, rng)
        pages.append(T.corpus_lines(cues, other, rng))
    return pages


def _render_one(args: tuple[VideoSpec, str, str, int]) -> tuple[str, int]:
    spec, path, corrupt, seed = args
    frames = render(spec)
    write_video(path, frames, spec.fps, ENCODER_OPTIONS)
    if corrupt:
        data = Path(path).read_bytes()
        rng = np.random.default_rng(seed)
        bad = data[: len(data) // 3] if corrupt == "truncated" else rng.bytes(len(data))
        Path(path).write_bytes(bad)
    return path, len(frames)


def _csv(df: pd.DataFrame, path: Path) -> None:
    """Write one official CSV; a split with no videos gets no file, as an absent split of a partial release."""
    if len(df):
        write_table(path, df)


def _write_csvs(items: list[Item], out: Path) -> dict[str, int]:
    counts = {}
    by = {}
    for it in items:
        by.setdefault((it.task, it.split), []).append(it)
    pool = by.get(("pretrain", "pool"), [])
    _csv(pd.DataFrame({"video_id:FILE": [i.video_id for i in pool], "title": [i.title for i in pool]}),
         out / TASK_FILES["pretrain"])
    counts["pretrain"] = len(pool)
    for split in ("train", "val", "test"):
        gt = split != "test"  # like the release: the test split has no ground truth
        rows = by.get(("classification", split), [])
        _csv(pd.DataFrame({"video_id:FILE": [i.video_id for i in rows], "title": [i.title for i in rows],
                           "label": [CLASS_NAMES[i.cues.label] if gt else None for i in rows]}),
             out / TASK_FILES["classification"].format(split=split))
        rows = by.get(("captioning", split), [])
        caps = [(i.captions[0] if split == "train" else str(i.captions)) if gt else None for i in rows]
        _csv(pd.DataFrame({"video_id:FILE": [i.video_id for i in rows], "golden_caption": caps}),
             out / TASK_FILES["captioning"].format(split=split))
        rows = by.get(("retrieval", split), [])
        _csv(pd.DataFrame({"clip_name:FILE": [i.video_id for i in rows],
                           "caption": [i.captions[0] if gt else None for i in rows]}),
             out / TASK_FILES["retrieval"].format(split=split))
        for task in ("classification", "captioning", "retrieval"):
            counts[f"{task}_{split}"] = len(by.get((task, split), []))
    return counts


def _ground_truth(items: list[Item], n_frames: dict[str, int], fps: int) -> pd.DataFrame:
    rows = []
    for it in items:
        shots, start = [], 0
        for s in it.spec.shots:
            shots.append([start, start + s.n_frames, s.transition])
            start += s.n_frames
        rows.append({
            "video_id": it.video_id, "task": it.task, "split": it.split, "source_id": it.source_id,
            "label": it.cues.label, "label_name": CLASS_NAMES[it.cues.label],
            "duration": n_frames[it.video_id] / fps, "defect": it.defect, "duplicate_of": it.duplicate_of,
            "title": it.title, "captions": json.dumps(it.captions, ensure_ascii=False),
            "scene_shown": it.cues.scene_shown, "object_shown": it.cues.object_shown,
            "group_cue": it.cues.group_cue, "keyword_cue": it.cues.keyword_cue,
            "shape": it.cues.shape, "motion": it.cues.motion, "night": it.cues.night,
            "shots": json.dumps(shots), "scene_text": next((s.text for s in it.spec.shots if s.text), None),
            **it.extras,
        })
    return pd.DataFrame(rows)


def generate(cfg: MiniYoukuConfig, out_dir: Path, progress: bool = True) -> dict:
    """Write mini-Youku to `out_dir` (videos/ + official CSVs + ground_truth.csv + meta.json).

    Returns:
        The contents of meta.json: configuration, counts per file, designed ceilings.
    """
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    items = plan(cfg)
    jobs = []
    for k, it in enumerate(items):
        corrupt = ("truncated" if k % 2 else "random") if it.defect == "corrupt" else ""
        jobs.append((it.spec, str(out / "videos" / it.video_id), corrupt, cfg.seed * 7919 + k))
    n_frames: dict[str, int] = {}
    bar = tqdm(total=len(jobs), desc="mini-Youku videos", unit="video", disable=not progress)
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
            for path, n in pool.map(_render_one, jobs, chunksize=32):
                n_frames[Path(path).name] = n
                bar.update()
    else:
        for job in jobs:
            path, n = _render_one(job)
            n_frames[Path(path).name] = n
            bar.update()
    bar.close()
    counts = _write_csvs(items, out)
    corpus = text_corpus(cfg)
    write_text(out / "text_corpus.txt", "\n\n".join("\n".join(page) for page in corpus) + "\n")
    counts["text_corpus_lines"] = sum(len(page) for page in corpus)
    _csv(_ground_truth(items, n_frames, cfg.fps), out / "ground_truth.csv")
    c = cfg.classification_cues
    meta = {
        "generator": "vlstudy.data.mini_youku",
        "config": to_dict(cfg),
        "counts": counts,
        "videos": len(items),
        "frames": int(sum(n_frames.values())),
        "defects": {d: sum(1 for i in items if i.defect == d) for d in DEFECTS},
        "designed_ceilings": designed_ceilings(c.p_scene, c.p_object, c.p_group, c.p_keyword),
    }
    write_json(out / "meta.json", meta)
    log.info("mini-Youku: %d videos, %d frames in %s", len(items), meta["frames"], out)
    return meta
