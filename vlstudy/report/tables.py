"""Result tables for the report: headline numbers with their 95% intervals, and the paper's numbers beside them.

Tasks return metrics as ``{metric: {"estimate", "low", "high"}}`` (`vlstudy.tasks.common.interval_summary`);
these helpers turn several of them into one table per paper table.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from vlstudy.report.paper import NOT_REPORTED, paper_value

__all__ = ["format_interval", "results_table", "paper_comparison"]


def format_interval(entry: Mapping[str, float], digits: int = 1) -> str:
    """``"61.2 [58.4, 64.0]"`` from ``{"estimate", "low", "high"}`` (just the estimate when there is no interval)."""
    estimate = f"{entry['estimate']:.{digits}f}"
    if "low" not in entry:
        return estimate
    return f"{estimate} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def results_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]], metrics: list[str],
                  digits: int = 1) -> pd.DataFrame:
    """One row per system, one column per metric, cells ``estimate [low, high]``.

    Args:
        rows: system name → its metrics (``{metric: {"estimate", "low", "high"}}``).
        metrics: the metric keys to show, in order (a missing one shows as "—").
        digits: decimals.
    """
    data = {name: {m: format_interval(values[m], digits) if m in values else "—" for m in metrics}
            for name, values in rows.items()}
    return pd.DataFrame.from_dict(data, orient="index", columns=metrics).rename_axis("system").reset_index()


def paper_comparison(table: pd.DataFrame, paper_table: str, row_map: Mapping[str, str],
                     metrics: list[str]) -> pd.DataFrame:
    """Add a ``paper: <metric>`` column per metric with the published value of each row's counterpart.

    Args:
        table: from :func:`results_table` (a ``system`` column).
        paper_table: e.g. ``"Table 4"`` (see `vlstudy.report.paper`).
        row_map: our system name → the paper's row key; systems without one get "no counterpart".
        metrics: the metric names to look up.
    """
    out = table.copy()
    for metric in metrics:
        cells = []
        for system in out["system"]:
            if system not in row_map:
                cells.append("no counterpart")
                continue
            value = paper_value(paper_table, row_map[system], metric)
            cells.append(NOT_REPORTED if value is None else f"{value:g}")
        out[f"paper: {metric}"] = cells
    return out
