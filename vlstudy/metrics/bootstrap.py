"""95% percentile-bootstrap intervals for every headline number, and paired differences between two systems.

The resampling itself is ``scipy.stats.bootstrap`` (percentile method, vectorised, batched, seeded with the
``numpy.random.Generator`` passed in): it resamples item indices, which are turned into per-item counts and
handed to each metric's :class:`~vlstudy.metrics.base.Statistic` (see ``base.py``). The unit resampled is the
test item (``MetricResult.per_item`` rows); for retrieval that is a video with all of its text queries
(a cluster bootstrap), since texts of one video are not independent.

How each headline is recomputed on a resample (always the formula that produced the headline itself):

* accuracy, R@K: mean of the per-item hit indicators x100; MdR / MnR: median / mean of the ranks.
* BLEU-1..4 and METEOR are *corpus-level* in pycocoevalcap: one formula applied to sums over the corpus
  (BLEU: clipped n-gram matches, n-gram counts, hypothesis and closest-reference lengths; METEOR: the
  alignment statistics the METEOR jar aggregates). A resample sums the cached per-item statistics of the
  drawn items and applies the same formula, so the interval is for the corpus score that is reported.
  Bootstrapping the mean of sentence-level scores instead would give an interval around a different number
  (sentence BLEU averages are far below corpus BLEU) and so would not cover the headline.
* ROUGE-L: pycocoevalcap reports the mean of sentence scores; the resample mean of those.
* CIDEr: pycocoevalcap reports the mean of sentence scores whose IDF weights come from the evaluated
  references. A resample takes the mean of the sentence scores with the IDF of the full test set held fixed;
  recomputing IDF per resample would rerun the scorer n_boot times, and with thousands of references the
  IDF's own sampling noise is small next to the item-to-item spread. The interval is therefore slightly
  narrow for small test sets; say so when quoting a CIDEr interval from a few hundred items.

Same generator state, same interval: all randomness comes from ``rng``.

How many resamples. A percentile interval's ends are the (1 - c)/2 and (1 + c)/2 quantiles of the n_boot
resampled statistics (c = confidence). With n_boot = 1 both ends are that one resample, so a "95 %" interval is
a point that usually excludes its own estimate; with a handful, the ends are the extreme resamples. Every
function here therefore refuses fewer than `min_resamples` (confidence): at least ``MIN_TAIL_RESAMPLES`` = 5
resamples must fall beyond each end, n_boot >= 10 / (1 - c), i.e. 200 at 95 % (1000 at 99 %). That is a floor
against nonsense, not a recommendation: Efron & Tibshirani (1993, "An Introduction to the Bootstrap") advise
about 1000 resamples for percentile intervals, the default here.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from vlstudy.metrics.base import ID_COLUMN, Mean, Median, MetricError, MetricResult, Statistic

__all__ = ["Interval", "MIN_TAIL_RESAMPLES", "min_resamples", "check_n_boot", "bootstrap_ci", "paired_bootstrap_ci",
           "metric_intervals", "paired_differences", "intervals_overlap"]

_MAX_BATCH_CELLS = 1 << 22  # resamples x items per batch: bounds memory at a few tens of MB
MIN_TAIL_RESAMPLES = 5
"""Resamples that must fall beyond each end of a percentile interval (module docstring)."""


class Interval(NamedTuple):
    """A point estimate with its bootstrap interval; unpacks as ``estimate, low, high``."""

    estimate: float
    low: float
    high: float


def min_resamples(confidence: float = 0.95) -> int:
    """The fewest resamples a `confidence` percentile interval accepts: 10 / (1 - confidence), 200 at 95 %."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return math.ceil(2 * MIN_TAIL_RESAMPLES / (1 - confidence) - 1e-9)


def check_n_boot(n_boot: int, confidence: float = 0.95, name: str = "n_boot") -> None:
    """Refuse too few resamples for a percentile interval.

    Args:
        n_boot: the number of resamples asked for.
        confidence: the interval's coverage.
        name: how the error names the setting (e.g. ``"finetune_captioning.n_boot"``).

    Raises:
        ValueError: ``n_boot < min_resamples(confidence)``, naming `name`, the minimum and why.
    """
    need = min_resamples(confidence)
    if n_boot < need:
        raise ValueError(f"{name}={n_boot} is too few bootstrap resamples for a {confidence:.0%} percentile interval: "
                         f"need at least {need} ({MIN_TAIL_RESAMPLES} beyond each end of the interval); "
                         "about 1000 is recommended")


def _counts(indices: np.ndarray, n_units: int) -> np.ndarray:
    """(B, n) drawn item indices -> (B, n_units) how often each item was drawn."""
    n_rows = indices.shape[0]
    flat = (indices + np.arange(n_rows)[:, None] * n_units).ravel()
    return np.bincount(flat, minlength=n_rows * n_units).reshape(n_rows, n_units)


def _percentile_intervals(statistics: Sequence[Statistic], n_units: int, *, rng: np.random.Generator,
                          n_boot: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of several statistics over the same resamples.

    Returns:
        (low, high), each (len(statistics),).
    """
    if n_units < 2:
        raise MetricError(f"the bootstrap needs at least 2 items, got {n_units}")
    check_n_boot(n_boot, confidence)

    def stacked(indices: np.ndarray, axis: int = -1) -> np.ndarray:  # (B, n) -> (S, B)
        weights = _counts(indices, n_units)
        return np.stack([statistic(weights) for statistic in statistics])

    result = bootstrap((np.arange(n_units),), stacked, n_resamples=n_boot, vectorized=True, method="percentile",
                       confidence_level=confidence, batch=max(1, min(n_boot, _MAX_BATCH_CELLS // n_units)), rng=rng)
    return np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)


def _as_statistic(data: Statistic | Any, statistic: Literal["mean", "median"]) -> Statistic:
    if isinstance(data, Statistic):
        return data
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 1:
        raise MetricError(f"bootstrap values must be 1-D (one per item), got shape {values.shape}")
    if not np.isfinite(values).all():
        raise MetricError(f"bootstrap values: item {int(np.argmax(~np.isfinite(values)))} is not finite")
    if statistic == "mean":
        return Mean(values)
    if statistic == "median":
        return Median(values)
    raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")


def _full(statistic: Statistic) -> float:
    return float(statistic(np.ones((1, statistic.n_units), dtype=np.int64))[0])


def bootstrap_ci(data: Statistic | Any, statistic: Literal["mean", "median"] = "mean", *,
                 rng: np.random.Generator, n_boot: int = 1000, confidence: float = 0.95) -> Interval:
    """Percentile-bootstrap interval of one statistic.

    Args:
        data: (N,) per-item values (array, list, Series), or a :class:`Statistic` (e.g. from
            ``MetricResult.statistics``).
        statistic: for plain values, "mean" or "median" of them.
        rng: the random generator (explicit; same state, same interval).
        n_boot: number of resamples, at least `min_resamples` (confidence) (200 at 95 %).
        confidence: coverage of the two-sided interval.

    Returns:
        Interval(estimate on the full data, low, high).
    """
    stat = _as_statistic(data, statistic)
    low, high = _percentile_intervals([stat], stat.n_units, rng=rng, n_boot=n_boot, confidence=confidence)
    return Interval(_full(stat), float(low[0]), float(high[0]))


class _Difference:
    """Statistic a - b on the same items (b's items reordered to a's order by ``b_position``)."""

    def __init__(self, a: Statistic, b: Statistic, b_position: np.ndarray | None = None):
        if a.n_units != b.n_units:
            raise MetricError(f"paired bootstrap: the systems cover {a.n_units} and {b.n_units} items")
        self.a, self.b, self.b_position, self.n_units = a, b, b_position, a.n_units

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        if self.b_position is None:
            return self.a(weights) - self.b(weights)
        weights_b = np.empty_like(weights)
        weights_b[:, self.b_position] = weights
        return self.a(weights) - self.b(weights_b)


def paired_bootstrap_ci(a: Statistic | Any, b: Statistic | Any, statistic: Literal["mean", "median"] = "mean", *,
                        rng: np.random.Generator, n_boot: int = 1000, confidence: float = 0.95) -> Interval:
    """Interval of the difference a - b between two systems scored on the same items (paired resampling).

    Args:
        a, b: (N,) per-item values of each system, item i the same in both, or two Statistics over the same
            items in the same order.
        statistic, rng, n_boot, confidence: as in :func:`bootstrap_ci`.

    Returns:
        Interval(difference on the full data, low, high); an interval excluding 0 means the systems differ
        at this confidence.
    """
    diff = _Difference(_as_statistic(a, statistic), _as_statistic(b, statistic))
    low, high = _percentile_intervals([diff], diff.n_units, rng=rng, n_boot=n_boot, confidence=confidence)
    return Interval(_full(diff), float(low[0]), float(high[0]))


def metric_intervals(result: MetricResult, *, rng: np.random.Generator, n_boot: int = 1000,
                     confidence: float = 0.95) -> pd.DataFrame:
    """Intervals for every headline number of a MetricResult that has a statistic (counts get none).

    All metrics share the same resamples. Returns a DataFrame indexed by metric name with columns
    ``estimate`` (the summary value), ``low``, ``high``.
    """
    keys = list(result.statistics)
    low, high = _percentile_intervals([result.statistics[k] for k in keys], result.n_items, rng=rng,
                                      n_boot=n_boot, confidence=confidence)
    return pd.DataFrame({"estimate": [result.summary[k] for k in keys], "low": low, "high": high},
                        index=pd.Index(keys, name="metric"))


def paired_differences(a: MetricResult, b: MetricResult, *, rng: np.random.Generator, n_boot: int = 1000,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Paired-bootstrap intervals of a - b for every metric the two results share, on the same items.

    The two results must cover the same item ids (any order); resamples draw items, and both systems are
    evaluated on the same draw.

    Returns:
        DataFrame indexed by metric with columns ``a``, ``b``, ``difference`` (a - b), ``low``, ``high``.

    Raises:
        MetricError: the item sets differ (naming some ids) or no metric is shared.
    """
    ids_a = a.per_item[ID_COLUMN].astype(str).tolist()
    position_b = {item: i for i, item in enumerate(b.per_item[ID_COLUMN].astype(str))}
    only_a = [i for i in ids_a if i not in position_b]
    only_b = sorted(set(position_b) - set(ids_a))
    if only_a or only_b:
        raise MetricError(f"paired bootstrap needs the same items: {len(only_a)} only in a (e.g. {only_a[:5]}), "
                          f"{len(only_b)} only in b (e.g. {only_b[:5]})")
    keys = [k for k in a.statistics if k in b.statistics]
    if not keys:
        raise MetricError("paired bootstrap: the two results share no metric")
    b_position = np.array([position_b[i] for i in ids_a], dtype=np.intp)
    diffs = [_Difference(a.statistics[k], b.statistics[k], b_position) for k in keys]
    low, high = _percentile_intervals(diffs, a.n_items, rng=rng, n_boot=n_boot, confidence=confidence)
    return pd.DataFrame({"a": [a.summary[k] for k in keys], "b": [b.summary[k] for k in keys],
                         "difference": [a.summary[k] - b.summary[k] for k in keys], "low": low, "high": high},
                        index=pd.Index(keys, name="metric"))


def intervals_overlap(a: Interval, b: Interval) -> bool:
    """Whether two intervals share at least one point (a conservative check: overlap does not prove equality;
    use :func:`paired_bootstrap_ci` to compare two systems on the same items)."""
    return a.low <= b.high and b.low <= a.high
