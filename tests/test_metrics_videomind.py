"""VideoMind metrics on hand-made similarity matrices with known answers."""

import numpy as np
import pytest

from vlstudy.metrics import MetricError, videomind_metrics
from vlstudy.metrics.videomind import ground_truth_rank_profile


@pytest.fixture
def layers():
    # 3 videos, 3 layers; entry [i, j] = score of video i's text (of that layer) for video j
    factual = np.array([[0.9, 0.1, 0.0],
                        [0.2, 0.8, 0.1],
                        [0.0, 0.3, 0.7]])  # perfect: every text ranks its video first
    abstract = np.array([[0.5, 0.6, 0.0],
                         [0.1, 0.4, 0.2],
                         [0.0, 0.1, 0.3]])  # text 0 ranks its video second
    intent = np.array([[0.05, 0.0, 0.2],
                       [0.3, 0.35, 0.0],
                       [0.4, 0.6, 0.2]])  # text 0: rank 2; text 1: rank 1; text 2: rank 3
    return {"factual": factual, "abstract": abstract, "intent": intent}


def test_text_to_video_per_layer_and_pooled(layers):
    result = videomind_metrics(layers, video_ids=["x", "y", "z"])
    s = result.summary
    assert result.per_item["t2v_rank_factual"].tolist() == [1, 1, 1]
    assert result.per_item["t2v_rank_abstract"].tolist() == [2, 1, 1]
    assert result.per_item["t2v_rank_intent"].tolist() == [2, 1, 3]
    assert s["t2v_factual_R@1"] == 100.0 and s["t2v_factual_MeanR"] == 1.0
    assert s["t2v_abstract_R@1"] == pytest.approx(200 / 3) and s["t2v_abstract_MeanR"] == pytest.approx(4 / 3)
    assert s["t2v_intent_R@1"] == pytest.approx(100 / 3) and s["t2v_intent_MeanR"] == 2.0
    # pooled: ranks 1,1,1,2,1,1,2,1,3 over 9 queries
    assert s["any2v_R@1"] == pytest.approx(600 / 9) and s["any2v_MeanR"] == pytest.approx(13 / 9)
    assert s["any2v_R@5"] == 100.0


def test_video_to_text_with_three_ground_truths(layers):
    result = videomind_metrics(layers)
    # video 0 scores the 9 texts (column 0 of each layer): truths 0.9, 0.5, 0.05;
    # wrong texts 0.2, 0.0, 0.1, 0.0, 0.3, 0.4 -> r1 = 1, r2 = 2, r3 = 3 + 4 wrong >= 0.05 = 7
    # video 1 (column 1): truths 0.8, 0.4, 0.35; wrong 0.1, 0.3, 0.6, 0.1, 0.0, 0.6 -> r = 1, 4, 5
    # video 2 (column 2): truths 0.7, 0.3, 0.2; wrong 0.0, 0.1, 0.0, 0.2, 0.2, 0.0 -> r = 1, 2, 3 + 2 ties = 5
    profile = result.per_item[["v2t_r1", "v2t_r2", "v2t_r3"]].to_numpy()
    np.testing.assert_array_equal(profile, [[1, 2, 7], [1, 4, 5], [1, 2, 5]])
    s = result.summary
    assert s["v2t_hit_any_R@3"] == 100.0
    assert s["v2t_hit_all_R@3"] == 0.0
    assert s["v2t_hit_all_R@5"] == pytest.approx(200 / 3)
    assert s["v2t_hit_all_R@10"] == 100.0
    assert s["v2t_TopR"] == 1.0
    assert s["v2t_LowestR"] == pytest.approx(17 / 3)
    assert s["v2t_AvgR"] == pytest.approx((10 / 3 + 10 / 3 + 8 / 3) / 3)
    assert s["n_videos"] == 3


def test_rank_profile_ties_among_ground_truths_do_not_matter():
    scores = np.array([[1.0, 1.0, 0.5, 0.2]])  # truths are texts 0, 1, 3
    profile = ground_truth_rank_profile(scores, np.array([[1.0, 1.0, 0.2]]))
    assert profile.tolist() == [[1, 2, 4]]


def test_bad_matrices_are_rejected(layers):
    with pytest.raises(MetricError, match=r"similarities\['abstract'\] must be \(3, 3\)"):
        videomind_metrics({"factual": layers["factual"], "abstract": np.zeros((3, 4))})
    with pytest.raises(MetricError, match="no layer similarity matrix"):
        videomind_metrics({})
    bad = layers["intent"].copy()
    bad[1, 1] = np.nan
    with pytest.raises(MetricError, match=r"similarities\['intent'\]\[1, 1\] is nan"):
        videomind_metrics({**layers, "intent": bad})
