"""Published numbers that the report puts beside ours, each with its table and row.

Transcribed from the papers' texts (../shared/seeds/ in the development workspace; arXiv 2306.04362 for
Youku-mPLUG, CVPR 2024 for Panda-70M, VideoMind 2025). A (table, row, metric) the paper does not report is
absent, and the report prints "not reported" for it, never "n/a".

Protocol caveats: Youku-mPLUG reports the *test* split, whose labels were never released (maintainers,
X-PLUG/Youku-mPLUG issues #8 and #23); the kit reports on *val*. Our numbers come from a different dataset and
scale in any case (mini-Youku, tiny models): the columns sit side by side for orientation only. Youku-mPLUG's
Table 5 header says "R@2" in the V2T block; it is R@5 (the caption says R@1, R@5, R@10). VideoMind evaluates other
models (InternVideo, UMT-L, CLIP-VIP, mPLUG-2, VAST) on its own 3K benchmark; its mPLUG-2 row is the kit's
``mplug2`` system only by name (a real-scale model on real data).
"""

from __future__ import annotations

__all__ = ["PAPER", "paper_value", "NOT_REPORTED", "SOURCES", "VIDEOMIND_MODELS"]

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

# VideoMind Tables 2 and 3 (VideoMind-3K, the 3,000 manually checked benchmark videos; real data, other models),
# transcribed from the paper's text; metric keys are those of `vlstudy.metrics.videomind` (percent; ranks 1-based).
VIDEOMIND_MODELS = {"internvideo": "InternVideo", "umt_l": "UMT-L", "clip_vip": "CLIP-VIP", "mplug2": "mPLUG-2",
                    "vast": "VAST"}
_VIDEOMIND_T2V_KEYS = [f"{query}_{metric}" for query in ("t2v_factual", "t2v_abstract", "t2v_intent", "any2v")
                       for metric in ("R@1", "R@5", "R@10", "MeanR")]
_VIDEOMIND_T2V = {  # Table 2: factual, abstract, intent and any → V, each R@1, R@5, R@10, MeanR
    "internvideo": (82.10, 95.50, 97.50, 2.40, 77.60, 92.50, 95.50, 4.10,
                    50.80, 72.10, 78.30, 49.70, 70.13, 86.69, 90.42, 18.74),
    "umt_l": (87.56, 95.48, 96.86, 10.78, 78.35, 89.89, 93.16, 23.52,
              37.39, 58.83, 65.61, 233.04, 67.76, 81.40, 85.21, 89.11),
    "clip_vip": (67.40, 86.80, 91.30, 7.30, 64.83, 83.90, 88.43, 10.30,
                 33.77, 55.27, 62.90, 91.00, 55.34, 75.32, 80.88, 36.02),
    "mplug2": (83.20, 93.20, 95.43, 37.4, 77.57, 90.03, 93.23, 43.84,
               35.17, 57.80, 65.37, 235.72, 65.31, 80.34, 84.67, 105.65),
    "vast": (83.93, 95.60, 97.20, 3.98, 74.90, 90.37, 92.87, 9.69,
             43.83, 66.07, 72.87, 73.05, 67.55, 84.01, 87.64, 28.90),
}
_VIDEOMIND_V2T_KEYS = ["v2t_hit_any_R@1", "v2t_hit_any_R@5", "v2t_hit_any_R@10", "v2t_hit_all_R@3", "v2t_hit_all_R@5",
                       "v2t_hit_all_R@10", "v2t_TopR", "v2t_LowestR", "v2t_AvgR"]
_VIDEOMIND_V2T = {  # Table 3: hit any layer R@1/5/10, hit all layers R@3/5/10, TopR, LowestR, AvgR
    "internvideo": (79.63, 93.77, 96.23, 30.67, 45.10, 58.80, 2.75, 114.26, 43.79),
    "umt_l": (82.70, 93.00, 95.60, 29.73, 43.23, 54.23, 10.15, 523.49, 201.01),
    "clip_vip": (72.13, 88.97, 93.01, 19.23, 32.03, 44.40, 7.21, 205.22, 79.99),
    "mplug2": (72.97, 88.13, 91.67, 26.26, 38.60, 51.27, 23.51, 621.33, 254.96),
    "vast": (78.83, 92.10, 95.17, 18.93, 29.17, 40.10, 5.52, 324.83, 125.89),
}
for _table, _keys, _rows in (("VideoMind Table 2", _VIDEOMIND_T2V_KEYS, _VIDEOMIND_T2V),
                             ("VideoMind Table 3", _VIDEOMIND_V2T_KEYS, _VIDEOMIND_V2T)):
    PAPER.update({(_table, row, key): value for row, values in _rows.items() for key, value in zip(_keys, values)})


def paper_value(table: str, row: str, metric: str) -> float | None:
    """The published value for (table, row, metric), or None when the paper does not report it."""
    return PAPER.get((table, row, metric))
