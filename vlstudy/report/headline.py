"""Headline numbers for `dvc metrics show`, and every number of a result as one long table for the report.

Some tasks return dozens of numbers per system (VideoMind: 26 recall keys for each of four systems; Panda Table 4:
seven captioning metrics and a preference ratio for each of seven systems). Logged whole, they turn
`dvc metrics show` into a thousand columns. A stage logs instead the numbers its claims rest on, chosen by path
pattern before any number is seen (``headline(metrics, ["*.t2v_*_R@1", "findings"])``), and writes every number
with `long_table` to ``reports/figures/<stage>/all_metrics.csv``, which the report shows in its collapsed appendix.
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pandas as pd

__all__ = ["headline", "long_table"]


def headline(metrics: dict[str, Any], patterns: list[str], prefix: str = "") -> dict[str, Any]:
    """The parts of a (nested) metrics dict whose dotted path matches one of `patterns` (``fnmatch`` syntax, e.g.
    ``"systems.*.CIDEr"``); a matching key keeps its whole subtree, a dict that does not match is searched.

    >>> headline({"a": {"R@1": 1, "R@5": 2}, "b": {"R@1": 3}}, ["*.R@1"])
    {'a': {'R@1': 1}, 'b': {'R@1': 3}}
    """
    if not patterns:
        raise ValueError("headline: no patterns given (the metrics file would be empty)")
    kept: dict[str, Any] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if any(fnmatchcase(path, p) for p in patterns):
            kept[key] = value
        elif isinstance(value, dict):
            inner = headline(value, patterns, prefix=path + ".")
            if inner:
                kept[key] = inner
    return kept


def _is_interval(value: Any) -> bool:
    return isinstance(value, dict) and "estimate" in value and set(value) <= {"estimate", "low", "high"}


def long_table(metrics: dict[str, Any], prefix: str = "") -> pd.DataFrame:
    """Every number of a nested metrics dict as rows ``metric, estimate, low, high``: an interval
    (``{"estimate", "low", "high"}``) is one row, any other scalar one row with empty bounds.

    >>> long_table({"a": {"R@1": {"estimate": 1.0, "low": 0.5, "high": 1.5}}, "n": 3}).values.tolist()
    [['a.R@1', 1.0, 0.5, 1.5], ['n', 3.0, nan, nan]]
    """
    rows: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, value in node.items():
            name = f"{path}{key}"
            if _is_interval(value):
                rows.append({"metric": name, "estimate": value["estimate"], "low": value.get("low"),
                             "high": value.get("high")})
            elif isinstance(value, dict):
                walk(value, name + ".")
            else:
                rows.append({"metric": name, "estimate": value, "low": None, "high": None})

    walk(metrics, prefix)
    return pd.DataFrame(rows, columns=["metric", "estimate", "low", "high"])
