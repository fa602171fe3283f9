"""Panda-70M caption selection: the hard-negative weighted InfoNCE, the oracle, R@1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlstudy.metrics.base import MetricError
from vlstudy.panda.selector import (acceptable_candidates, bleu4_scores, candidate_weights, cider_scores,
                                    oracle_selection, selection_metrics, selector_loss, weighted_info_nce)


def _naive(similarity, positive, weights, temperature):
    total = 0.0
    for c in range(similarity.shape[0]):
        p = int(positive[c])
        numerator = math.exp(similarity[c, p] / temperature)
        denominator = numerator + sum(float(weights[c, k]) * math.exp(similarity[c, k] / temperature)
                                      for k in range(similarity.shape[1]) if k != p)
        total += -math.log(numerator / denominator)
    return total / similarity.shape[0]


def test_weighted_info_nce_equals_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    similarity = torch.rand(5, 12, generator=g, dtype=torch.float64) * 2 - 1
    caption_clip = torch.arange(12) // 3 % 5
    positive = torch.tensor([0, 3, 6, 9, 1])  # caption 1 belongs to clip 0 too: clip 4's positive is not its own
    weights = candidate_weights(caption_clip, 5, dtype=torch.float64)
    assert weights[0, :3].tolist() == [1, 1, 1] and weights[0, 3].item() == pytest.approx(0.01)
    got = weighted_info_nce(similarity, positive, weights, temperature=0.1)
    assert got.item() == pytest.approx(_naive(similarity.numpy(), positive, weights, 0.1), rel=1e-12)


def test_hard_negatives_weigh_100_times_more_than_other_clips_captions():
    """Two clips, two candidates each, similarities chosen so the loss can be written down by hand."""
    similarity = torch.tensor([[0.9, 0.8, 0.3, 0.1],
                               [0.2, 0.4, 0.7, 0.6]], dtype=torch.float64)
    positive = torch.tensor([0, 2])
    caption_clip = torch.tensor([0, 0, 1, 1])
    tau = 0.5
    e = lambda x: math.exp(x / tau)  # noqa: E731
    by_hand = (-math.log(e(0.9) / (e(0.9) + e(0.8) + 0.01 * (e(0.3) + e(0.1))))
               - math.log(e(0.7) / (e(0.7) + e(0.6) + 0.01 * (e(0.2) + e(0.4))))) / 2
    weights = candidate_weights(caption_clip, 2, 1.0, 0.01, torch.float64)
    weighted = weighted_info_nce(similarity, positive, weights, tau)
    assert weighted.item() == pytest.approx(by_hand, rel=1e-12)
    uniform = weighted_info_nce(similarity, positive, candidate_weights(caption_clip, 2, 1.0, 1.0, torch.float64), tau)
    assert uniform.item() == pytest.approx(F.cross_entropy(similarity / tau, positive).item(), rel=1e-12)
    assert uniform > weighted  # down-weighting other clips' captions lowers the loss
    only_own = weighted_info_nce(similarity, positive, candidate_weights(caption_clip, 2, 1.0, 0.0, torch.float64), tau)
    assert only_own.item() == pytest.approx((-math.log(e(0.9) / (e(0.9) + e(0.8)))
                                             - math.log(e(0.7) / (e(0.7) + e(0.6)))) / 2, rel=1e-12)


def test_selector_loss_trains_a_projection_to_prefer_the_oracle():
    g = torch.Generator().manual_seed(0)
    clips, per_clip, dim = 6, 4, 16
    video = torch.randn(clips, dim, generator=g)
    text = torch.randn(clips * per_clip, dim, generator=g)
    caption_clip = torch.arange(clips * per_clip) // per_clip
    positive = torch.arange(clips) * per_clip + torch.tensor([0, 1, 2, 3, 0, 1])
    projection = torch.nn.Linear(dim, dim)
    optimiser = torch.optim.Adam(projection.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = selector_loss(projection(video), text, caption_clip, positive)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    with torch.no_grad():
        scores = (F.normalize(projection(video), dim=-1) @ F.normalize(text, dim=-1).T)
    own = [scores[c, c * per_clip:(c + 1) * per_clip].numpy() for c in range(clips)]
    oracle = (positive - torch.arange(clips) * per_clip).tolist()
    assert selection_metrics(own, oracle).summary["R@1"] == 100.0
    with pytest.raises(ValueError, match="one of its own candidates"):
        selector_loss(video, text, caption_clip, torch.zeros(clips, dtype=torch.long))


REFERENCES = [["一个男人在公园里跑步。", "公园里有个男人正在跑步。"],
              ["厨师在厨房里切菜做饭。", "一位厨师在厨房做饭。"]]
CANDIDATES = [["一只小狗在沙发上睡觉。", "一个男人在公园里慢慢跑步。", "一个男人在公园里跑步。"],
              ["一位厨师在厨房做饭。", "两只猫在草地上玩球。"]]


@pytest.mark.parametrize("scorer", [cider_scores, bleu4_scores])
def test_oracle_picks_the_candidate_closest_to_the_references(scorer):
    oracle, scores = oracle_selection(CANDIDATES, REFERENCES, scorer)
    assert oracle.tolist() == [2, 0]
    assert [len(s) for s in scores] == [3, 2] and scores[0][1] > scores[0][0]
    assert acceptable_candidates(scores, margin=0.0) == [{2}, {0}]
    assert 1 in acceptable_candidates(scores, margin=scores[0][2] - scores[0][1])[0]


def test_oracle_ties_take_the_first_and_bad_input_is_named():
    oracle, _ = oracle_selection([["一个男人在公园里跑步。", "一个男人在公园里跑步！"]], REFERENCES[:1])
    assert oracle.tolist() == [0]
    with pytest.raises(MetricError, match=r"clips \[1\] have no candidate captions"):
        oracle_selection([CANDIDATES[0], []], REFERENCES)
    with pytest.raises(MetricError, match="1 clips of candidates but 2 of references"):
        oracle_selection(CANDIDATES[:1], REFERENCES)


def test_selection_r1_against_the_oracle_and_any_acceptable():
    scores = [np.array([0.1, 0.9, 0.3]), np.array([0.5, 0.2]), np.array([0.2, 0.2, 0.1])]
    result = selection_metrics(scores, oracle=[1, 1, 2], acceptable=[{1}, {0, 1}, {0}])
    assert result.per_item["picked"].tolist() == [1, 0, 0]
    assert result.summary["R@1"] == pytest.approx(100 / 3) and result.summary["R@1_any"] == pytest.approx(300 / 3)
