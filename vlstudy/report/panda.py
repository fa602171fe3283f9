"""Panda-70M's published numbers beside the kit's Panda findings and Table 2 (`vlstudy.report.paper` holds them).

The Panda stages decide their findings in the task layer (`vlstudy.tasks.panda_splitting`, `panda_captions`,
`panda_student`); this module, one layer up, adds what the paper reports to each finding and to Table 2, so that
the task layer never reads the report layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlstudy.report.paper import paper_value

__all__ = ["paper_text", "with_paper", "table2_paper_columns"]


def _v(table: str, row: str, metric: str) -> str:
    return f"{paper_value(table, row, metric):g}"


def paper_text(finding: str) -> str:
    """What the paper reports for one of the Panda findings (by its key)."""
    texts = {
        "panda_stitching_longer_clips": f"PySceneDetect {_v('Panda Table 2', 'shot_detection', 'avg_len_s')} s / "
        f"Max Running LPIPS {_v('Panda Table 2', 'shot_detection', 'max_running_lpips')}; stitching "
        f"{_v('Panda Table 2', 'stitching', 'avg_len_s')} s / {_v('Panda Table 2', 'stitching', 'max_running_lpips')}"
        " (Table 2, 1K real long videos)",
        "panda_no_teacher_dominates": f"the most selected of 8 teachers is best on "
        f"{_v('Panda Fig. 3', 'most_selected_teacher', 'selective_rate')} % of 1,805 videos (Fig. 3, human choices)",
        "panda_selector_fine_tuning": f"R@1 {_v('Panda selector', 'zero_shot', 'R@1')} (pre-trained UMT) -> "
        f"{_v('Panda selector', 'fine_tuned', 'R@1')} (fine-tuned), against human choices (§3.3)",
        "panda_student_beats_every_teacher": f"preference ratio {_v('Panda Table 4', 'student_video', 'preference')} "
        f"(student, video) vs {_v('Panda Table 4', 'best_single_teacher', 'preference')} (best of 8 teachers)",
        "panda_student_text_helps": f"preference ratio {_v('Panda Table 4', 'student_video_text', 'preference')} "
        f"(video + text) vs {_v('Panda Table 4', 'student_video', 'preference')} (video only)",
    }
    if finding not in texts:
        raise KeyError(f"no paper text for finding {finding!r} (known: {', '.join(texts)})")
    return texts[finding]


def with_paper(findings: dict[str, dict]) -> dict[str, dict]:
    """`findings` (name -> claim, ours, low, high, holds, note) with each one's ``paper`` entry added."""
    return {name: {"claim": f["claim"], "paper": paper_text(name), **{k: v for k, v in f.items() if k != "claim"}}
            for name, f in findings.items()}


def table2_paper_columns(numbers: pd.DataFrame) -> pd.DataFrame:
    """Panda Table 2's two published columns for the rows with a counterpart (``paper_row``; NaN otherwise)."""
    out = numbers.copy()
    for column, metric in (("paper_avg_len_s", "avg_len_s"), ("paper_max_running_lpips", "max_running_lpips")):
        out[column] = [paper_value("Panda Table 2", row, metric) if row else np.nan for row in out["paper_row"]]
    return out
