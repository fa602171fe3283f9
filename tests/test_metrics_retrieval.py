"""Retrieval ranks and R@K: hand-made matrices, agreement with the official itm_eval, ties, input errors."""

import numpy as np
import pytest
import torch

from vlstudy.metrics.base import MetricError
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.metrics.retrieval import text_to_video_ranks, video_to_text_ranks


def official_itm_eval_ranks(scores_v2t, scores_t2v, txt2vid, vid2txt):
    """0-based ranks as X-PLUG/Youku-mPLUG downstream/run_retrieval_distributed_gpt3.py itm_eval computes them."""
    v2t = np.zeros(scores_v2t.shape[0])
    for index, score in enumerate(scores_v2t):
        inds = np.argsort(score)[::-1]
        v2t[index] = min(np.where(inds == i)[0][0] for i in vid2txt[index])
    t2v = np.zeros(scores_t2v.shape[0])
    for index, score in enumerate(scores_t2v):
        inds = np.argsort(score)[::-1]
        t2v[index] = np.where(inds == txt2vid[index])[0][0]
    return v2t, t2v


def test_hand_made_matrix():
    # 4 texts x 3 videos; texts 0,1 -> video 0, text 2 -> video 1, text 3 -> video 2
    similarity = np.array([[0.9, 0.1, 0.2],
                           [0.3, 0.8, 0.1],
                           [0.5, 0.4, 0.6],
                           [0.7, 0.2, 0.1]])
    result = retrieval_metrics(similarity, [0, 0, 1, 2], video_ids=["a", "b", "c"])
    texts = result.details["texts"]
    assert texts["t2v_rank"].tolist() == [1, 2, 3, 3]
    assert texts["item_id"].tolist() == ["a", "a", "b", "c"]
    # video a: best truth text 0 (0.9) is first; video b: truth text 2 (0.4) behind text 1 (0.8);
    # video c: truth text 3 (0.1) behind texts 2 (0.6), 0 (0.2) and tied with text 1 (0.1) -> pessimistic 4
    assert result.per_item["v2t_rank"].tolist() == [1, 2, 4]
    assert result.per_item["n_texts"].tolist() == [2, 1, 1]
    assert result.summary["t2v_R@1"] == 25.0
    assert result.summary["t2v_MdR"] == 2.5 and result.summary["t2v_MnR"] == 2.25
    assert result.summary["v2t_R@1"] == pytest.approx(100 / 3)
    assert result.summary["v2t_MdR"] == 2.0 and result.summary["v2t_MnR"] == pytest.approx(7 / 3)
    assert result.summary["v2t_R@5"] == 100.0 and result.summary["n_texts"] == 4


def test_agrees_with_the_official_itm_eval_without_ties():
    rng = np.random.default_rng(0)
    num_videos = 40
    txt2vid = np.concatenate([np.arange(num_videos), rng.integers(0, num_videos, 60)])
    similarity = rng.standard_normal((len(txt2vid), num_videos))
    vid2txt = [np.flatnonzero(txt2vid == v) for v in range(num_videos)]
    official_v2t, official_t2v = official_itm_eval_ranks(similarity.T, similarity, txt2vid, vid2txt)
    result = retrieval_metrics(similarity, txt2vid)
    np.testing.assert_array_equal(result.details["texts"]["t2v_rank"], official_t2v + 1)
    np.testing.assert_array_equal(result.per_item["v2t_rank"], official_v2t + 1)
    for k in (1, 5, 10):
        assert result.summary[f"t2v_R@{k}"] == pytest.approx(100.0 * np.mean(official_t2v < k))
        assert result.summary[f"v2t_R@{k}"] == pytest.approx(100.0 * np.mean(official_v2t < k))


def test_ties_are_pessimistic():
    similarity = np.zeros((6, 3))  # every score equal; texts 2 per video
    mapping = np.array([0, 0, 1, 1, 2, 2])
    assert text_to_video_ranks(similarity, mapping).tolist() == [3] * 6
    # a video's two truths tie with the 4 wrong texts: best truth ranks after all 4 wrong texts
    assert video_to_text_ranks(similarity.T, mapping).tolist() == [5, 5, 5]


def test_separate_video_to_text_scores_and_torch_input():
    similarity = torch.eye(3)
    video_to_text = torch.tensor([[0.0, 1.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    result = retrieval_metrics(similarity, torch.arange(3), video_to_text_similarity=video_to_text)
    assert result.summary["t2v_R@1"] == 100.0
    assert result.per_item["v2t_rank"].tolist() == [2, 1, 1]


@pytest.mark.parametrize("similarity, mapping, message", [
    (np.zeros((3, 2)), [0, 1], r"text_to_video must hold one video index per text \(3\)"),
    (np.zeros(3), [0, 1, 2], "similarity must be a non-empty 2-D matrix"),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), [0, 1], r"similarity\[0, 1\] is nan \(1 non-finite values\)"),
    (np.array([[0.0, 1.0], [np.inf, 0.0]]), [0, 1], r"similarity\[1, 0\] is inf"),
    (np.zeros((3, 2)), [0, 1, 2], r"text 2 \(id '2'\) maps to video 2, outside 0..1"),
    (np.zeros((3, 3)), [0, 0, 2], r"1 videos have no ground-truth text, e.g. video indices \[1\]"),
    (np.zeros((2, 2)), [0.0, 1.0], "text_to_video must hold integer video indices"),
])
def test_bad_input_is_rejected_clearly(similarity, mapping, message):
    with pytest.raises(MetricError, match=message):
        retrieval_metrics(similarity, np.asarray(mapping))
