"""mini-Youku's VideoMind layers and 6W tags: the designed evidence per layer, and their way into prepared data."""

import dataclasses
import json
import re

import numpy as np
import pytest

from vlstudy.data.mini_youku import text as T
from vlstudy.data.mini_youku.generate import MiniYoukuConfig, SplitCounts, generate, plan
from vlstudy.data.mini_youku.world import CLASSES, COLOURS, DISTRACTOR_COLOUR, GROUPS, MOTIONS, SHAPES
from vlstudy.data.prepare import PrepareConfig, prepare, write_prepared
from vlstudy.data.schema import read_table
from vlstudy.data.youku import YoukuSourceConfig

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
