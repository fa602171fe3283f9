"""A deterministic rubric grader: an answer to a grounded instruction → grade A–D, with what it checked and found.

The grades are Youku-mPLUG's (Xu et al., 2023, §5.4, from Self-Instruct, Wang et al., 2022): A correct and
satisfying, B acceptable with minor imperfections, C responds but with significant errors, D irrelevant or
invalid. Here they are decided from the instruction's checklist (:class:`~vlstudy.humaneval.instructions.Fact`):

1. **D** when the answer is empty or has no Chinese character, or mentions none of the asked facts, right,
   vague or wrong (it does not respond to the instruction: e.g. a caption given to "what does the text say?").
2. **C** when any stated fact is wrong ("contradicted"): an asked one, or one the answer states unasked (the
   item's ``known`` facts: a wrong subject in an answer about the object is still an error).
3. **C** when two or more asked facts are not stated (missing or vague), or the aspect's key fact is not
   (:data:`~vlstudy.humaneval.instructions.KEY_SLOTS`: the activity when asked what is done, the intent when asked
   why); **B** when exactly one other fact is not stated; **A** when every asked fact is matched.

When is a fact *stated*, and *right*? The answer is normalised (NFKC, lower case, whitespace removed) and cut
into mentions by leftmost-longest matching against one lexicon of the world's wordings
(:mod:`vlstudy.data.mini_youku.world`): category names and topics, subjects (also without their quantifier:
一位歌手 → 歌手), activities, colours (红色 …), shapes (圆球, also 小球/圆形 …), every motion variant of the world
(上下弹跳 / 上下跳动 / 一蹦一跳, also 弹跳 …), places (舞台 / 舞台上; 室内 / 室外), intents and scene texts (and
"没有文字", which contradicts any scene text). One lexicon, longest first, keeps a word inside a longer one from
counting: 广场 in 跳广场舞 is the activity, not the place. A fact is *matched* when a mention of its slot names
the true value and none names another; *contradicted* when one names another value; *vague* when its only
mentions are vague rather than wrong — 室内 for a kitchen, 运动员 for 篮球运动员, 动漫 for 少儿动漫 (a wording contained
in the true value) — which responds to the instruction but does not state the fact; *missing* when there is
none. Paraphrases outside the lexicon count as missing.

Answers are plain text here: markup such as ``<script>`` is matched as characters and never interpreted.
Hand-written because no library grades Chinese free text against a structured checklist; the lexicon is the
world's own vocabulary, so it is exact on this data and says nothing about open-domain answers.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.world import (
    CLASSES,
    COLOURS,
    DISTRACTOR_COLOUR,
    GROUPS,
    MOTIONS,
    SCENE_TEXTS,
    SCENES,
    SHAPES,
)
from vlstudy.humaneval.instructions import KEY_SLOTS, Fact, GroundedItem

__all__ = ["RUBRIC_PANEL", "STATUSES", "Term", "Check", "RubricResult", "LEXICON", "normalise", "mentions",
           "grade_answer", "grade_responses", "as_ratings"]

RUBRIC_PANEL = "rubric"
"""The panel name of the rubric's grades when they are analysed like ratings (:func:`as_ratings`)."""

STATUSES: tuple[str, ...] = ("matched", "vague", "missing", "contradicted")
_NOT_STATED = ("vague", "missing")

_SHAPE_WORDS = {"disc": ("圆球", "小球", "球体", "圆形"), "square": ("方块", "正方形", "方形"),
                "triangle": ("三角", "三角形"), "cross": ("十字", "十字形"), "ring": ("圆环", "环形")}
_MOTION_WORDS = {"bounce": ("弹跳", "跳动", "蹦跳", "上下运动", "上下移动"),
                 "slide": ("滑动", "左右移动", "来回移动", "左右运动", "来回滑动"),
                 "orbit": ("转圈", "绕圈", "画圈", "转动", "圆周运动")}
_QUANTIFIERS = ("一位", "一个", "一只", "两位", "一群", "几个", "剧中的")
_INDOOR = ("演播室", "影院", "厨房", "客厅", "儿童房", "化妆间", "教室", "办公室", "电脑屏幕前", "公寓")
_OUTDOOR = ("广场", "山野", "街道")  # 舞台 and 球场 may be either
_NO_TEXT = ("没有文字", "没有出现文字", "没有任何文字", "无文字")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Term:
    """What one wording means: the slot, the values it names, and the values it is only vague about."""

    slot: str
    values: frozenset[str]
    compatible: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Check:
    """One fact checked in an answer.

    Attributes:
        slot, expected: the fact.
        asked: whether the instruction asked for it (else the answer stated it unasked).
        status: ``matched``, ``vague`` (a wording neither right nor wrong), ``missing`` or ``contradicted``.
        found: the answer's wordings of this slot (normalised), in order.
    """

    slot: str
    expected: str
    asked: bool
    status: str
    found: tuple[str, ...]


@dataclass(frozen=True)
class RubricResult:
    """A grade with its evidence: every asked fact's check, and the unasked facts the answer stated."""

    grade: str
    checks: tuple[Check, ...]
    reason: str


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, no whitespace: the form answers and wordings are compared in."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).lower())


def _place(scene: int) -> str:
    """The place phrase (e.g. 舞台上) of a scene, as the captions write it."""
    c = next(c for c in CLASSES if c.scene == scene)
    return T.where(T.Cues(c.index, True, True, False, False, c.look.shape, c.look.motion))


def _build() -> dict[str, tuple[Term, ...]]:
    named: dict[tuple[str, str], set[str]] = {}  # (surface, slot) → values named

    def add(slot: str, surfaces, value: str | None) -> None:
        for s in surfaces:
            named.setdefault((normalise(s), slot), set()).update([value] if value is not None else [])

    groups = {g["name"][0] for g in GROUPS}
    for c in CLASSES:
        names = {c.name, c.topic, c.name.split("（")[0]}
        if c.name in groups:  # 搞笑 is also a format word: only 搞笑视频 / 搞笑类 name the class
            names = (names - {c.name}) | {f"{c.name}视频", f"{c.name}类"}
        add("category", names, c.name)
        core = next((c.subject[len(q):] for q in _QUANTIFIERS if c.subject.startswith(q)), c.subject)
        add("subject", {c.subject, core.removesuffix("们")}, c.subject)
        add("activity", [c.activity], c.activity)
        add("intent", [c.intent], c.intent)
    for word, _ in (*COLOURS.values(), DISTRACTOR_COLOUR):
        add("colour", [word, word.replace("色", "颜色")], word)
    for key, word in SHAPES.items():
        add("shape", _SHAPE_WORDS[key], word)
    for key, variants in MOTIONS.items():
        add("motion", variants + _MOTION_WORDS[key], variants[0])
    for i, scene in enumerate(SCENES):
        add("place", [scene.name, _place(i)], _place(i))
    add("place", ["室内"], "室内")
    add("place", ["室外", "户外"], None)
    for text in SCENE_TEXTS:
        add("scene_text", [text], text)
    add("scene_text", _NO_TEXT, None)

    values: dict[str, set[str]] = {}  # slot → every value the lexicon names
    for (_, slot), vals in named.items():
        values.setdefault(slot, set()).update(vals)
    places = {name: _place(i) for i, name in enumerate(s.name for s in SCENES)}
    vague = {("室内", "place"): {places[n] for n in places if n not in _OUTDOOR},
             ("室外", "place"): {places[n] for n in places if n not in _INDOOR}}
    vague[("户外", "place")] = vague[("室外", "place")]
    lexicon: dict[str, list[Term]] = {}
    for (surface, slot), vals in named.items():
        inside = {v for v in values[slot] if surface in normalise(v)} - vals  # a shorter wording of the value
        lexicon.setdefault(surface, []).append(
            Term(slot, frozenset(vals), frozenset(vague.get((surface, slot), inside))))
    return {s: tuple(terms) for s, terms in lexicon.items()}


LEXICON: dict[str, tuple[Term, ...]] = _build()
"""Normalised wording → what it means (usually one term; a wording shared by two slots has two)."""
_LONGEST = max(map(len, LEXICON))


def mentions(text: str) -> list[tuple[str, tuple[Term, ...]]]:
    """The lexicon's wordings in a normalised text, leftmost-longest, without overlaps: (wording, terms) pairs."""
    out, i = [], 0
    while i < len(text):
        for length in range(min(_LONGEST, len(text) - i), 0, -1):
            if text[i:i + length] in LEXICON:
                out.append((text[i:i + length], LEXICON[text[i:i + length]]))
                i += length
                break
        else:
            i += 1
    return out


def _check(fact: Fact, found: list[tuple[str, tuple[Term, ...]]], asked: bool) -> Check:
    terms = [(w, t) for w, terms in found for t in terms if t.slot == fact.slot]
    wrong = any(fact.value not in t.values and fact.value not in t.compatible for _, t in terms)
    right = any(fact.value in t.values for _, t in terms)
    status = "contradicted" if wrong else "matched" if right else "vague" if terms else "missing"
    return Check(fact.slot, fact.value, asked, status, tuple(dict.fromkeys(w for w, _ in terms)))


def _describe(checks: Sequence[Check]) -> str:
    return ", ".join(f"{c.slot} (expected {c.expected}, found {'/'.join(c.found)})" for c in checks)


def grade_answer(item: GroundedItem, answer: str) -> RubricResult:
    """Grade one answer to a grounded item by the rule in the module docstring."""
    text = normalise(answer)
    if not _CJK.search(text):
        return RubricResult("D", (), "D: empty, or no Chinese text")
    found = mentions(text)
    asked = [_check(f, found, True) for f in item.facts]
    unasked = [c for c in (_check(f, found, False) for f in item.known) if c.status != "missing"]
    checks = (*asked, *unasked)
    wrong = [c for c in checks if c.status == "contradicted"]
    missing = [f"{c.slot}{' (vague)' if c.status == 'vague' else ''}" for c in asked if c.status in _NOT_STATED]
    if all(c.status == "missing" for c in asked):
        return RubricResult("D", checks, f"D: states none of the asked facts ({', '.join(missing)})")
    if wrong:
        return RubricResult("C", checks, f"C: contradicted {_describe(wrong)}")
    if missing:
        key = KEY_SLOTS.get(item.aspect)
        grade = "C" if len(missing) >= 2 or any(c.slot == key and c.status != "matched" for c in asked) else "B"
        return RubricResult(grade, checks, f"{grade}: {len(missing)} of {len(asked)} asked facts not stated "
                                           f"({', '.join(missing)})")
    return RubricResult("A", checks, f"A: all {len(asked)} asked facts stated, none contradicted")


def grade_responses(items: Sequence[GroundedItem], responses: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The rubric's grade of every (item, responder) answer.

    Args:
        items: the grounded items, in package order.
        responses: responder → one answer per item (as ``generate_responses`` returns).

    Returns:
        One row per answer: item_id, video_id, aspect, model, grade, n_asked, n_matched, n_vague, n_missing (of
        the asked facts), n_contradicted (asked or unasked), reason, checks (JSON list of :class:`Check`), answer.
    """
    rows = []
    for model, answers in responses.items():
        if len(answers) != len(items):
            raise ValueError(f"model {model!r}: {len(answers)} answers for {len(items)} items")
        for item, answer in zip(items, answers):
            result = grade_answer(item, answer)
            count = {s: sum(c.status == s for c in result.checks if c.asked or s == "contradicted")
                     for s in STATUSES}
            rows.append({"item_id": item.item_id, "video_id": item.video_id, "aspect": item.aspect, "model": model,
                         "grade": result.grade, "n_asked": len(item.facts), **{f"n_{s}": n for s, n in count.items()},
                         "reason": result.reason,
                         "checks": json.dumps([asdict(c) for c in result.checks], ensure_ascii=False),
                         "answer": answer})
    return pd.DataFrame(rows)


def as_ratings(rubric: pd.DataFrame) -> pd.DataFrame:
    """The rubric's grades as a long ratings table with one rater, ``rubric`` (panel ``rubric``; no best picks),
    so the grade tables of :mod:`vlstudy.humaneval.scores` can be drawn for the rubric too."""
    return pd.DataFrame({"rater": RUBRIC_PANEL, "item_id": rubric["item_id"], "model": rubric["model"],
                         "grade": rubric["grade"], "best": False, "simulated": False, "panel": RUBRIC_PANEL})
