"""Percentile bootstrap: weighted statistics, reproducibility, coverage, paired differences, MetricResult checks."""

import numpy as np
import pandas as pd
import pytest

from vlstudy.metrics.base import Mean, Median, MetricError, MetricResult
from vlstudy.metrics.bootstrap import (Interval, bootstrap_ci, intervals_overlap, metric_intervals, paired_bootstrap_ci,
                                       paired_differences)
from vlstudy.metrics.retrieval import retrieval_metrics


def expand(values, unit_of, counts):
    """The resample written out: each element repeated as often as its unit was drawn."""
    return np.repeat(values, counts[unit_of])


@pytest.mark.parametrize("n_drawn", [7, 8])  # odd and even resample sizes
def test_weighted_mean_and_median_equal_numpy_on_the_expanded_resample(n_drawn):
    rng = np.random.default_rng(3)
    values = rng.integers(1, 20, size=12).astype(float)
    unit_of = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6])
    counts = np.bincount(rng.integers(0, 7, size=n_drawn), minlength=7)
    expanded = expand(values, unit_of, counts)
    weights = counts[None, :]
    assert Mean(values, unit_of=unit_of, n_units=7)(weights)[0] == pytest.approx(expanded.mean())
    assert Median(values, unit_of=unit_of, n_units=7)(weights)[0] == np.median(expanded)
    assert Median(values[:7])(np.ones((1, 7), dtype=int))[0] == np.median(values[:7])


def test_same_seed_same_interval_and_a_different_seed_differs():
    values = np.random.default_rng(0).random(200)
    first = bootstrap_ci(values, rng=np.random.default_rng(42))
    again = bootstrap_ci(values, rng=np.random.default_rng(42))
    other = bootstrap_ci(values, rng=np.random.default_rng(43))
    assert first == again
    assert first != other
    assert first.estimate == pytest.approx(values.mean())
    assert first.low < first.estimate < first.high


def test_coverage_of_a_bernoulli_mean():
    rng = np.random.default_rng(2024)
    hits = 0
    for _ in range(200):
        sample = rng.random(400) < 0.7
        interval = bootstrap_ci(sample, rng=rng, n_boot=1000)
        hits += interval.low <= 0.7 <= interval.high
    assert 0.88 <= hits / 200 <= 0.99


def test_median_interval_of_ranks():
    ranks = np.arange(1, 102)
    estimate, low, high = bootstrap_ci(ranks, "median", rng=np.random.default_rng(0))
    assert estimate == 51.0
    assert 35 <= low < 51 < high <= 67


def test_metric_intervals_cover_every_statistic_and_bracket_the_estimate():
    rng = np.random.default_rng(1)
    similarity = rng.standard_normal((300, 100)) + 3 * np.eye(100)[np.arange(300) % 100]
    result = retrieval_metrics(similarity, np.arange(300) % 100)
    table = metric_intervals(result, rng=np.random.default_rng(5), n_boot=300)
    assert list(table.index) == list(result.statistics)
    assert "n_texts" not in table.index
    assert (table["estimate"] == pd.Series(result.summary)[table.index]).all()
    assert (table["low"] <= table["estimate"]).all() and (table["estimate"] <= table["high"]).all()
    assert table.loc["t2v_R@1", "high"] > table.loc["t2v_R@1", "low"]


def test_paired_bootstrap_of_a_clearly_better_system():
    rng = np.random.default_rng(7)
    baseline = (rng.random(500) < 0.5).astype(float)
    better = np.maximum(baseline, rng.random(500) < 0.3)  # right wherever baseline is, and more often
    difference = paired_bootstrap_ci(better, baseline, rng=np.random.default_rng(0))
    assert difference.estimate == pytest.approx(better.mean() - baseline.mean())
    assert difference.low > 0
    same = paired_bootstrap_ci(baseline, baseline, rng=np.random.default_rng(0))
    assert same == Interval(0.0, 0.0, 0.0)


def test_paired_differences_align_items_by_id():
    rng = np.random.default_rng(11)
    similarity = rng.standard_normal((50, 50)) + 2 * np.eye(50)
    ids = [f"v{i}" for i in range(50)]
    a = retrieval_metrics(similarity, np.arange(50), video_ids=ids)
    order = rng.permutation(50)
    b = retrieval_metrics(similarity[np.ix_(order, order)], np.arange(50), video_ids=[ids[i] for i in order])
    table = paired_differences(a, b, rng=np.random.default_rng(0), n_boot=200)
    assert (table["difference"] == 0).all() and (table["low"] == 0).all() and (table["high"] == 0).all()
    c = retrieval_metrics(similarity[:49, :49], np.arange(49), video_ids=ids[:49])
    with pytest.raises(MetricError, match=r"1 only in a \(e.g. \['v49'\]\), 0 only in b"):
        paired_differences(a, c, rng=np.random.default_rng(0))


def test_intervals_overlap():
    assert intervals_overlap(Interval(1, 0, 2), Interval(3, 2, 4))
    assert intervals_overlap(Interval(3, 2, 4), Interval(1, 0, 2.5))
    assert not intervals_overlap(Interval(1, 0, 1.9), Interval(3, 2, 4))


def test_metric_result_rejects_a_statistic_that_does_not_reproduce_its_summary():
    per_item = pd.DataFrame({"item_id": ["a", "b"], "correct": [True, False]})
    with pytest.raises(ValueError, match="statistic 'top1' gives 50.0 on the full data but the summary says 60.0"):
        MetricResult(summary={"top1": 60.0}, per_item=per_item, statistics={"top1": Mean([1, 0], scale=100)})
    with pytest.raises(ValueError, match=r"duplicate item ids \['a'\]"):
        MetricResult(summary={}, per_item=pd.DataFrame({"item_id": ["a", "a"]}), statistics={})


def test_bad_values_are_rejected():
    with pytest.raises(MetricError, match="item 1 is not finite"):
        bootstrap_ci([0.1, np.nan, 0.3], rng=np.random.default_rng(0))
    with pytest.raises(MetricError, match="at least 2 items"):
        bootstrap_ci([0.1], rng=np.random.default_rng(0))


def test_too_few_resamples_are_refused_naming_the_parameter():
    values = np.random.default_rng(0).random(50)
    # n_boot=1: both "ends" were the one resample, an interval that excluded its own estimate
    with pytest.raises(ValueError) as e:
        bootstrap_ci(values, rng=np.random.default_rng(0), n_boot=1)
    assert str(e.value) == ("n_boot=1 is too few bootstrap resamples for a 95% percentile interval: need at least 200 "
                            "(5 beyond each end of the interval); about 1000 is recommended")
    with pytest.raises(ValueError, match="n_boot=199 .* need at least 200"):
        paired_bootstrap_ci(values, values[::-1], rng=np.random.default_rng(0), n_boot=199)
    with pytest.raises(ValueError, match="n_boot=999 .* 99% percentile interval: need at least 1000"):
        bootstrap_ci(values, rng=np.random.default_rng(0), n_boot=999, confidence=0.99)
    estimate, low, high = bootstrap_ci(values, rng=np.random.default_rng(0), n_boot=200)
    assert low < estimate < high
    from vlstudy.metrics.bootstrap import min_resamples

    assert [min_resamples(c) for c in (0.9, 0.95, 0.99)] == [100, 200, 1000]


def test_task_configs_refuse_too_few_resamples_before_training():
    from vlstudy.config import ParamError, from_dict
    from vlstudy.tasks.captioning import CaptioningConfig
    from vlstudy.tasks.classification import ClassificationConfig
    from vlstudy.tasks.retrieval import RetrievalConfig

    for config in (ClassificationConfig, CaptioningConfig, RetrievalConfig):
        with pytest.raises(ValueError, match="n_boot=1 is too few bootstrap resamples"):
            config(n_boot=1)
        assert config(n_boot=200).n_boot == 200
    with pytest.raises(ParamError, match=r"params.yaml: finetune_captioning: n_boot=10 is too few"):
        from_dict(CaptioningConfig, {"n_boot": 10}, where="params.yaml: finetune_captioning")
