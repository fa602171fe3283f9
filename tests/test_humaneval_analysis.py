"""Human-evaluation analysis: values on hand-made ratings, and recovery of the simulated panel's known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlstudy.config import ParamError, from_dict
from vlstudy.humaneval.analysis import (
    SCORES,
    HumanEvalConfig,
    agreement,
    analyse,
    grade_distribution,
    load_panel,
    mean_scores,
    metric_correlations,
    pairwise_tests,
    plot_grade_distribution,
    preference_ratios,
    titled,
)
from vlstudy.humaneval.simulate import SimulationConfig, expected_scores, simulate_panel


def _table(rows: list[tuple], simulated: bool = False) -> pd.DataFrame:
    """Ratings from (rater, item_id, model, grade[, best]) tuples."""
    rows = [r if len(r) == 5 else (*r, False) for r in rows]
    return pd.DataFrame(rows, columns=["rater", "item_id", "model", "grade", "best"]).assign(simulated=simulated)


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
    assert again["ci_low"].tolist() == scores["ci_low"].tolist()


def test_pairwise_wilcoxon_is_paired_and_holm_corrected():
    items = [f"q{k}" for k in range(10)]
    rows = [("r", i, "good", "A") for i in items] + [("r", i, "bad", "B") for i in items]
    rows += [("r", i, "same", "B") for i in items]
    table = pairwise_tests(_table(rows)).set_index(["model_a", "model_b"])
    # all ten differences positive: the exact two-sided p-value is 2 / 2**10
    assert table.loc[("good", "bad"), "p_value"] == pytest.approx(2 / 2 ** 10)
    assert table.loc[("good", "bad"), "mean_diff"] == 1.0 and table.loc[("good", "bad"), "n_items"] == 10
    assert table.loc[("bad", "same"), "p_value"] == 1.0  # no difference at all
    assert (table["p_holm"] >= table["p_value"]).all()
    # Holm: the two tied smallest p-values are both multiplied by 3 (step-down adjusted values are monotone)
    assert table.loc[("good", "bad"), "p_holm"] == table.loc[("good", "same"), "p_holm"] == pytest.approx(6 / 2 ** 10)
    assert table["significant"].tolist() == [True, True, False]


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

    disjoint = agreement(_table([("r1", "q1", "m", "A"), ("r2", "q2", "m", "B")]))  # no response graded twice
    assert np.isnan(disjoint["fleiss_kappa"]) and np.isnan(disjoint["krippendorff_alpha"])
    assert (disjoint["n_units_kappa"], disjoint["n_units_alpha"]) == (0, 0)

    one_step = [("r1", f"q{k}", "m", g) for k, g in enumerate("AABBCCDD")]
    one_step += [("r2", f"q{k}", "m", g) for k, g in enumerate("ABBCCDDD")]
    far = [("r1", f"q{k}", "m", g) for k, g in enumerate("AABBCCDD")]
    far += [("r2", f"q{k}", "m", g) for k, g in enumerate("ADBDCADA")]
    # ordinal alpha: near misses agree more than far misses
    assert agreement(_table(one_step))["krippendorff_alpha"] > agreement(_table(far))["krippendorff_alpha"]


def test_preference_ratios_on_known_picks():
    rows = [("r1", "q1", "x", "A", True), ("r1", "q1", "y", "B", False),
            ("r2", "q1", "x", "A", False), ("r2", "q1", "y", "B", True),
            ("r1", "q2", "x", "A", True), ("r1", "q2", "y", "B", False),
            ("r1", "q3", "x", "A", False), ("r1", "q3", "y", "B", False)]  # q3: nobody picked
    table = preference_ratios(_table(rows), np.random.default_rng(0), n_boot=200).set_index("model")
    assert table.loc["x", "ratio"] == pytest.approx(0.75) and table.loc["y", "ratio"] == pytest.approx(0.25)
    assert table["n_items"].tolist() == [2, 2]
    assert table["ratio"].sum() == pytest.approx(1.0)


def test_simulated_panel_is_labelled_everywhere():
    config = HumanEvalConfig(n_boot=200)
    ratings, metrics = load_panel(config, np.random.default_rng(0))
    assert ratings["simulated"].all() and "simulated raters" in ratings.attrs["source"]
    assert list(metrics.columns) == ["item_id", "model", "simulated_metric"]
    report = analyse(ratings, config, np.random.default_rng(1), metrics)
    assert report.metrics()["panel"] == "simulated raters"
    for table in (report.distribution, report.scores, report.pairwise, report.preference, report.correlation):
        assert (table["panel"] == "simulated raters").all()
    fig = plot_grade_distribution(report.distribution)
    assert fig.axes[0].get_title() == "零样本指令理解人工评测：等级分布 (simulated raters)"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["A 正确满意", "B 可接受", "C 有明显错误",
                                                                           "D 无关或无效"]
    assert titled("Fig. 5", "human raters") == "Fig. 5"


def test_analysis_recovers_the_simulated_truth():
    truth = SimulationConfig(model_quality={"best": 1.2, "middle": 0.4, "worst": -0.6}, n_items=200, n_raters=4,
                             rater_bias_sd=0.0)
    panel = simulate_panel(truth, np.random.default_rng(0))
    report = analyse(panel.ratings, HumanEvalConfig(n_boot=1000), np.random.default_rng(1))
    scores = report.scores.set_index("model")
    assert scores["mean"].sort_values(ascending=False).index.tolist() == ["best", "middle", "worst"]
    for model, expected in expected_scores(truth).items():
        assert scores.loc[model, "ci_low"] <= expected <= scores.loc[model, "ci_high"]
    assert report.pairwise["significant"].all() and (report.pairwise["mean_diff"] > 0).all()
    prefs = report.preference.set_index("model")["ratio"]
    assert prefs.sort_values(ascending=False).index.tolist() == ["best", "middle", "worst"]


def test_agreement_rises_when_rater_noise_falls():
    def alpha_kappa(noise: float) -> tuple[float, float]:
        config = SimulationConfig(n_items=100, rater_noise_sd=noise)
        result = agreement(simulate_panel(config, np.random.default_rng(0)).ratings)
        return result["krippendorff_alpha"], result["fleiss_kappa"]

    (a_low, k_low), (a_mid, k_mid), (a_high, k_high) = alpha_kappa(0.1), alpha_kappa(0.6), alpha_kappa(1.5)
    assert a_low > a_mid > a_high and k_low > k_mid > k_high
    assert a_low > 0.85 and a_high < 0.5


def test_human_scores_correlate_with_a_metric_built_to_correlate():
    panel = simulate_panel(SimulationConfig(n_items=60), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    truth = panel.response_quality
    metrics = truth.assign(tracks=truth["quality"] + rng.normal(0, 0.3, len(truth)),
                           unrelated=rng.normal(0, 1, len(truth)))
    table = metric_correlations(panel.ratings, metrics, ["tracks", "unrelated"]).set_index("metric")
    assert table.loc["tracks", "spearman_rho"] > 0.7 and table.loc["tracks", "p_value"] < 1e-6
    assert abs(table.loc["unrelated", "spearman_rho"]) < 0.2
    assert table["n"].tolist() == [180, 180]
    with pytest.raises(KeyError, match=r"metrics table lacks column\(s\) \['cider'\]"):
        metric_correlations(panel.ratings, metrics, ["cider"])


def test_stage_params_are_checked():
    config = from_dict(HumanEvalConfig, {"seed": 3, "simulation": {"n_raters": 5, "thresholds": [-1, 0, 2]}})
    assert config.simulation.n_raters == 5 and config.simulation.thresholds == (-1.0, 0.0, 2.0)
    with pytest.raises(ParamError, match=r"^params: ratings need the package folder and the key file"):
        from_dict(HumanEvalConfig, {"ratings": ["ratings.csv"]})
    with pytest.raises(ParamError, match=r"^params\.simulation: thresholds must increase, got \[1\.0, 0\.0, 2\.0\]$"):
        from_dict(HumanEvalConfig, {"simulation": {"thresholds": [1, 0, 2]}})
