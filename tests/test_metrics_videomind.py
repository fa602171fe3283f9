"""VideoMind metrics on hand-made similarity matrices with known answers."""

import numpy as np
import pandas as pd
import pytest

from vlstudy.metrics.base import ID_COLUMN, MetricError
from vlstudy.metrics.videomind import videomind_metrics
from vlstudy.metrics.videomind import ground_truth_rank_profile, layer_similarities, videomind_tables


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
    assert s["v2t_hit_any_R@1"] == 100.0 and "v2t_hit_any_R@3" not in s and "v2t_hit_all_R@1" not in s
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


# --- equality with a naive loop on random scores, ties included ------------------------------------------------


def _pessimistic_positions(scores: list[float], is_truth: list[bool]) -> list[int]:
    """1-based positions of the truths after sorting by score, wrong candidates first on equal scores."""
    order = sorted(range(len(scores)), key=lambda c: (-scores[c], is_truth[c]))
    return sorted(position + 1 for position, c in enumerate(order) if is_truth[c])


def _naive(layers: dict) -> dict[str, float]:
    names = list(layers)
    num_videos = len(layers[names[0]])
    out = {}
    pooled = []
    for name in names:
        s = layers[name]
        ranks = [_pessimistic_positions(list(s[i]), [j == i for j in range(num_videos)])[0] for i in range(num_videos)]
        pooled += ranks
        for k in (1, 5, 10):
            out[f"t2v_{name}_R@{k}"] = 100 * sum(r <= k for r in ranks) / num_videos
        out[f"t2v_{name}_MeanR"] = sum(ranks) / num_videos
    for k in (1, 5, 10):
        out[f"any2v_R@{k}"] = 100 * sum(r <= k for r in pooled) / len(pooled)
    out["any2v_MeanR"] = sum(pooled) / len(pooled)
    profiles = []
    for v in range(num_videos):
        scores, truth = [], []
        for name in names:
            for t in range(num_videos):
                scores.append(layers[name][t][v])
                truth.append(t == v)
        profiles.append(_pessimistic_positions(scores, truth))
    for k in (1, 5, 10):
        out[f"v2t_hit_any_R@{k}"] = 100 * sum(p[0] <= k for p in profiles) / num_videos
    for k in (3, 5, 10):
        out[f"v2t_hit_all_R@{k}"] = 100 * sum(p[-1] <= k for p in profiles) / num_videos
    out["v2t_TopR"] = sum(p[0] for p in profiles) / num_videos
    out["v2t_LowestR"] = sum(p[-1] for p in profiles) / num_videos
    out["v2t_AvgR"] = sum(sum(p) / len(p) for p in profiles) / num_videos
    out["n_videos"] = num_videos
    return out, profiles


@pytest.mark.parametrize("levels", [4, 1000])  # 4 score levels: ties everywhere; 1000: few ties
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_a_naive_loop_on_random_scores(seed, levels):
    rng = np.random.default_rng(seed)
    num_videos = 23
    layers = {name: rng.integers(0, levels, (num_videos, num_videos)).astype(np.float64) / levels
              for name in ("factual", "abstract", "intent")}
    for scores in layers.values():  # make the ground truth likelier to win, so low and high ranks both occur
        scores[np.arange(num_videos), np.arange(num_videos)] += rng.integers(0, 2, num_videos) / 2
    expected, profiles = _naive(layers)
    result = videomind_metrics(layers)
    assert result.summary.keys() == expected.keys()
    for key, value in expected.items():
        assert result.summary[key] == pytest.approx(value, abs=1e-12), key
    np.testing.assert_array_equal(result.per_item[["v2t_r1", "v2t_r2", "v2t_r3"]].to_numpy(), profiles)


def test_bootstrap_statistics_equal_the_metrics_of_the_resampled_videos():
    rng = np.random.default_rng(5)
    num_videos = 15
    layers = {name: rng.normal(size=(num_videos, num_videos)) + 1.5 * np.eye(num_videos)
              for name in ("factual", "abstract", "intent")}
    result = videomind_metrics(layers)
    drawn = rng.integers(0, num_videos, num_videos)  # one resample of videos, with repeats
    weights = np.bincount(drawn, minlength=num_videos)[None, :]
    ranks = result.per_item
    pooled = np.concatenate([ranks.loc[drawn, f"t2v_rank_{name}"].to_numpy() for name in layers])
    profile = ranks.loc[drawn, ["v2t_r1", "v2t_r2", "v2t_r3"]].to_numpy()
    expected = {"any2v_R@5": 100 * np.mean(pooled <= 5), "any2v_MeanR": pooled.mean(),
                "t2v_intent_MeanR": ranks.loc[drawn, "t2v_rank_intent"].mean(),
                "v2t_hit_any_R@1": 100 * np.mean(profile[:, 0] <= 1), "v2t_hit_all_R@10": 100 * np.mean(profile[:, 2] <= 10),
                "v2t_LowestR": profile[:, 2].mean(), "v2t_AvgR": profile.mean()}
    for key, value in expected.items():
        assert result.statistics[key](weights)[0] == pytest.approx(value), key


# --- from features to both tables -----------------------------------------------------------------------------


def _features(num_videos=12, width=8, seed=0):
    rng = np.random.default_rng(seed)
    video = rng.normal(size=(num_videos, width))
    layers = {name: video + noise * rng.normal(size=video.shape)
              for name, noise in (("factual", 0.3), ("abstract", 1.0), ("intent", 3.0))}
    return video, layers


def test_tables_from_features_match_the_metrics_of_the_dot_products():
    video, layers = _features()
    tables = videomind_tables(video, layers, rng=np.random.default_rng(0), n_boot=200,
                              video_ids=[f"v{i}" for i in range(12)])
    direct = videomind_metrics({name: t @ video.T for name, t in layers.items()})
    assert tables.result.summary == direct.summary
    assert tables.result.per_item[ID_COLUMN].tolist()[:2] == ["v0", "v1"]
    t2v = tables.text_to_video
    assert t2v["query"].unique().tolist() == ["factual", "abstract", "intent", "any"]
    assert len(t2v) == 16 and t2v["metric"].tolist()[:4] == ["R@1", "R@5", "R@10", "MeanR"]
    v2t = tables.video_to_text
    assert v2t["metric"].tolist() == ["R@1", "R@5", "R@10", "R@3", "R@5", "R@10", "TopR", "LowestR", "AvgR"]
    assert v2t["group"].tolist()[:4] == ["hit_any", "hit_any", "hit_any", "hit_all"]
    for table in (t2v, v2t):
        assert table["estimate"].tolist() == [direct.summary[k] for k in table["key"]]
        assert (table["low"] <= table["estimate"]).all() and (table["estimate"] <= table["high"]).all()
        assert set(table["better"]) == {"higher", "lower"}
    # the designed noise ordering shows: factual easiest, intent hardest
    r1 = t2v.set_index(["query", "metric"])["estimate"]
    assert r1["factual", "MeanR"] < r1["abstract", "MeanR"] < r1["intent", "MeanR"]
    again = videomind_tables(video, layers, rng=np.random.default_rng(0), n_boot=200)
    pd.testing.assert_frame_equal(again.video_to_text, v2t)


def test_features_of_torch_and_numpy_agree_and_bad_shapes_are_named():
    torch = pytest.importorskip("torch")
    video, layers = _features()
    from_torch = layer_similarities(torch.from_numpy(video), {k: torch.from_numpy(v) for k, v in layers.items()})
    np.testing.assert_allclose(from_torch["intent"], layers["intent"] @ video.T, atol=1e-5)  # torch -> float32
    with pytest.raises(MetricError, match=r"layer_features\['abstract'\] must have the video features' shape "
                                          r"\(12, 8\)"):
        layer_similarities(video, {"factual": layers["factual"], "abstract": layers["abstract"][:, :4]})
    with pytest.raises(MetricError, match="no layer text features"):
        layer_similarities(video, {})


# --- random tie-breaking (the designed ceilings) ------------------------------------------------------------------


def test_tie_broken_summary_without_ties_is_the_summary_itself():
    from vlstudy.metrics.videomind import tie_broken_summary

    video, layers = _features()
    similarities = {name: t @ video.T for name, t in layers.items()}
    expected = videomind_metrics(similarities).summary
    got = tie_broken_summary(similarities, rng=np.random.default_rng(0), draws=3)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_tie_broken_summary_is_the_expectation_of_guessing_among_ties():
    from vlstudy.metrics.videomind import tie_broken_summary

    # factual: text i ties its own video with one other (m = 2); abstract: all 4 videos tie (m = 4); intent: a
    # clear winner, but below every factual score, so video -> text must still rank the factual text first.
    factual = np.array([[2, 2, 0, 0], [2, 2, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]], dtype=float)
    abstract = np.ones((4, 4))
    intent = 0.5 + 0.25 * np.eye(4)
    got = tie_broken_summary({"factual": factual, "abstract": abstract, "intent": intent},
                             rng=np.random.default_rng(1), draws=4000)
    assert got["t2v_factual_R@1"] == pytest.approx(50.0, abs=2.5) and got["t2v_factual_MeanR"] == pytest.approx(1.5, abs=0.03)
    assert got["t2v_abstract_R@1"] == pytest.approx(25.0, abs=2.5) and got["t2v_abstract_MeanR"] == pytest.approx(2.5, abs=0.05)
    assert got["t2v_intent_R@1"] == pytest.approx(100.0)  # no ties: no guessing
    # video -> text: its factual text ties with one other at the top (r1 is 1 or 2, mean 1.5)
    assert got["v2t_TopR"] == pytest.approx(1.5, abs=0.03)
    with pytest.raises(MetricError, match="draws must be >= 1, got 0"):
        tie_broken_summary({"factual": factual}, rng=np.random.default_rng(0), draws=0)
