"""Tables 4 and 5 across models: do the paper's orderings of mPLUG-2, ALPRO and mPLUG-video hold here?

Youku-mPLUG §5.2 (Xu et al. 2023): on retrieval (Table 5, T2V R@1) mPLUG-2 38.45 > ALPRO 26.63 > mPLUG-video 7.62
("mPLUG-2 outperforms ALPRO, possibly due to the incorporation of universal layers"; "mPLUG-video perform[s]
poorly"); on classification (Table 4, top-1) mPLUG-video 80.57 > mPLUG-2 77.79; on captioning (Table 4) "mPLUG-video
obtains higher scores than mPLUG-2 on BLEU-4" (47.1 > 43.7). Each claim is decided from the per-item val
predictions that two cells of the fine-tuning matrices wrote, with a paired bootstrap over the same val videos
(`vlstudy.metrics.bootstrap.paired_differences`): it HOLDS when the 95 % interval of (upper − lower) excludes zero on
the claimed side (PIPELINE.md, "Findings").

The score set that stands for each model is fixed in advance from the paper's own description (`RETRIEVAL_ROWS`):
mPLUG-2 and ALPRO retrieve with their contrastive head and re-rank with their matching head; mPLUG-video scores
every pair with "an extra linear layer [on] the feature of the last token" (the ``mplug_matching`` cell's head).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy.metrics.base import MetricResult
from vlstudy.metrics.bootstrap import paired_differences
from vlstudy.metrics.captioning import caption_metrics
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.report.paper import paper_value
from vlstudy.tasks.classification import load_predictions

__all__ = [
    "CLAIMS",
    "RETRIEVAL_ROWS",
    "captioning_result",
    "classification_result",
    "decide_claims",
    "finding",
    "retrieval_result",
]

# Paper row → (finetune_retrieval cell, score set) that stands for it.
RETRIEVAL_ROWS = {"mplug2": ("mplug2", "rerank"), "alpro": ("alpro", "rerank"),
                  "mplug_video": ("mplug_matching", "head")}

# finding id → (task, upper row, lower row, metric, the paper's sentence).
CLAIMS = {
    "youku_t5_mplug2_gt_alpro": ("retrieval", "mplug2", "alpro", "t2v_R@1",
                                 "mPLUG-2 outperforms ALPRO on video retrieval (universal layers)"),
    "youku_t5_alpro_gt_mplug_video": ("retrieval", "alpro", "mplug_video", "t2v_R@1",
                                      "ALPRO beats mPLUG-video on video retrieval (mPLUG-video performs poorly)"),
    "youku_t4_mplug_video_gt_mplug2_top1": ("classification", "mplug_video", "mplug2", "top1",
                                            "mPLUG-video achieves higher classification top-1 than mPLUG-2"),
    "youku_t4_mplug_video_gt_mplug2_bleu4": ("captioning", "mplug_video", "mplug2", "BLEU-4",
                                             "mPLUG-video obtains higher captioning BLEU-4 than mPLUG-2"),
}
PAPER_TABLES = {"retrieval": "Table 5", "classification": "Table 4", "captioning": "Table 4"}


def retrieval_result(cell_dir: str | Path, scores: str) -> MetricResult:
    """The retrieval metrics of one ``finetune_retrieval`` cell's score set, recomputed from the similarity
    matrix and the query table it wrote (``similarity_<scores>.npy``, ``texts.csv``); items are the val videos."""
    cell_dir = Path(cell_dir)
    path = cell_dir / f"similarity_{scores}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such score set; run the retrieval cell first")
    similarity = np.load(path, allow_pickle=False)  # (texts, videos)
    texts = pd.read_csv(cell_dir / "texts.csv")
    video_ids = texts.drop_duplicates("video").sort_values("video")["video_id"].tolist()
    return retrieval_metrics(similarity, texts["video"].to_numpy(), video_ids=video_ids)


def captioning_result(cell_dir: str | Path) -> MetricResult:
    """The caption metrics of one ``finetune_captioning`` cell, recomputed from its ``predictions_val.csv``."""
    path = Path(cell_dir) / "predictions_val.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no predictions; run the captioning cell first")
    table = pd.read_csv(path, keep_default_na=False)
    return caption_metrics(dict(zip(table["video_id"], table["prediction"])),
                           {v: json.loads(r) for v, r in zip(table["video_id"], table["references"])})


def classification_result(cell_dir: str | Path, score_set: str = "head") -> MetricResult:
    """The classification metrics of one ``finetune_classification`` cell's score set (``head`` or
    ``generative``)."""
    results = load_predictions(cell_dir)
    if score_set not in results:
        raise KeyError(f"{cell_dir}: no score set {score_set!r} (has {', '.join(results)})")
    return results[score_set]


def finding(upper: MetricResult, lower: MetricResult, metric: str, *, claim: str, paper: str,
            rng: np.random.Generator, n_boot: int) -> dict:
    """A findings entry for the claim "upper > lower on `metric`": ``ours`` is the difference (points) on the same
    items, ``low``/``high`` its paired 95 % bootstrap interval, ``holds`` when ``low > 0``."""
    diff = paired_differences(upper, lower, rng=rng, n_boot=n_boot).loc[metric]
    low, high = float(diff["low"]), float(diff["high"])
    if low > 0:
        note = "the interval excludes zero on the claimed side"
    elif high < 0:
        note = "the reverse holds: the interval excludes zero on the other side"
    else:
        note = "the interval contains zero: no difference shown either way at this size"
    return {"claim": claim, "paper": paper, "ours": float(diff["difference"]), "low": low, "high": high,
            "holds": bool(low > 0), "upper": float(diff["a"]), "lower": float(diff["b"]), "note": note}


def decide_claims(results: dict[str, dict[str, MetricResult]], *, rng: np.random.Generator,
                  n_boot: int) -> dict[str, dict]:
    """Every claim of `CLAIMS` whose two results are given.

    Args:
        results: ``{task: {paper row: MetricResult}}``, e.g. ``{"retrieval": {"mplug2": ..., "alpro": ...}}``.
        rng: the bootstrap generator.
        n_boot: resamples.

    Returns:
        ``{finding id: finding}`` (see `finding`); claims with a missing result are left out.
    """
    out = {}
    for key, (task, upper, lower, metric, claim) in CLAIMS.items():
        rows = results.get(task, {})
        if upper not in rows or lower not in rows:
            continue
        table = PAPER_TABLES[task]
        paper = (f"{table} {metric}: {upper} {paper_value(table, upper, metric):g} vs {lower} "
                 f"{paper_value(table, lower, metric):g}")
        out[key] = finding(rows[upper], rows[lower], metric, claim=claim, paper=paper, rng=rng, n_boot=n_boot)
    return out
