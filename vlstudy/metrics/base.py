"""The one interface every vlstudy metric returns: :class:`MetricResult` (STYLE.md rule 7).

A metric function (``classification_metrics``, ``caption_metrics``, ``retrieval_metrics``,
``videomind_metrics``) returns a :class:`MetricResult` holding

* ``summary``: the headline numbers, ``dict[str, float]``;
* ``per_item``: a pandas DataFrame with one row per test item (the *sampling unit* of the bootstrap: a video
  for classification, captioning, retrieval and VideoMind), identified by the ``item_id`` column, with that
  item's values (correct@1, its rank, its sentence scores, ...);
* ``statistics``: for each headline number that gets a confidence interval, a :class:`Statistic` that
  recomputes it from a reweighting of the items. ``vlstudy.metrics.bootstrap`` draws items with replacement
  and hands the statistic how often each item was drawn;
* ``details``: further per-element tables linked to ``per_item`` by ``item_id`` (e.g. retrieval's one row per
  text query, several per video).

Units, once for the whole package:

* accuracy and recall@K are in **percent** (0-100), as the Youku-mPLUG paper prints them;
* ranks are **1-based**; median and mean rank (MdR, MnR, MeanR, TopR, ...) are in rank units;
* caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) are pycocoevalcap's values **x100**, as the paper prints
  them (CIDEr 68.9 means pycocoevalcap's 0.689);
* summary keys starting with ``n_`` are counts (items, empty predictions); they are descriptive and get no
  interval.

Why counts ("weights") rather than lists of drawn indices: corpus-level metrics (BLEU, METEOR) are one formula
applied to sums of per-item sufficient statistics, and a sum over a resample is one matrix product
``weights @ stats``; means follow the same way, and medians use cumulative counts over the sorted values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["ID_COLUMN", "MetricError", "Statistic", "Mean", "Median", "MetricResult", "as_array"]

ID_COLUMN = "item_id"


class MetricError(ValueError):
    """Bad input to a metric; the message names the item (id or index) and the value at fault."""


@runtime_checkable
class Statistic(Protocol):
    """A headline number as a function of how often each item is drawn.

    Attributes:
        n_units: the number of items (rows of ``MetricResult.per_item``).
    """

    n_units: int

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """Evaluate on reweighted items.

        Args:
            weights: (B, n_units) non-negative integer counts; row b says how often each item appears in
                resample b. A row of ones is the data set itself.

        Returns:
            (B,) the statistic on each resample.
        """
        ...


def _element_weights(weights: np.ndarray, unit_of: np.ndarray | None) -> np.ndarray:
    """(B, n_units) item counts -> (B, M) counts of the M elements (an element counts as often as its item)."""
    return weights if unit_of is None else weights[:, unit_of]


class Mean:
    """Weighted mean of per-element values, times ``scale``: accuracy, R@K (``Mean(rank <= K, scale=100)``), MnR.

    Args:
        values: (M,) one value per element.
        unit_of: (M,) the item index (0..n_units-1) each element belongs to, when an item has several
            elements (retrieval: the texts of a video); None when element m is item m.
        n_units: the number of items; required with ``unit_of``.
        scale: factor applied to the mean (100 for percentages).
    """

    def __init__(self, values: Any, *, unit_of: Any = None, n_units: int | None = None, scale: float = 1.0):
        self.values = np.asarray(values, dtype=np.float64)
        self.unit_of = None if unit_of is None else np.asarray(unit_of, dtype=np.intp)
        if self.unit_of is not None and n_units is None:
            raise ValueError("Mean: n_units is required when unit_of is given")
        self.n_units = len(self.values) if self.unit_of is None else int(n_units)
        self.scale = float(scale)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        w = _element_weights(weights, self.unit_of)
        return self.scale * (w @ self.values) / w.sum(axis=1)


class Median:
    """Weighted median of per-element values (MdR): the median of the resample with each element repeated.

    With n drawn elements (sorted x_(1) <= ... <= x_(n)) it is (x_(ceil(n/2)) + x_(floor(n/2)+1)) / 2, i.e.
    ``numpy.median`` of the expanded resample; an order statistic x_(k) is the first sorted value whose
    cumulative count reaches k.

    Args:
        values: (M,) one value per element.
        unit_of: (M,) item index of each element, or None (element m is item m).
        n_units: the number of items; required with ``unit_of``.
    """

    def __init__(self, values: Any, *, unit_of: Any = None, n_units: int | None = None):
        values = np.asarray(values, dtype=np.float64)
        order = np.argsort(values, kind="stable")
        self.sorted_values = values[order]
        if unit_of is None:
            self.sorted_unit_of = order
            self.n_units = len(values)
        else:
            if n_units is None:
                raise ValueError("Median: n_units is required when unit_of is given")
            self.sorted_unit_of = np.asarray(unit_of, dtype=np.intp)[order]
            self.n_units = int(n_units)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(weights[:, self.sorted_unit_of], axis=1)  # (B, M)
        n = cumulative[:, -1:]
        lower = (cumulative < (n + 1) // 2).sum(axis=1)  # index of x_(ceil(n/2))
        upper = (cumulative < n // 2 + 1).sum(axis=1)  # index of x_(floor(n/2)+1)
        return (self.sorted_values[lower] + self.sorted_values[upper]) / 2


@dataclass(frozen=True)
class MetricResult:
    """Headline numbers with the per-item values they come from (see the module docstring).

    Attributes:
        summary: headline numbers (percent / x100 / rank units, see the module docstring); ``n_*`` keys are counts.
        per_item: one row per test item, ``item_id`` column unique.
        statistics: a :class:`Statistic` per summary key that gets an interval; each must reproduce its
            summary value on the full data (checked here).
        details: further per-element tables linked to ``per_item`` by ``item_id``.
    """

    summary: dict[str, float]
    per_item: pd.DataFrame
    statistics: Mapping[str, Statistic]
    details: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self):
        if ID_COLUMN not in self.per_item.columns:
            raise ValueError(f"MetricResult.per_item needs an {ID_COLUMN!r} column, got {list(self.per_item.columns)}")
        duplicated = self.per_item[ID_COLUMN][self.per_item[ID_COLUMN].duplicated()]
        if len(duplicated):
            raise ValueError(f"MetricResult.per_item: duplicate item ids {duplicated.head(5).tolist()}")
        full = np.ones((1, len(self.per_item)), dtype=np.int64)
        for key, statistic in self.statistics.items():
            if key not in self.summary:
                raise ValueError(f"MetricResult: statistic {key!r} has no summary value")
            if statistic.n_units != len(self.per_item):
                raise ValueError(f"MetricResult: statistic {key!r} covers {statistic.n_units} items, "
                                 f"per_item has {len(self.per_item)}")
            recomputed = float(statistic(full)[0])
            if not np.isclose(recomputed, self.summary[key], rtol=1e-9, atol=1e-9):
                raise ValueError(f"MetricResult: statistic {key!r} gives {recomputed!r} on the full data but the "
                                 f"summary says {self.summary[key]!r}")

    @property
    def n_items(self) -> int:
        """The number of test items (rows of ``per_item``)."""
        return len(self.per_item)


def as_array(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """A numpy array from an array-like or a torch tensor (any device, any float dtype).

    Args:
        x: array-like or ``torch.Tensor``.
        name: what it is, for error messages.
        dtype: the numpy dtype wanted.
    """
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise MetricError(f"{name}: cannot read as a {np.dtype(dtype).name} array ({err})") from None
