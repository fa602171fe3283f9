"""Figures of the Panda-70M stages, each drawn from the table saved beside it (STYLE.md rule 12).

Chinese labels need the CJK font: stage notebooks get it from ``Stage`` (``vlstudy.plotting.use_cjk_font``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_split_tradeoff", "plot_rates"]


def plot_split_tradeoff(table: pd.DataFrame, lpips_label: str, title: str, show_paper: bool) -> Figure:
    """Panda Table 2 as a plane: mean clip length (x) against Max Running LPIPS (y), one point per method with
    95 % whiskers both ways; the paper's rows as hollow markers when `show_paper` (only when the LPIPS backbone is
    the paper's: a random AlexNet's values are on another scale).

    Args:
        table: ``method``, ``mean_clip_seconds`` and ``clip_score`` with ``_low``/``_high`` columns, and optional
            ``paper_avg_len_s`` / ``paper_max_running_lpips`` (NaN without a counterpart).
        lpips_label: the y axis's name (says when the backbone is random).
        title: the title.
        show_paper: draw the paper's points.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for _, row in table.iterrows():
        x, y = row["mean_clip_seconds"], row["clip_score"]
        ax.errorbar(x, y, xerr=[[x - row["mean_clip_seconds_low"]], [row["mean_clip_seconds_high"] - x]],
                    yerr=[[y - row["clip_score_low"]], [row["clip_score_high"] - y]], fmt="o", capsize=4)
        ax.annotate(row["method"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        if show_paper and np.isfinite(row.get("paper_max_running_lpips", np.nan)):
            ax.plot(row["paper_avg_len_s"], row["paper_max_running_lpips"], "s", mfc="none", color="#888")
            ax.annotate(f"{row['method']} (paper)", (row["paper_avg_len_s"], row["paper_max_running_lpips"]),
                        textcoords="offset points", xytext=(6, -10), fontsize=7, color="#888")
    ax.set_xlabel("平均片段长度 (mean clip length, s)")
    ax.set_ylabel(f"最大连续 LPIPS ({lpips_label})", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_rates(table: pd.DataFrame, label: str, groups: list[str], title: str, ylabel: str) -> Figure:
    """Grouped bars: one group per row of `table` (e.g. a teacher), one bar per column in `groups` (e.g. all
    clips / truthful metadata / misleading metadata), whiskers from ``<group>_low`` / ``<group>_high`` when present.
    """
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(table))
    width = 0.8 / len(groups)
    for k, group in enumerate(groups):
        heights = table[group].to_numpy(float)
        errors = None
        if f"{group}_low" in table:
            errors = np.vstack([heights - table[f"{group}_low"].to_numpy(float),
                                table[f"{group}_high"].to_numpy(float) - heights])
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, heights, width, yerr=errors, capsize=3, label=group)
    ax.set_xticks(x, table[label], rotation=10)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
