"""Figures of the benchmark stages, each drawn from the table that is saved beside it (STYLE.md rule 12).

Chinese labels need the CJK font: stage notebooks get it from ``Stage`` (``vlstudy.plotting.use_cjk_font``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_caption_examples", "plot_confusion", "plot_intervals", "plot_per_class_accuracy"]


def plot_per_class_accuracy(table: pd.DataFrame, title: str) -> Figure:
    """Bars of ``top1`` per ``class_name`` (from `vlstudy.metrics.classification.per_class_accuracy`)."""
    fig, ax = plt.subplots(figsize=(12, 3.8))
    ax.bar(np.arange(len(table)), table["top1"], color="#4c72b0")
    ax.set_xticks(np.arange(len(table)), table["class_name"], rotation=75, fontsize=7)
    ax.set_ylabel("top-1 准确率 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion(matrix: pd.DataFrame, title: str) -> Figure:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class)."""
    counts = matrix.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(9, 8))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(matrix))
    ax.set_xticks(ticks, matrix.columns, rotation=90, fontsize=6)
    ax.set_yticks(ticks, matrix.index, fontsize=6)
    ax.set_xlabel("预测类目 (predicted)")
    ax.set_ylabel("真实类目 (true)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.04, label="行内比例 (share of the row)")
    fig.tight_layout()
    return fig


def plot_intervals(table: pd.DataFrame, label: str, value: str, title: str, ylabel: str,
                   reference: dict[str, float] | None = None) -> Figure:
    """Bars of ``table[value]`` per ``table[label]`` with 95% interval whiskers (``low``/``high`` columns).

    Args:
        table: one row per bar.
        label, value: the column names of the bar labels and heights.
        title, ylabel: texts.
        reference: optional horizontal lines, name → height (e.g. designed ceilings).
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(table))
    heights = table[value].to_numpy(float)
    errors = np.vstack([heights - table["low"].to_numpy(float), table["high"].to_numpy(float) - heights])
    ax.bar(x, heights, yerr=errors, capsize=6, color="#55a868")
    for xi, h in zip(x, heights):
        ax.text(xi, h + 1, f"{h:.1f}", ha="center", va="bottom", fontsize=9)
    for name, height in (reference or {}).items():
        ax.axhline(height, linestyle="--", linewidth=1, color="#999")
        ax.text(len(table) - 0.5, height, f" {name}", va="center", fontsize=8, color="#666")
    ax.set_xticks(x, table[label], rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_caption_examples(frames: Sequence[np.ndarray], references: Sequence[str], predictions: Sequence[str],
                          title: str) -> Figure:
    """One row per video: three frames, then its first reference and the model's caption.

    Args:
        frames: per video, (3, H, W, 3) uint8 frames.
        references, predictions: per video, a reference caption and the prediction.
    """
    fig, axes = plt.subplots(len(frames), 4, figsize=(11, 1.9 * len(frames)),
                             gridspec_kw={"width_ratios": [1, 1, 1, 3.4]}, squeeze=False)
    for row, clip, ref, pred in zip(axes, frames, references, predictions):
        for ax, frame in zip(row[:3], clip):
            ax.imshow(frame)
            ax.axis("off")
        row[3].axis("off")
        row[3].text(0, 0.62, f"参考：{ref}", fontsize=8, va="center", wrap=True)
        row[3].text(0, 0.28, f"生成：{pred}", fontsize=8, va="center", color="#c44e52", wrap=True)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
