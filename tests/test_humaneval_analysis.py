"""Human-evaluation analysis: values on hand-made ratings, the simulated panel around the rubric, ordered claims,
rubric-vs-rater agreement, and real ratings giving the same tables as the simulated panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlstudy.config import ParamError, from_dict
from vlstudy.humaneval.agreement import agreement, metric_correlations, rubric_agreement
from vlstudy.humaneval.analysis import HumanEvalConfig, analyse, load_panel, plot_grade_distribution
from vlstudy.humaneval.instructions import sample_grounded_items
from vlstudy.humaneval.page import RATINGS_COLUMNS
from vlstudy.humaneval.protocol import ProtocolConfig, VideoItem, read_key, write_package
from vlstudy.humaneval.rubric import as_ratings, grade_responses
from vlstudy.humaneval.scores import (
    SCORES,
    grade_distribution,
    mean_scores,
    ordered_comparison,
    pairwise_tests,
    preference_ratios,
    titled,
)
from vlstudy.humaneval.simulate import SimulationConfig, expected_rater_score, simulate_panel


def _table(rows: list[tuple], simulated: bool = False) -> pd.DataFrame:
    """Ratings from (rater, item_id, model, grade[, best]) tuples."""
    rows = [r if len(r) == 5 else (*r, False) for r in rows]
    return pd.DataFrame(rows, columns=["rater", "item_id", "model", "grade", "best"]).assign(simulated=simulated)


@pytest.fixture(scope="module")
def answered(planned_videos):
    """Grounded items on val videos, answered by three responders of known quality, and the rubric's grades.

    ``reference`` gives the reference answers (all A), ``caption`` the video's own caption (A on describing
    aspects, C on intent, D on category and scene text), ``other`` the caption of the next val video (mostly C).
    """
    captions = {it.video_id: it.captions[0] for it in planned_videos.items}
    val = [t for t, it in zip(planned_videos.truths, planned_videos.items) if it.split == "val"]
    order = {t.video_id: k for k, t in enumerate(val)}
    items = sample_grounded_items(val, ProtocolConfig(n_videos=80, n_instructions=120), np.random.default_rng(0))
    responses = {"reference": [it.reference for it in items],
                 "caption": [captions[it.video_id] for it in items],
                 "other": [captions[val[(order[it.video_id] + 1) % len(val)].video_id] for it in items]}
    return items, responses, grade_responses(items, responses)


def test_scores_run_from_three_for_a_to_zero_for_d():
    assert SCORES == {"A": 3, "B": 2, "C": 1, "D": 0}


def test_grade_distribution_and_mean_scores_on_known_ratings():
    ratings = _table([("r1", "q1", "x", "A"), ("r1", "q2", "x", "A"), ("r1", "q3", "x", "B"), ("r1", "q4", "x", "D"),
                      ("r1", "q1", "y", "C"), ("r1", "q2", "y", "C"), ("r1", "q3", "y", "C"), ("r1", "q4", "y", None)])
    dist = grade_distribution(ratings)
    assert list(dist.columns) == ["model", "grade", "label", "count", "share", "panel"]
    x = dist[dist["model"] == "x"].set_index("grade")
    assert x["share"].to_dict() == {"A": 0.5, "B": 0.25, "C": 0.0, "D": 0.25}
    assert x.loc["A", "label"] == "A 正确满意" and (dist["panel"] == "human raters").all()
    assert dist[dist["model"] == "y"].set_index("grade")["count"].to_dict() == {"A": 0, "B": 0, "C": 3, "D": 0}

    scores = mean_scores(ratings, np.random.default_rng(0), n_boot=500).set_index("model")
    assert scores.loc["x", "mean"] == pytest.approx(2.0) and scores.loc["y", "mean"] == pytest.approx(1.0)
    assert scores.loc["x", "n_items"] == 4 and scores.loc["y", "n_items"] == 3
    assert 0.0 <= scores.loc["x", "ci_low"] < 2.0 < scores.loc["x", "ci_high"] <= 3.0
    assert scores.loc["y", "ci_low"] == scores.loc["y", "ci_high"] == 1.0
    again = mean_scores(ratings, np.random.default_rng(0), n_boot=500)
    assert again["ci_low"].tolist() == scores.reset_index()["ci_low"].tolist()


def test_pairwise_wilcoxon_is_paired_and_holm_corrected():
    items = [f"q{k}" for k in range(10)]
    rows = [("r", i, "good", "A") for i in items] + [("r", i, "bad", "B") for i in items]
    rows += [("r", i, "same", "B") for i in items]
    table = pairwise_tests(_table(rows)).set_index(["model_a", "model_b"])
    # all ten differences positive: the exact two-sided p-value is 2 / 2**10
    assert table.loc[("good", "bad"), "p_value"] == pytest.approx(2 / 2 ** 10)
    assert table.loc[("good", "bad"), "mean_diff"] == 1.0 and table.loc[("good", "bad"), "n_items"] == 10
    assert table.loc[("bad", "same"), "p_value"] == 1.0  # no difference at all
    # Holm: the two tied smallest p-values are both multiplied by 3 (step-down adjusted values are monotone)
    assert table.loc[("good", "bad"), "p_holm"] == table.loc[("good", "same"), "p_holm"] == pytest.approx(6 / 2 ** 10)
    assert table["significant"].tolist() == [True, True, False]


def test_ordered_comparison_holds_only_for_a_significant_difference_in_the_claimed_direction():
    items = [f"q{k}" for k in range(16)]  # > 13 paired differences with ties: scipy's normal approximation
    rows = [("r", i, "good", "A") for i in items] + [("r", i, "bad", "C") for i in items]
    rows += [("r", i, "coin", "A" if k % 2 else "D") for k, i in enumerate(items)]
    ratings = _table(rows)
    rng = np.random.default_rng(0)
    holds = ordered_comparison(ratings, "good", "bad", rng, n_boot=500)
    assert (holds["verdict"], holds["mean_diff"], holds["n_items"]) == ("HOLDS", 2.0, 16)
    assert holds["ci_low"] == holds["ci_high"] == 2.0  # every paired difference is 2
    assert holds["p_holm"] == pytest.approx(pairwise_tests(ratings).iloc[0]["p_holm"])
    assert holds["claim"] == "good > bad" and holds["panel"] == "human raters"
    assert ordered_comparison(ratings, "bad", "good", rng, n_boot=500)["verdict"] == "FAILS"  # wrong direction
    coin = ordered_comparison(ratings, "coin", "bad", rng, n_boot=500)  # +2 on half the items, -1 on the rest
    assert coin["mean_diff"] == 0.5 and coin["p_holm"] > 0.05 and coin["verdict"] == "FAILS"
    assert coin["ci_low"] < 0.5 < coin["ci_high"]
    with pytest.raises(KeyError, match=r"claim good > nobody: no responder 'nobody' in the ratings "
                                       r"\(responders: good, bad, coin\)"):
        ordered_comparison(ratings, "good", "nobody", rng)


def test_agreement_values_on_known_ratings():
    pairs = [("A", "A"), ("B", "B"), ("A", "B"), ("C", "C")]
    rows = [(r, f"q{k}", "m", g) for k, pair in enumerate(pairs) for r, g in zip(("r1", "r2"), pair)]
    result = agreement(_table(rows))
    # Fleiss by hand: observed agreement 3/4, chance (3/8)^2 + (3/8)^2 + (2/8)^2 = 22/64, kappa = 13/21
    assert result["fleiss_kappa"] == pytest.approx(13 / 21)
    assert result["n_units_kappa"] == 4 and result["n_raters"] == 2

    perfect = [(r, f"q{k}", "m", g) for k, g in enumerate("ABCDAB") for r in ("r1", "r2", "r3")]
    perfect += [("r4", f"q{k}", "m", g) for k, g in enumerate("ABCDA")]  # r4 skipped q5
    result = agreement(_table(perfect))
    assert result["fleiss_kappa"] == pytest.approx(1.0) and result["krippendorff_alpha"] == pytest.approx(1.0)
    assert (result["n_units_kappa"], result["n_units_alpha"], result["n_raters"]) == (5, 6, 4)

    disjoint = agreement(_table([("r1", "q1", "m", "A"), ("r2", "q2", "m", "B")]))  # no answer graded twice
    assert np.isnan(disjoint["fleiss_kappa"]) and np.isnan(disjoint["krippendorff_alpha"])

    one_step = [("r1", f"q{k}", "m", g) for k, g in enumerate("AABBCCDD")]
    one_step += [("r2", f"q{k}", "m", g) for k, g in enumerate("ABBCCDDD")]
    far = [("r1", f"q{k}", "m", g) for k, g in enumerate("AABBCCDD")]
    far += [("r2", f"q{k}", "m", g) for k, g in enumerate("ADBDCADA")]
    # ordinal alpha: near misses agree more than far misses
    assert agreement(_table(one_step))["krippendorff_alpha"] > agreement(_table(far))["krippendorff_alpha"]


def test_rubric_agreement_is_quadratic_weighted_kappa_and_spearman():
    rubric = pd.DataFrame({"item_id": [f"q{k}" for k in range(6)], "model": "m", "grade": list("AABCDD")})
    rater = "AB" "BCDC"
    rows = [("r1", f"q{k}", "m", g) for k, g in enumerate(rater)] + [("r2", "q0", "m", "A")]
    result = rubric_agreement(_table(rows), rubric)
    # by hand: observed (rubric, rater) score pairs vs the product of their margins, weights (i - j)^2
    pairs = np.array([(3, 3), (3, 2), (2, 2), (1, 1), (0, 0), (0, 1), (3, 3)])
    observed = np.zeros((4, 4))
    for i, j in pairs:
        observed[i, j] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = (np.arange(4)[:, None] - np.arange(4)[None, :]) ** 2
    assert result["weighted_kappa"] == pytest.approx(1 - (weights * observed).sum() / (weights * expected).sum())
    assert result["exact_agreement"] == pytest.approx(5 / 7)
    assert (result["n_ratings"], result["n_answers"]) == (7, 6)
    from scipy.stats import spearmanr
    assert result["spearman_rho"] == pytest.approx(spearmanr([3, 3, 2, 1, 0, 0], [3, 2, 2, 1, 0, 1]).statistic)


def test_simulated_raters_without_noise_repeat_the_rubric(answered):
    _, _, rubric = answered
    quiet = simulate_panel(rubric, SimulationConfig(n_raters=2, leniency_sd=0.0, noise_sd=0.0),
                           np.random.default_rng(0))
    assert len(quiet) == 2 * len(rubric) and quiet["simulated"].all()
    truth = rubric.set_index(["item_id", "model"])[["grade", "video_id", "aspect"]].sort_index()
    for _, rows in quiet.groupby("rater"):
        assert rows.set_index(["item_id", "model"])[["grade", "video_id", "aspect"]].sort_index().equals(truth)
    result = agreement(quiet)
    assert result["fleiss_kappa"] == pytest.approx(1.0) and result["krippendorff_alpha"] == pytest.approx(1.0)
    assert rubric_agreement(quiet, rubric)["weighted_kappa"] == pytest.approx(1.0)
    assert "simulated raters" in quiet.attrs["source"]


def test_simulated_agreement_falls_as_rater_noise_rises(answered):
    _, _, rubric = answered

    def measured(noise: float) -> tuple[float, float, float]:
        ratings = simulate_panel(rubric, SimulationConfig(noise_sd=noise), np.random.default_rng(0))
        inter, with_rubric = agreement(ratings), rubric_agreement(ratings, rubric)
        return inter["krippendorff_alpha"], inter["fleiss_kappa"], with_rubric["weighted_kappa"]

    low, mid, high = measured(0.2), measured(0.6), measured(1.5)
    assert all(a > b > c for a, b, c in zip(low, mid, high))
    assert low[0] > 0.85 and high[0] < 0.6


def test_simulated_mean_scores_match_the_rater_model(answered):
    _, _, rubric = answered
    config = SimulationConfig(n_raters=40, leniency_sd=0.3, noise_sd=0.6)
    ratings = simulate_panel(rubric, config, np.random.default_rng(0))
    observed = ratings.assign(score=ratings["grade"].map(SCORES)).groupby("model")["score"].mean()
    for model, grades in rubric.groupby("model")["grade"]:
        expected = np.mean([expected_rater_score(g, config) for g in grades])
        assert observed[model] == pytest.approx(expected, abs=0.1)
    assert expected_rater_score("A", SimulationConfig(leniency_sd=0, noise_sd=0)) == 3.0
    assert expected_rater_score("A", config) < 3.0 and expected_rater_score("D", config) > 0.0  # clipping


def test_simulated_panel_rejects_incomplete_rubric_tables(answered):
    _, _, rubric = answered
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^rubric table: no grade for item q001 and model 'reference'$"):
        simulate_panel(rubric.iloc[1:], SimulationConfig(), rng)
    with pytest.raises(ValueError, match=r"^rubric table: grade 'E' of item q001 \(model 'reference'\) is not one"):
        simulate_panel(rubric.assign(grade=["E"] + rubric["grade"].tolist()[1:]), SimulationConfig(), rng)
    with pytest.raises(ValueError, match=r"^rubric table: item q001 graded twice for model 'reference'$"):
        simulate_panel(pd.concat([rubric, rubric.iloc[:1]]), SimulationConfig(), rng)


def test_analysis_of_the_simulated_panel_ranks_responders_and_is_labelled(answered):
    _, _, rubric = answered
    config = HumanEvalConfig(n_boot=300, claims=[("reference", "caption"), ("caption", "other"),
                                                 ("other", "caption")])
    rng = np.random.default_rng(0)
    ratings = load_panel(config, rubric, rng)
    metrics = rubric[["item_id", "model"]].assign(tracks=rubric["grade"].map(SCORES) + rng.normal(0, 0.3, len(rubric)),
                                                  unrelated=rng.normal(0, 1, len(rubric)))
    report = analyse(ratings, config, rng, rubric=rubric, metrics=metrics)
    assert report.scores.sort_values("mean", ascending=False)["model"].tolist() == ["reference", "caption", "other"]
    assert report.comparisons["verdict"].tolist() == ["HOLDS", "HOLDS", "FAILS"]
    prefs = report.preference.set_index("model")["ratio"]
    assert prefs.sort_values(ascending=False).index.tolist() == ["reference", "caption", "other"]
    rubric_shares = report.rubric_distribution.set_index(["model", "grade"])["share"]
    assert rubric_shares["reference", "A"] == 1.0 and (report.rubric_distribution["panel"] == "rubric").all()
    assert report.rubric_agreement["weighted_kappa"] > 0.7
    correlation = report.correlation.set_index("metric")
    assert correlation.loc["tracks", "spearman_rho"] > 0.7 and abs(correlation.loc["unrelated", "spearman_rho"]) < 0.2
    for table in (report.distribution, report.scores, report.pairwise, report.comparisons, report.preference,
                  report.correlation):
        assert (table["panel"] == "simulated raters").all()
    summary = report.metrics()
    assert summary["panel"] == "simulated raters" and summary["claims"]["caption > other"]["verdict"] == "HOLDS"
    assert summary["rubric"]["models"]["reference"]["mean_score"] == 3.0
    fig = plot_grade_distribution(report.distribution)
    assert fig.axes[0].get_title() == "零样本指令理解人工评测：等级分布 (simulated raters)"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["A 正确满意", "B 可接受", "C 有明显错误",
                                                                           "D 无关或无效"]
    assert plot_grade_distribution(report.rubric_distribution).axes[0].get_title() == \
        "零样本指令理解评测：等级分布（评分规则）"
    assert titled("Fig. 5", "human raters") == "Fig. 5"


def test_metric_correlations_name_missing_columns():
    ratings = _table([("r", "q1", "m", "A"), ("r", "q2", "m", "C")])
    with pytest.raises(KeyError, match=r"metrics table lacks column\(s\) \['cider'\]"):
        metric_correlations(ratings, pd.DataFrame({"item_id": ["q1"], "model": ["m"]}), ["cider"])


def test_preference_ratios_on_known_picks():
    rows = [("r1", "q1", "x", "A", True), ("r1", "q1", "y", "B", False),
            ("r2", "q1", "x", "A", False), ("r2", "q1", "y", "B", True),
            ("r1", "q2", "x", "A", True), ("r1", "q2", "y", "B", False),
            ("r1", "q3", "x", "A", False), ("r1", "q3", "y", "B", False)]  # q3: nobody picked
    table = preference_ratios(_table(rows), np.random.default_rng(0), n_boot=200).set_index("model")
    assert table.loc["x", "ratio"] == pytest.approx(0.75) and table.loc["y", "ratio"] == pytest.approx(0.25)
    assert table["n_items"].tolist() == [2, 2] and table["ratio"].sum() == pytest.approx(1.0)


def test_rubric_grades_make_tables_like_ratings(answered):
    _, _, rubric = answered
    scores = mean_scores(as_ratings(rubric), np.random.default_rng(0), n_boot=200).set_index("model")
    expected = rubric.assign(score=rubric["grade"].map(SCORES)).groupby("model")["score"].mean()
    assert scores["mean"].to_dict() == pytest.approx(expected.to_dict()) and (scores["panel"] == "rubric").all()


def test_stage_params_are_checked():
    config = from_dict(HumanEvalConfig, {"seed": 3, "claims": [["a", "b"]], "simulation": {"n_raters": 5}})
    assert config.simulation.n_raters == 5 and config.claims == [("a", "b")]
    with pytest.raises(ParamError, match=r"^params: ratings need the package folder and the key file"):
        from_dict(HumanEvalConfig, {"ratings": ["ratings.csv"]})
    with pytest.raises(ParamError, match=r"^params: claim a > a compares a responder with itself$"):
        from_dict(HumanEvalConfig, {"claims": [["a", "a"]]})
    with pytest.raises(ParamError, match=r"^params\.simulation: noise_sd must be >= 0, got -1\.0$"):
        from_dict(HumanEvalConfig, {"simulation": {"noise_sd": -1.0}})
    with pytest.raises(ParamError, match=r"model_quality"):
        from_dict(HumanEvalConfig, {"simulation": {"model_quality": {"mplug_video": 1.0}}})


def test_real_ratings_csv_gives_the_tables_of_the_simulated_panel(answered, tmp_path):
    """The page's CSV replaces the simulated panel: same grades in, same tables out (only the panel differs)."""
    items, responses, rubric = answered
    config = HumanEvalConfig(n_boot=200, claims=[("reference", "other")])
    simulated = simulate_panel(rubric, config.simulation, np.random.default_rng(0))
    videos = [VideoItem(v, np.zeros((1, 8, 8, 3), np.uint8)) for v in dict.fromkeys(it.video_id for it in items)]
    package, key = tmp_path / "package", tmp_path / "key.json"
    write_package(package, key, items, videos, responses, np.random.default_rng(1))
    slot_of = {(item, model): slot for item, slots in read_key(key)["assignment"].items()
               for slot, model in slots.items()}
    exported = pd.DataFrame([[r.rater, r.item_id, slot_of[r.item_id, r.model], r.grade, int(r.best),
                              "2024-05-01T10:00:00.000Z"] for r in simulated.itertuples()], columns=list(RATINGS_COLUMNS))
    exported.to_csv(tmp_path / "ratings.csv", index=False, encoding="utf-8-sig")  # as the page exports it
    real_config = HumanEvalConfig(ratings=[str(tmp_path / "ratings.csv")], package=str(package), key=str(key),
                                  n_boot=200, claims=config.claims)
    real = load_panel(real_config, rubric, np.random.default_rng(0))
    assert not real["simulated"].any() and len(real) == len(simulated)

    from_sim = analyse(simulated, config, np.random.default_rng(2), rubric=rubric)
    from_real = analyse(real, real_config, np.random.default_rng(2), rubric=rubric)
    for name in ("distribution", "scores", "pairwise", "comparisons", "preference", "rubric_distribution",
                 "rubric_scores"):
        sim, rl = getattr(from_sim, name), getattr(from_real, name)
        assert list(sim.columns) == list(rl.columns) and (sim.dtypes == rl.dtypes).all(), name
        pd.testing.assert_frame_equal(sim.drop(columns="panel"), rl.drop(columns="panel"))
    assert (from_real.scores["panel"] == "human raters").all() and (from_sim.scores["panel"] == "simulated raters").all()
    assert from_real.agreement == {**from_sim.agreement, "panel": "human raters"}
    assert from_real.rubric_agreement == {**from_sim.rubric_agreement, "panel": "human raters"}
    assert from_real.metrics() == {**from_sim.metrics(), "panel": "human raters"}
