"""Qualitative results (Youku-mPLUG appendix A, Figs. 6–8): frames, an instruction, every model's answer, graded.

The paper shows, per case, a video's frames, an instruction ("这个视频片段讲了什么?") and each model's answer with
its grade: captioning (Fig. 6), scene text (Fig. 7), open-domain knowledge (Fig. 8). Here the cases are chosen
before any answer is seen — the first item of each configured aspect in package order (by default overall
description, scene text and category, the kit's analogues of the three figures) — and each answer carries the
rubric's grade and reason beside the item's reference answer (the truth), so a reader can check the grade.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from vlstudy.humaneval.instructions import GROUNDED_ASPECTS, GroundedItem

__all__ = ["qualitative_items", "qualitative_table", "plot_qualitative"]


def qualitative_items(items: Sequence[GroundedItem], aspects: Sequence[str]) -> list[GroundedItem]:
    """The first item of each aspect in `aspects` (package order), skipping aspects the sample lacks."""
    first: dict[str, GroundedItem] = {}
    for item in items:
        first.setdefault(item.aspect, item)
    return [first[a] for a in aspects if a in first]


def qualitative_table(items: Sequence[GroundedItem], rubric: pd.DataFrame) -> pd.DataFrame:
    """One row per (case, responder): item_id, video_id, aspect, instruction, reference, model, answer, grade,
    reason (the rubric's), responders in the rubric table's order.

    Raises:
        KeyError: an item the rubric table does not grade.
    """
    graded = rubric.set_index("item_id")
    rows = []
    for item in items:
        if item.item_id not in graded.index:
            raise KeyError(f"item {item.item_id} is not in the rubric table")
        for r in graded.loc[[item.item_id]].itertuples():
            rows.append({"item_id": item.item_id, "video_id": item.video_id, "aspect": item.aspect,
                         "instruction": item.instruction, "reference": item.reference, "model": r.model,
                         "answer": r.answer, "grade": r.grade, "reason": r.reason})
    return pd.DataFrame(rows)


def plot_qualitative(table: pd.DataFrame, frames: Mapping[str, np.ndarray], title: str, width: int = 46):
    """One panel per case: the video's frames in a strip, the instruction, the reference, then each answer with
    its grade (as the paper's Figs. 6–8).

    Args:
        table: :func:`qualitative_table`'s rows.
        frames: video id → (T, H, W, 3) uint8 keyframes.
        title: the figure title.
        width: characters per line of wrapped text.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.transforms import offset_copy

    from vlstudy.plotting import use_cjk_font

    use_cjk_font()
    panels = []  # per case: (first row, [(wrapped text, colour)])
    for case in dict.fromkeys(table["item_id"]):
        rows = table[table["item_id"] == case]
        first = rows.iloc[0]
        lines = [(f"指令：{first['instruction']}", "black"), (f"参考：{first['reference']}", "#2b6a2b")]
        lines += [(f"[{r.grade}] {r.model}：{r.answer or '（空）'}", "#8b1a1a" if r.grade in "CD" else "#1a3d8b")
                  for r in rows.itertuples()]
        panels.append((first, [(textwrap.fill(t, width=width), c) for t, c in lines]))
    heights = [max(1.4, 0.2 * sum(t.count("\n") + 1.3 for t, _ in lines)) for _, lines in panels]
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1.3, 3], "height_ratios": heights})
    for (ax_img, ax_txt), (first, lines) in zip(axes, panels):
        ax_img.imshow(np.concatenate(list(frames[first["video_id"]]), axis=1))  # (H, T*W, 3) strip
        ax_img.set_title(f"{first['item_id']} · {GROUNDED_ASPECTS[first['aspect']]}", fontsize=9)
        ax_img.axis("off")
        ax_txt.axis("off")
        down = 0.0  # points below the top of the panel
        for text, color in lines:
            ax_txt.text(0, 1, text, fontsize=8.5, va="top", color=color,
                        transform=offset_copy(ax_txt.transAxes, fig=fig, y=-down, units="points"))
            down += 14.4 * (text.count("\n") + 1) + 4
    fig.suptitle(title)
    fig.tight_layout()
    return fig
