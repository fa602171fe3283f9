"""Published numbers that the report puts beside ours, each with its table and row.

Transcribed from the papers' texts (../shared/seeds/ in the development workspace; arXiv 2306.04362 for
Youku-mPLUG, CVPR 2024 for Panda-70M, VideoMind 2025). A (table, row, metric) the paper does not report is
absent, and the report prints "not reported" for it, never "n/a".

Protocol caveats: Youku-mPLUG reports the *test* split, whose labels were never released (maintainers,
X-PLUG/Youku-mPLUG issues #8 and #23); the kit reports on *val*. Our numbers come from a different dataset and
scale in any case (mini-Youku, tiny models): the columns sit side by side for orientation only. Youku-mPLUG's
Table 5 header says "R@2" in the V2T block; it is R@5 (the caption says R@1, R@5, R@10).
"""

from __future__ import annotations

__all__ = ["PAPER", "paper_value", "NOT_REPORTED", "SOURCES"]

NOT_REPORTED = "not reported"

SOURCES = {
    "youku": "Youku-mPLUG (Xu et al. 2023), real data, 1B+ parameter models, test split",
    "panda": "Panda-70M (Chen et al. CVPR 2024), real data",
    "videomind": "VideoMind (Yang et al. 2025), real data",
}

# (table, row, metric) → value. Rows use the kit's names where the kit has the same system.
PAPER: dict[tuple[str, str, str], float] = {
    # Youku-mPLUG Table 4: classification (top-1/top-5) and captioning.
    ("Table 4", "alpro", "top1"): 78.15, ("Table 4", "alpro", "top5"): 95.15,
    ("Table 4", "mplug2", "top1"): 77.79, ("Table 4", "mplug2", "top5"): 92.44,
    ("Table 4", "mplug_video", "top1"): 80.57, ("Table 4", "mplug_video", "top5"): 98.15,  # 2.7B
    ("Table 4", "mplug_video_1.3b", "top1"): 80.04, ("Table 4", "mplug_video_1.3b", "top5"): 98.06,
    ("Table 4", "mplug2", "BLEU-4"): 43.7, ("Table 4", "mplug2", "METEOR"): 27.6,
    ("Table 4", "mplug2", "ROUGE-L"): 52.9, ("Table 4", "mplug2", "CIDEr"): 67.7,
    ("Table 4", "mplug_video", "BLEU-4"): 47.1, ("Table 4", "mplug_video", "METEOR"): 26.7,
    ("Table 4", "mplug_video", "ROUGE-L"): 53.3, ("Table 4", "mplug_video", "CIDEr"): 68.9,
    ("Table 4", "mplug_video_1.3b", "BLEU-4"): 46.4, ("Table 4", "mplug_video_1.3b", "METEOR"): 26.5,
    ("Table 4", "mplug_video_1.3b", "ROUGE-L"): 52.9, ("Table 4", "mplug_video_1.3b", "CIDEr"): 67.7,
    # Youku-mPLUG Table 5: retrieval (V2T and T2V R@1/5/10).
    ("Table 5", "alpro", "v2t_R@1"): 27.00, ("Table 5", "alpro", "v2t_R@5"): 53.33,
    ("Table 5", "alpro", "v2t_R@10"): 64.09, ("Table 5", "alpro", "t2v_R@1"): 26.63,
    ("Table 5", "alpro", "t2v_R@5"): 53.20, ("Table 5", "alpro", "t2v_R@10"): 64.43,
    ("Table 5", "mplug2", "v2t_R@1"): 38.45, ("Table 5", "mplug2", "v2t_R@5"): 65.48,
    ("Table 5", "mplug2", "v2t_R@10"): 75.18, ("Table 5", "mplug2", "t2v_R@1"): 38.45,
    ("Table 5", "mplug2", "t2v_R@5"): 65.48, ("Table 5", "mplug2", "t2v_R@10"): 75.18,
    ("Table 5", "mplug_video", "v2t_R@1"): 7.62, ("Table 5", "mplug_video", "v2t_R@5"): 21.24,
    ("Table 5", "mplug_video", "v2t_R@10"): 31.39, ("Table 5", "mplug_video", "t2v_R@1"): 7.62,
    ("Table 5", "mplug_video", "t2v_R@5"): 21.24, ("Table 5", "mplug_video", "t2v_R@10"): 31.39,
    # Youku-mPLUG Table 6: the modality ablation, on ALPRO.
    ("Table 6", "vision", "top1"): 63.51, ("Table 6", "vision", "top5"): 89.89,
    ("Table 6", "language", "top1"): 59.31, ("Table 6", "language", "top5"): 86.31,
    ("Table 6", "vision_language", "top1"): 69.40, ("Table 6", "vision_language", "top5"): 90.07,
    ("Table 6", "vision_language_pretrained", "top1"): 78.15,
    ("Table 6", "vision_language_pretrained", "top5"): 95.15,
    # Panda-70M Table 2: splitting (1K long videos).
    ("Panda Table 2", "subtitle_alignment", "max_running_lpips"): 0.408,
    ("Panda Table 2", "subtitle_alignment", "avg_len_s"): 11.8,
    ("Panda Table 2", "shot_detection", "max_running_lpips"): 0.247,
    ("Panda Table 2", "shot_detection", "avg_len_s"): 4.1,
    ("Panda Table 2", "stitching", "max_running_lpips"): 0.256,
    ("Panda Table 2", "stitching", "avg_len_s"): 7.9,
    # Panda-70M Fig. 3: the most selected of eight teachers (BLIP-2 opt6.7b), human choices on 1,805 videos.
    ("Panda Fig. 3", "most_selected_teacher", "selective_rate"): 17.85,
    # Panda-70M §3.3: the selector's R@1 against human choices.
    ("Panda selector", "zero_shot", "R@1"): 21.82, ("Panda selector", "fine_tuned", "R@1"): 35.90,
    ("Panda selector", "fine_tuned", "any_acceptable_R@1"): 78.9,
    # Panda-70M Table 4: preference ratio (%) of teachers and students.
    ("Panda Table 4", "best_single_teacher", "preference"): 10.7,
    ("Panda Table 4", "student_video", "preference"): 18.4,
    ("Panda Table 4", "student_video_text", "preference"): 21.4,
    ("Panda Table 4", "all_teachers", "preference"): 23.3,
}


def paper_value(table: str, row: str, metric: str) -> float | None:
    """The published value for (table, row, metric), or None when the paper does not report it."""
    return PAPER.get((table, row, metric))
