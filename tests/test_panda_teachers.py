"""Panda-70M teachers' glue: designed metadata, the text teacher, candidates, the oracle and preference ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlstudy.metrics.base import MetricError
from vlstudy.panda.teachers import (
    MetadataDesign,
    MetadataNNCaptioner,
    design_metadata,
    metadata_prompt,
    oracle_choice,
    preference,
    score_candidates,
    system_scores,
    unique_candidates,
)

SUBJECTS = ["一位歌手", "一名厨师", "一位球员", "一只小猫"]


def _records(n: int) -> pd.DataFrame:
    return pd.DataFrame({"video_id": [f"v{i:04d}" for i in range(n)],
                         "description": [f"本期视频{SUBJECTS[i % 4]}为大家带来内容{i % 4}。" for i in range(n)],
                         "subtitles": [f"大家好\n{SUBJECTS[i % 4]}正在忙\n欢迎关注" for i in range(n)]})


def test_designed_metadata_follows_the_probabilities_and_names_what_it_changed():
    records = _records(4000)
    labels = {v: i % 4 for i, v in enumerate(records["video_id"])}
    meta = design_metadata(records, MetadataDesign(), seed=0, labels=labels)
    assert (meta["description_relevance"] == "other").mean() == pytest.approx(0.15, abs=0.02)
    shares = meta["subtitles_relevance"].value_counts(normalize=True)
    assert shares["own"] == pytest.approx(0.55, abs=0.02) and shares["generic"] == pytest.approx(0.2, abs=0.02)
    own = meta["description_relevance"] == "own"
    assert (meta.loc[own, "description"] == records.loc[own, "description"]).all()
    other = ~own
    donor_class = [next(i % 4 for i, d in enumerate(records["description"][:4]) if d == text)
                   for text in meta.loc[other, "description"]]
    assert all(c != labels[v] for c, v in zip(donor_class, meta.loc[other, "video_id"]))  # always another class
    generic = meta["subtitles_relevance"] == "generic"
    assert not meta.loc[generic, "subtitles"].str.contains("正在").any()


def test_a_clips_metadata_depends_only_on_the_seed_and_its_id():
    records = _records(50)
    labels = {v: i % 4 for i, v in enumerate(records["video_id"])}
    full = design_metadata(records, MetadataDesign(), 3, labels)
    part = design_metadata(records.iloc[::-1].reset_index(drop=True), MetadataDesign(), 3, labels)
    merged = full.merge(part, on="video_id", suffixes=("", "_rev"))
    assert (merged["description_relevance"] == merged["description_relevance_rev"]).all()
    assert (merged["subtitles_relevance"] == merged["subtitles_relevance_rev"]).all()
    assert not design_metadata(records, MetadataDesign(), 4, labels).equals(full)


def test_designed_metadata_refuses_clips_without_texts():
    records = _records(3)
    records.loc[1, "subtitles"] = None
    with pytest.raises(ValueError, match="clip 'v0001' has no description or subtitles"):
        design_metadata(records, MetadataDesign(), 0)
    with pytest.raises(ValueError, match="subtitles non-negative"):
        MetadataDesign(subtitles=(1.0, -0.1, 0.1))


def test_metadata_prompt_joins_subtitle_lines():
    assert metadata_prompt("本期视频。", "大家好\n欢迎") == "简介：本期视频。字幕：大家好，欢迎。"


def test_text_teacher_returns_the_nearest_training_caption():
    metadata = ["一位歌手在舞台上唱歌", "一名厨师在厨房做饭", "球员在球场踢球"]
    teacher = MetadataNNCaptioner(metadata, ["歌", "饭", "球"])
    assert teacher(["今天歌手唱了一首歌", "厨房里的厨师", "球场", "完全无关的话abc"]) == ["歌", "饭", "球", "歌"]
    # equal to a naive TF-IDF cosine over character unigrams and bigrams
    def grams(t):
        return list(t) + [t[i:i + 2] for i in range(len(t) - 1)]
    vocab = sorted({g for m in metadata for g in grams(m)})
    tf = np.array([[grams(m).count(g) for g in vocab] for m in metadata], float)
    idf = np.log(4 / (1 + (tf > 0).sum(0))) + 1
    q = np.array([grams("厨房里的厨师").count(g) for g in vocab], float) * idf
    index = tf * idf
    cos = index @ q / np.linalg.norm(index, axis=1) / np.linalg.norm(q)
    assert teacher(["厨房里的厨师"]) == [["歌", "饭", "球"][int(np.argmax(cos))]]


def test_unique_candidates_keep_order_and_authors():
    texts, authors = unique_candidates({"a": ["x", "p"], "b": ["y", "p"], "c": ["x", "q"]})
    assert texts == [["x", "y"], ["p", "q"]]
    assert authors == [[["a", "c"], ["b"]], [["a", "b"], ["c"]]]
    with pytest.raises(MetricError, match="one caption per clip"):
        unique_candidates({"a": ["x"], "b": ["x", "y"]})


def test_oracle_picks_by_cider_and_accepts_the_best_of_any_metric():
    refs = [["一只小猫在草地上玩球"], ["厨师在厨房里做饭"]]
    texts = [["一只小猫在草地上玩球", "一只小狗在跑"], ["厨师在厨房", "厨师在厨房里做饭菜"]]
    scores = score_candidates(texts, refs)
    assert set(scores) == {"CIDEr", "BLEU-4", "ROUGE-L"} and [len(s) for s in scores["CIDEr"]] == [2, 2]
    oracle, acceptable = oracle_choice(scores)
    assert oracle[0] == 0 and acceptable[0] == {0}
    fake = {"CIDEr": [np.array([1.0, 2.0, 2.0])], "BLEU-4": [np.array([3.0, 1.0, 0.0])]}
    oracle, acceptable = oracle_choice(fake)
    assert oracle.tolist() == [1] and acceptable == [{0, 1, 2}]  # ties included, first on ties


def test_system_scores_give_each_author_its_texts_score():
    _, authors = unique_candidates({"a": ["x", "p"], "b": ["y", "p"], "c": ["x", "q"]})
    scores = system_scores(authors, [np.array([1.0, 2.0]), np.array([5.0, 7.0])], ["a", "b", "c"])
    assert scores.tolist() == [[1.0, 2.0, 1.0], [5.0, 5.0, 7.0]]


def test_preference_shares_ties_and_equals_a_naive_count():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(200, 4)).astype(float)
    result = preference(scores, ["a", "b", "c", "d"])
    naive = np.zeros(4)
    for row in scores:
        winners = [k for k in range(4) if row[k] == row.max()]
        for k in winners:
            naive[k] += 1 / len(winners)
    assert [result.summary[s] for s in "abcd"] == pytest.approx(100 * naive / 200)
    assert sum(result.summary[s] for s in "abcd") == pytest.approx(100.0)
    assert preference(np.array([[1.0, 1.0], [0.0, 2.0]]), ["x", "y"]).summary == {"x": 25.0, "y": 75.0, "n_items": 2}
    with pytest.raises(MetricError, match=r"scores must be finite \(C, S=2\)"):
        preference(np.array([[1.0, np.nan]]), ["x", "y"])
