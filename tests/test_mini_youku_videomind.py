"""mini-Youku's VideoMind layers and 6W tags: the designed evidence per layer, and their way into prepared data."""

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.generate import MiniYoukuConfig, SplitCounts, generate, plan
from vlstudy.data.mini_youku.oracle import designed_layer_scores
from vlstudy.data.mini_youku.world import CLASSES, COLOURS, DISTRACTOR_COLOUR, GROUPS, MOTIONS, SHAPES
from vlstudy.data.prepare import PrepareConfig, prepare, write_prepared
from vlstudy.data.schema import Record, read_table, records_to_frame
from vlstudy.data.stats import tags_6w_table, videomind_text_statistics
from vlstudy.data.youku import YoukuSourceConfig
from vlstudy.metrics.videomind import videomind_metrics

INTENT = re.compile(r"^(?P<subject>.+?)通过(?P<action>.+)旨在(?P<purpose>.+)。$")
ITEMS = plan(dataclasses.replace(MiniYoukuConfig(), pool_videos=300))


def _visible_words() -> list[str]:
    """Words naming what only the pixels show beyond the class: colours, shapes, motions, night."""
    return [c[0] for c in COLOURS.values()] + [DISTRACTOR_COLOUR[0], *SHAPES.values(), "夜晚"] + [
        phrase for phrases in MOTIONS.values() for phrase in phrases]


def test_factual_layer_names_every_visible_cue():
    for item in ITEMS:
        cues, factual = item.cues, item.extras["factual"]
        assert T.where(cues) in factual and cues.object_words in factual
        assert any(phrase in factual for phrase in MOTIONS[cues.motion])
        assert factual.startswith("夜晚，") == cues.night
        assert cues.design.subject in factual and "在在" not in factual


def test_abstract_layer_is_the_topic_with_the_place_half_the_time_and_no_other_visible_cue():
    with_place = 0
    for item in ITEMS:
        abstract = item.extras["abstract"]
        assert item.cues.design.topic in abstract
        assert not any(word in abstract for word in _visible_words()), abstract
        with_place += T.where(item.cues) in abstract
    assert 0.42 < with_place / len(ITEMS) < 0.58


def test_intent_layer_follows_the_rule_and_is_only_partly_tied_to_the_class():
    roles = {"protagonist": 0, "uploader_class": 0, "uploader_group": 0}
    for item in ITEMS:
        d = item.cues.design
        intent = item.extras["intent"]
        slots = INTENT.match(intent)
        assert slots, intent
        assert not any(word in intent for word in _visible_words() + [T.where(item.cues)]), intent
        if slots["subject"] == d.subject:
            assert (slots["action"], slots["purpose"]) == (d.activity, d.intent)
            roles["protagonist"] += 1
        elif slots["purpose"] == d.intent:
            roles["uploader_class"] += 1
        else:
            assert slots["purpose"] in GROUPS[d.group]["purpose"]
            # nothing of the class is left: no other class's subject, activity, topic, intent or keyword either
            assert not any(word in intent for c in CLASSES for word in (c.subject, c.activity, c.topic, c.intent,
                                                                        *c.keywords)), intent
            roles["uploader_group"] += 1
    shares = {k: v / len(ITEMS) for k, v in roles.items()}
    assert shares["protagonist"] == pytest.approx(T.P_UPLOADER, abs=0.08)
    assert shares["uploader_group"] == pytest.approx(T.P_UPLOADER * T.P_GROUP_PURPOSE, abs=0.08)


def test_tags_agree_with_the_layers_and_the_cues():
    for item in ITEMS:
        d, cues = item.cues.design, item.cues
        tags = json.loads(item.extras["tags_6w"])
        assert list(tags) == sorted(["who", "what", "when", "where", "why", "how"])
        assert tags == {"who": d.subject, "what": d.topic, "when": "夜晚" if cues.night else "白天",
                        "where": T.where(cues), "how": d.activity,
                        "why": INTENT.match(item.extras["intent"])["purpose"]}


def test_layers_draw_one_number_from_the_video_generator_so_other_texts_are_unchanged():
    cues = ITEMS[0].cues
    rng, reference = np.random.default_rng([0, 4, 2]), np.random.default_rng([0, 4, 2])
    first = T.videomind_layers(cues, rng)
    reference.integers(len(MOTIONS[cues.motion]))
    assert rng.bit_generator.state == reference.bit_generator.state
    assert T.videomind_layers(cues, np.random.default_rng([0, 4, 2])) == first


def test_layers_and_tags_reach_the_prepared_tables(tmp_path):
    cfg = MiniYoukuConfig(frame_size=32, fps=2, pool_videos=30, classification_per_class=SplitCounts(1, 0, 0),
                          captioning=SplitCounts(4, 2, 2), retrieval=SplitCounts(4, 3, 3), corpus_videos=2,
                          workers=1)
    generate(cfg, tmp_path / "raw", progress=False)
    truth = {item.video_id: item.extras for item in plan(cfg)}
    prepared = prepare(PrepareConfig(source=YoukuSourceConfig(root=tmp_path / "raw"),
                                     ground_truth=str(tmp_path / "raw" / "ground_truth.csv")))
    write_prepared(prepared, tmp_path / "prepared")
    for name in ("retrieval_test", "captioning_val", "classification_train", "pretrain"):
        table = read_table(tmp_path / "prepared" / f"{name}.parquet")
        assert len(table)
        for row in table.itertuples():
            expected = truth[row.video_id]
            assert (row.factual, row.abstract, row.intent) == (expected["factual"], expected["abstract"],
                                                              expected["intent"])
            assert json.loads(row.tags_6w) == json.loads(expected["tags_6w"])
    # the designed scores read the written ground truth as they read the generator's own items
    written = pd.read_csv(tmp_path / "raw" / "ground_truth.csv", keep_default_na=False, na_values=[""])
    test_rows = written[(written["task"] == "retrieval") & (written["split"] == "test")]
    in_memory = _truth([it for it in plan(cfg) if it.task == "retrieval" and it.split == "test"])
    for layer, scores in designed_layer_scores(test_rows.reset_index(drop=True)).items():
        np.testing.assert_array_equal(scores, designed_layer_scores(in_memory)[layer])


# --- designed ceilings: a perfect recogniser of the designed cues ----------------------------------------------


def _truth(items) -> pd.DataFrame:
    return pd.DataFrame([{"label": it.cues.label, "scene_shown": it.cues.scene_shown,
                          "object_shown": it.cues.object_shown, "shape": it.cues.shape, "motion": it.cues.motion,
                          "night": it.cues.night, **it.extras} for it in items])


def test_consistent_videos_are_nested_factual_within_abstract_within_intent():
    scores = designed_layer_scores(_truth(ITEMS[:400]))
    consistent = {layer: s > 0 for layer, s in scores.items()}
    for s in scores.values():
        np.testing.assert_allclose(s.sum(axis=1), 1.0)
        assert (np.diag(s) > 0).all()  # a text is consistent with its own video
    assert not (consistent["factual"] & ~consistent["abstract"]).any()
    assert not (consistent["abstract"] & ~consistent["intent"]).any()
    sizes = {layer: c.sum(axis=1).mean() for layer, c in consistent.items()}
    assert sizes["factual"] < sizes["abstract"] < sizes["intent"]
    # a factual text tells apart exactly the videos that differ in a visible cue
    i, j = next((i, j) for i in range(400) for j in range(i) if ITEMS[i].cues.label == ITEMS[j].cues.label)
    a, b = ITEMS[i].cues, ITEMS[j].cues
    same_look = (a.scene_shown, a.object_shown, a.shape, a.motion, a.night) == (b.scene_shown, b.object_shown,
                                                                                b.shape, b.motion, b.night)
    assert consistent["factual"][i, j] == same_look


def test_designed_ceilings_order_the_layers_as_the_paper_does():
    test_split = [it for it in plan(MiniYoukuConfig()) if it.task == "captioning" and it.split == "test"]
    scores = designed_layer_scores(_truth(test_split))
    rng = np.random.default_rng(0)
    runs = [videomind_metrics({k: s + 1e-9 * rng.random(s.shape) for k, s in scores.items()}).summary
            for _ in range(5)]
    mean = {k: np.mean([r[k] for r in runs]) for k in runs[0]}
    assert mean["t2v_factual_R@1"] > mean["t2v_abstract_R@1"] > mean["t2v_intent_R@1"]
    assert mean["t2v_factual_MeanR"] < mean["t2v_abstract_MeanR"] < mean["t2v_intent_MeanR"]
    assert mean["v2t_TopR"] < mean["v2t_AvgR"] < mean["v2t_LowestR"]


def test_designed_scores_need_the_cue_columns():
    with pytest.raises(ValueError, match=r"ground truth lacks column\(s\) \['motion'\]"):
        designed_layer_scores(_truth(ITEMS[:3]).drop(columns="motion"))
    bad = _truth(ITEMS[:3])
    bad.loc[2, "intent"] = "没有意图"
    with pytest.raises(ValueError, match="ground truth row 2: intent '没有意图' does not end in 旨在"):
        designed_layer_scores(bad)


# --- statistics of the layers and tags -------------------------------------------------------------------------


def test_tag_table_and_text_statistics_count_what_the_records_hold():
    records = records_to_frame([
        Record("a", "a.mp4", factual="夜晚，舞台上。", abstract="这是一段关于翻唱的视频。", intent="甲通过乙旨在丙。",
               tags_6w=json.dumps({"who": "甲", "what": "翻唱", "when": "夜晚", "where": "舞台上", "why": "丙",
                                   "how": "乙"}, ensure_ascii=False)),
        Record("b", "b.mp4", factual="舞台上。", abstract="这是一段关于翻唱的视频。", intent="丁通过乙旨在丙。",
               tags_6w=json.dumps({"who": "丁", "what": "翻唱", "when": "白天", "where": "舞台上", "why": "丙",
                                   "how": "乙"}, ensure_ascii=False)),
        Record("c", "c.mp4"),  # real data: no layers, no tags
    ])
    tags = tags_6w_table(records)
    assert tags["video_id"].tolist() == ["a", "b"] and tags["who"].tolist() == ["甲", "丁"]
    stats = videomind_text_statistics(records).set_index("field")
    assert stats.index.tolist() == ["factual", "abstract", "intent", "who", "what", "when", "where", "why", "how"]
    assert stats.loc["factual", "videos"] == 2 and stats.loc["factual", "mean_chars"] == 5.5
    assert stats.loc["abstract", "distinct"] == 1 and stats.loc["abstract", "top_share"] == 1.0
    assert stats.loc["when", "distinct"] == 2 and stats.loc["why", "kind"] == "tag"
    bad = records_to_frame([Record("x", "x.mp4", tags_6w="{who: 1")])
    with pytest.raises(ValueError, match="tags_6w of video 'x' is not a JSON object: '{who: 1'"):
        tags_6w_table(bad)
