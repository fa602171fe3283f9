"""The rubric grader: answers of known grade, the lexicon against every text the generator writes, evidence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.world import CLASSES
from vlstudy.humaneval.instructions import (
    GROUNDED_ASPECTS,
    InstructionPairsConfig,
    VideoTruth,
    applicable_aspects,
    ground,
    instruction_pairs,
    templates,
)
from vlstudy.humaneval.rubric import Check, as_ratings, grade_answer, grade_responses, mentions, normalise


def _truth(index: int, text: str | None = "高清", scene: bool = True) -> VideoTruth:
    c = CLASSES[index]
    return VideoTruth.from_cues(f"v{index}", T.Cues(index, scene, True, False, False, c.look.shape, c.look.motion),
                                text)


SINGER = _truth(0)        # 翻唱: 一位歌手 深情演唱, 红色 圆环 绕着圈转动, 舞台上, 高清, 展示自己的歌声
DANCERS = _truth(17)      # 广场舞: 一群阿姨 跳广场舞, 蓝色 圆球 左右滑动, 广场上
COOK = _truth(20)         # 美食制作: 一位厨师 切菜炒菜, 黄色 圆环 左右滑动, 厨房里
OVERALL = ground("q1", SINGER, "overall", "描述这个视频的内容。", np.random.default_rng(0))
SINGER_CAPTION = "一位歌手在舞台上深情演唱，画面中一个红色的圆环绕着圈转动。"
COOK_CAPTION = "一位厨师在厨房里切菜炒菜，画面中一个黄色的圆环左右滑动。"


def _item(truth: VideoTruth, aspect: str):
    return ground("q1", truth, aspect, templates(aspect)[0], np.random.default_rng(0))


@pytest.mark.parametrize("answer, grade", [
    (SINGER_CAPTION, "A"),                                                     # the true caption
    (OVERALL.reference, "A"),                                                  # the reference answer
    ("舞台上，一位歌手正在深情演唱，一个红色圆环沿圆圈运动。", "A"),                 # another motion variant
    ("一位歌手在舞台上深情演唱，画面中一个蓝色的圆环绕着圈转动。", "C"),             # colour swapped
    ("一位歌手在厨房里深情演唱，画面中一个红色的圆环绕着圈转动。", "C"),             # scene swapped
    ("一位歌手在舞台上深情演唱，画面中一个红色的圆环上下弹跳。", "C"),               # motion swapped
    ("一位歌手在舞台上深情演唱，画面中一个红色的圆环。", "B"),                      # motion omitted
    ("一位歌手在舞台上深情演唱，画面中一个圆环。", "C"),                           # colour and motion omitted
    ("一位歌手在舞台上深情演唱，一个红色圆环和一个蓝色圆环绕着圈转动。", "C"),        # a second, wrong colour
    ("一位歌手在室内深情演唱，画面中一个红色的圆环绕着圈转动。", "B"),               # 室内 for the stage: vague
    ("这是一段翻唱视频：" + SINGER_CAPTION, "A"),                                 # right category, unasked
    ("这是一段街舞视频：" + SINGER_CAPTION, "C"),                                 # wrong category, unasked
    (COOK_CAPTION, "C"),                                                       # another video's caption
    ("", "D"), ("   \n", "D"), ("hello world", "D"),                           # empty or no Chinese
    ("今天天气很好，我们一起去吃饭吧。", "D"),                                      # off-topic
    ("描述这个视频的内容。", "D"),                                                # the instruction echoed
    ('<img src=x onerror="alert(1)">', "D"),                                   # markup alone
    (f"<script>alert('x')</script>{SINGER_CAPTION}", "A"),                     # markup around a right answer
    (f"<b>{SINGER_CAPTION[:10]}</b>", "C"),                                    # markup, two facts only
])
def test_overall_answers_of_known_grade(answer, grade):
    result = grade_answer(OVERALL, answer)
    assert result.grade == grade, result.reason


@pytest.mark.parametrize("truth, aspect, answer, grade", [
    (SINGER, "category", "这个视频属于翻唱类目。", "A"),
    (SINGER, "category", "这是一个ＭＶ视频。", "C"),              # full-width letters, wrong class
    (SINGER, "category", SINGER_CAPTION, "D"),                    # a caption does not name a category
    (SINGER, "scene_text", "画面中出现了文字“高清”。", "A"),
    (SINGER, "scene_text", "画面中出现了文字“独家”。", "C"),
    (SINGER, "scene_text", "画面中没有文字。", "C"),
    (SINGER, "scene_text", COOK_CAPTION, "D"),                    # another video's caption: irrelevant here
    (SINGER, "action", "一位歌手。", "C"),                          # what is done: the key fact, left out
    (SINGER, "action", "在深情演唱。", "B"),                         # who is doing it: a minor omission
    (SINGER, "action", "歌手在深情演唱", "A"),                      # the subject without its quantifier
    (SINGER, "intent", "一位歌手通过深情演唱旨在宣传新歌。", "C"),     # MV's intent
    (SINGER, "intent", "一位歌手通过深情演唱旨在展示自己的歌声。", "A"),
    (SINGER, "intent", "通过深情演唱旨在展示自己的歌声。", "B"),
    (SINGER, "intent", SINGER_CAPTION, "C"),                     # a caption says what, not why
    (DANCERS, "scene", "一群阿姨在跳广场舞。", "D"),                 # 广场 inside 跳广场舞 is not a place
    (DANCERS, "scene", "她们在广场上。", "A"),
    (DANCERS, "scene", "在户外。", "B"),                           # vague, not wrong
    (COOK, "scene", "在户外。", "C"),                              # a kitchen is not outdoors
    (COOK, "scene", "在室内。", "B"),
    (_truth(12, scene=False), "action", "篮球运动员在运球投篮。", "A"),
    (_truth(12), "action", "运动员在运球投篮。", "B"),               # 运动员 is vague for 篮球运动员
])
def test_other_aspects_of_known_grade(truth, aspect, answer, grade):
    result = grade_answer(_item(truth, aspect), answer)
    assert result.grade == grade, result.reason


def test_the_grade_records_what_was_checked_and_found():
    result = grade_answer(OVERALL, "一位歌手在厨房里深情演唱，画面中一个红色的圆环。这是翻唱。")
    assert result.grade == "C"
    assert result.checks == (
        Check("subject", "一位歌手", True, "matched", ("一位歌手",)),
        Check("activity", "深情演唱", True, "matched", ("深情演唱",)),
        Check("colour", "红色", True, "matched", ("红色",)),
        Check("shape", "圆环", True, "matched", ("圆环",)),
        Check("motion", "绕着圈转动", True, "missing", ()),
        Check("place", "舞台上", True, "contradicted", ("厨房里",)),
        Check("category", "翻唱", False, "matched", ("翻唱",)),
    )
    assert result.reason == "C: contradicted place (expected 舞台上, found 厨房里)"
    assert grade_answer(OVERALL, "一位歌手在舞台上深情演唱").reason == "C: 3 of 6 asked facts not stated " \
                                                                     "(colour, shape, motion)"


def test_every_text_the_generator_writes_about_a_video_grades_a(planned_videos):
    """The lexicon covers the world's own wording: captions, factual and intent layers, reference answers."""
    rng = np.random.default_rng(0)
    for item, truth in zip(planned_videos.items, planned_videos.truths):
        overall, intent = ground("q", truth, "overall", "？", rng), ground("q", truth, "intent", "？", rng)
        for text in (*item.captions, item.extras["factual"]):
            assert grade_answer(overall, text).grade == "A", (text, grade_answer(overall, text).reason)
        layer = item.extras["intent"]
        # The protagonist's intent states who does what to what end: an A. The uploader's ("上传者通过分享这段视频旨在…",
        # VideoMind's role A) names neither the subject nor the action asked for: a C when it still states the
        # class's intent, a D when it gives only the format group's generic purpose (no asked fact at all).
        expected = "A" if layer.startswith(truth.subject) else "C" if truth.intent in layer else "D"
        assert grade_answer(intent, layer).grade == expected, (layer, grade_answer(intent, layer).reason)
        for aspect in applicable_aspects(truth):
            grounded = ground("q", truth, aspect, "？", rng)
            assert grade_answer(grounded, grounded.reference).grade == "A", grounded.reference


def test_instruction_tuning_answers_grade_a_and_other_videos_captions_do_not(planned_videos):
    truths = planned_videos.truths
    pairs = instruction_pairs(truths, InstructionPairsConfig(per_video=7), np.random.default_rng(0))
    by_id = {t.video_id: t for t in truths}
    rng = np.random.default_rng(1)
    assert all(grade_answer(ground("q", by_id[p.video_id], p.aspect, p.instruction, rng), p.answer).grade == "A"
               for p in pairs)
    wrong = []
    for k, (truth, item) in enumerate(zip(truths, planned_videos.items)):
        other = planned_videos.items[(k + 1) % len(truths)]
        if other.cues.label != item.cues.label:
            wrong.append(grade_answer(ground("q", truth, "overall", "？", rng), other.captions[0]).grade)
    assert set(wrong) == {"C"} and len(wrong) > 250


def test_no_instruction_template_mentions_a_fact():
    """An answer that only repeats the instruction states nothing (and is graded D)."""
    for split in ("eval", "train"):
        for aspect in GROUNDED_ASPECTS:
            for text in templates(aspect, split):
                assert mentions(normalise(text)) == [], text


def test_grade_responses_table_and_its_ratings_view():
    items = [OVERALL, _item(SINGER, "scene_text")]
    table = grade_responses(items, {"good": [SINGER_CAPTION, "文字是高清"], "bad": ["", COOK_CAPTION]})
    assert list(table.columns) == ["item_id", "video_id", "aspect", "model", "grade", "n_asked", "n_matched",
                                   "n_vague", "n_missing", "n_contradicted", "reason", "checks", "answer"]
    assert table["grade"].tolist() == ["A", "A", "D", "D"]
    assert table[["n_asked", "n_matched", "n_contradicted"]].values.tolist() == [[6, 6, 0], [1, 1, 0], [6, 0, 0],
                                                                                [1, 0, 5]]  # stated, unasked, wrong
    checks = json.loads(table["checks"].iloc[1])
    assert checks == [{"slot": "scene_text", "expected": "高清", "asked": True, "status": "matched", "found": ["高清"]}]
    ratings = as_ratings(table)
    assert ratings[["rater", "model", "grade", "best", "simulated", "panel"]].values.tolist()[0] == [
        "rubric", "good", "A", False, False, "rubric"]
    with pytest.raises(ValueError, match=r"^model 'short': 1 answers for 2 items$"):
        grade_responses(items, {"short": ["x"]})
