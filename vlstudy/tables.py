"""Result tables for the report: headline numbers with their 95% intervals, and the paper's numbers beside them.

Tasks write ``result.json`` files whose metrics are ``{metric: {"estimate", "low", "high"}}``
(`vlstudy.tasks.common.interval_summary`); these helpers turn several of them into one table per paper table.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from vlstudy.paper import paper_value

__all__ = ["format_interval", "results_table", "paper_comparison", "PAPER_NOTE"]

PAPER_NOTE = ("paper: Youku-mPLUG, real data, billion-parameter models, test split — a different dataset and scale; "
              "n/a = not available in this kit (see vlstudy/paper.py)")


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
        rows: system name → its ``metrics`` entry of a result.json.
        metrics: the metric keys to show, in order.
        digits: decimals.
    """
    data = {name: {m: format_interval(values[m], digits) for m in metrics} for name, values in rows.items()}
    return pd.DataFrame.from_dict(data, orient="index", columns=metrics).rename_axis("system").reset_index()


def paper_comparison(table: pd.DataFrame, paper_table: str, row_map: Mapping[str, str],
                     metric_map: Mapping[str, str]) -> pd.DataFrame:
    """Add ``paper: <metric>`` columns with the published value for the rows that have a paper counterpart.

    Args:
        table: from :func:`results_table` (a ``system`` column).
        paper_table: e.g. ``"Table 4"``.
        row_map: our system name → the paper's row name.
        metric_map: our metric column → the paper's metric name.

    Returns:
        The table with one ``paper: <metric>`` column per metric ("n/a" where the value is not known here) and a
        ``paper row`` column.
    """
    out = table.copy()
    out["paper row"] = [row_map.get(s, "") for s in out["system"]]
    for ours, theirs in metric_map.items():
        values = []
        for system in out["system"]:
            if system not in row_map:
                values.append("")
                continue
            value = paper_value(paper_table, row_map[system], theirs)
            values.append("n/a" if value is None else f"{value:g}")
        out[f"paper: {ours}"] = values
    return out
