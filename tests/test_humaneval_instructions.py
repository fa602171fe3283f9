"""Grounded instructions: the truth read from mini-Youku's ground truth, the sampled items and their checklists,
and the instruction-tuning pairs."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.world import CLASSES
from vlstudy.humaneval.instructions import (
    ASPECT_SLOTS,
    GROUNDED_ASPECTS,
    Fact,
    GroundedItem,
    InstructionPairsConfig,
    VideoTruth,
    applicable_aspects,
    ground,
    instruction_pairs,
    read_truth,
    sample_grounded_items,
    templates,
)
from vlstudy.humaneval.protocol import EvalItem, ProtocolConfig, VideoItem, read_manifest, write_package


def _scene_text(item) -> str | None:
    return next((shot.text for shot in item.spec.shots if shot.text), None)


def test_truth_read_from_the_ground_truth_table_is_what_the_generator_drew(planned_videos, tmp_path):
    expected = [VideoTruth.from_cues(it.video_id, it.cues, _scene_text(it)) for it in planned_videos.items]
    assert planned_videos.truths == expected
    csv = tmp_path / "ground_truth.csv"
    planned_videos.table.to_csv(csv, index=False)
    val = read_truth(csv, task="captioning", split="val")  # booleans and empty scene texts through CSV
    assert val == [t for t, it in zip(expected, planned_videos.items) if it.split == "val"] and len(val) == 180
    some_text = next(t for t in val if t.scene_text)
    assert some_text.scene_text in ("优酷出品", "精彩片段", "高清", "独家", "第一集", "热门", "现场", "原创")


def test_truth_of_one_video_in_the_worlds_words():
    c = CLASSES[0]  # 翻唱: a red ring orbiting on the stage
    shown = VideoTruth.from_cues("v", T.Cues(0, True, True, False, False, c.look.shape, c.look.motion), "高清")
    assert shown == VideoTruth("v", "翻唱", "一位歌手", "深情演唱", "红色", "圆环", "绕着圈转动", "舞台上", "高清",
                               "展示自己的歌声")
    hidden = VideoTruth.from_cues("v", T.Cues(0, False, False, False, False, "square", "bounce"), "")
    assert (hidden.colour, hidden.shape, hidden.motion, hidden.place, hidden.scene_text) == (
        "灰色", "方块", "上下弹跳", "室内", None)
    assert hidden.facts(("place", "scene_text")) == (Fact("place", "室内"),)


def test_truth_errors_name_the_column_or_row(planned_videos, tmp_path):
    with pytest.raises(KeyError, match=r"^\"ground truth: missing column\(s\) \['motion'\]\"$"):
        read_truth(planned_videos.table.drop(columns="motion"))
    with pytest.raises(KeyError, match=r"missing column\(s\) \['task'\]"):
        read_truth(planned_videos.table.drop(columns="task"), task="captioning")
    bad = planned_videos.table.copy()
    bad.loc[3, "label"] = 45
    with pytest.raises(ValueError, match=r"^ground truth index 3: label 45 is not a class index 0\.\.44$"):
        read_truth(bad)
    bad = planned_videos.table.copy()
    bad.loc[5, "motion"] = "spin"
    with pytest.raises(ValueError, match=r"^ground truth index 5: unknown shape '\w+' or motion 'spin'$"):
        read_truth(bad)
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad\.csv row 7: unknown shape '\w+' or motion 'spin'$"):  # header: row 1
        read_truth(tmp_path / "bad.csv")


def test_each_aspect_asks_its_facts_and_the_rest_are_known(planned_videos):
    truth = next(t for t in planned_videos.truths if t.scene_text)
    item = ground("q001", truth, "object", templates("object")[0], np.random.default_rng(0))
    assert isinstance(item, EvalItem) and item.instruction == templates("object")[0]
    assert item.facts == (Fact("colour", truth.colour), Fact("shape", truth.shape), Fact("motion", truth.motion))
    assert [f.slot for f in item.known] == ["category", "subject", "activity", "place", "intent"]  # no scene text
    intent = ground("q002", truth, "intent", templates("intent")[0], np.random.default_rng(0))
    assert intent.reference == f"{truth.subject}通过{truth.activity}旨在{truth.intent}。"  # VideoMind's format
    no_text = next(t for t in planned_videos.truths if not t.scene_text)
    assert "scene_text" not in applicable_aspects(no_text) and len(applicable_aspects(truth)) == len(GROUNDED_ASPECTS)
    with pytest.raises(ValueError, match=r"aspect 'scene_text' does not apply \(no scene text\)"):
        ground("q003", no_text, "scene_text", "？", np.random.default_rng(0))


def test_eval_and_train_templates_are_disjoint_chinese_questions():
    for aspect in GROUNDED_ASPECTS:
        evaluation, train = templates(aspect, "eval"), templates(aspect, "train")
        assert len(evaluation) >= 2 and len(train) >= 2 and not set(evaluation) & set(train)
    with pytest.raises(KeyError, match="no templates for aspect 'knowledge' in split 'eval'"):
        templates("knowledge")


def test_sampled_items_follow_the_protocol_and_balance_aspects(planned_videos):
    val = [t for t, it in zip(planned_videos.truths, planned_videos.items) if it.split == "val"]
    items = sample_grounded_items(val, ProtocolConfig(), np.random.default_rng(0))
    assert [it.item_id for it in items] == [f"q{k:03d}" for k in range(1, 66)]
    per_video = Counter(it.video_id for it in items)
    assert len(per_video) == 50 and sorted(Counter(per_video.values()).items()) == [(1, 35), (2, 15)]
    by_id = {t.video_id: t for t in val}
    order = [t.video_id for t in val]
    assert list(per_video) == sorted(per_video, key=order.index)  # pool order
    for video in per_video:
        aspects = [it.aspect for it in items if it.video_id == video]
        assert len(set(aspects)) == len(aspects)
        assert set(aspects) <= set(applicable_aspects(by_id[video]))
    counts = Counter(it.aspect for it in items)
    always = [counts[a] for a in GROUNDED_ASPECTS if a != "scene_text"]
    assert max(always) - min(always) <= 1 and counts["scene_text"] >= 1
    for it in items:
        assert it.instruction in templates(it.aspect, "eval")
        assert it.facts == by_id[it.video_id].facts(ASPECT_SLOTS[it.aspect])
    assert sample_grounded_items(val, ProtocolConfig(), np.random.default_rng(0)) == items
    assert sample_grounded_items(val, ProtocolConfig(), np.random.default_rng(1)) != items
    with pytest.raises(ValueError, match=r"^video pool has 180 videos, fewer than n_videos=200$"):
        sample_grounded_items(val, ProtocolConfig(n_videos=200, n_instructions=200), np.random.default_rng(0))
    no_text = [t for t in val if not t.scene_text][:2]
    with pytest.raises(ValueError, match=r"7 instructions asked, 6 aspects apply"):
        sample_grounded_items(no_text, ProtocolConfig(n_videos=1, n_instructions=7), np.random.default_rng(0))


def test_grounded_items_go_into_a_package_without_their_answer_key(planned_videos, tmp_path):
    items = sample_grounded_items(planned_videos.truths[:6], ProtocolConfig(n_videos=3, n_instructions=4),
                                  np.random.default_rng(0))
    videos = [VideoItem(t.video_id, np.zeros((1, 8, 8, 3), np.uint8)) for t in planned_videos.truths[:6]]
    write_package(tmp_path / "pkg", tmp_path / "key.json", items, videos, {"m": ["回答"] * 4, "n": ["答"] * 4},
                  np.random.default_rng(0))
    manifest = read_manifest(tmp_path / "pkg")
    assert [e["instruction"] for e in manifest["items"]] == [it.instruction for it in items]
    text = (tmp_path / "pkg" / "items.json").read_text(encoding="utf-8")
    assert not any(it.reference in text for it in items) and "facts" not in text
    again = [GroundedItem.from_dict(json.loads(json.dumps(it.to_dict(), ensure_ascii=False))) for it in items]
    assert again == items


def test_instruction_pairs_use_train_templates_and_reference_answers(planned_videos):
    train = [t for t, it in zip(planned_videos.truths, planned_videos.items) if it.split == "train"]
    config = InstructionPairsConfig(per_video=3)
    pairs = instruction_pairs(train, config, np.random.default_rng(0))
    per_video = Counter(p.video_id for p in pairs)
    assert set(per_video.values()) == {3} and len(per_video) == len(train)
    by_id = {t.video_id: t for t in train}
    for video in per_video:
        aspects = [p.aspect for p in pairs if p.video_id == video]
        assert len(set(aspects)) == 3 and set(aspects) <= set(applicable_aspects(by_id[video]))
    assert all(p.instruction in templates(p.aspect, "train") for p in pairs)
    counts = Counter(p.aspect for p in pairs)
    assert set(counts) == set(GROUNDED_ASPECTS)
    assert instruction_pairs(train, config, np.random.default_rng(0)) == pairs
    one = instruction_pairs(train[:5], InstructionPairsConfig(per_video=9, aspects=["scene_text", "category"]),
                            np.random.default_rng(0))
    assert [p.aspect for p in one] == [a for t in train[:5] for a in applicable_aspects(t, ["scene_text", "category"])]
    with pytest.raises(ValueError, match=r"^unknown aspect 'knowledge'; known: overall, action"):
        InstructionPairsConfig(aspects=["knowledge"])
