"""The findings table: every claim of the three papers that the kit tests, the paper's figures, ours with a 95 %
interval, HOLDS / FAILS, and a sentence on why when it fails.

Two sources. Stages that decide a claim on their own (the modality ablation, VideoMind, Panda-70M, the human
evaluation) log it in their metrics file under ``findings`` (`Finding` fields). The claims that compare models
trained in different matrix cells (Youku-mPLUG Tables 4 and 5) are decided here, from the cells' per-item
predictions: a paired bootstrap over the same val videos, the claim HOLDS when the 95 % interval of the
difference excludes zero on the claimed side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy.metrics.base import MetricResult
from vlstudy.metrics.bootstrap import check_n_boot, paired_differences
from vlstudy.metrics.captioning import caption_metrics
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.metrics.verdict import verdict_reason
from vlstudy.report.paper import paper_value
from vlstudy.tasks.classification import load_predictions

__all__ = ["FindingsParams", "Finding", "compare", "classification_result", "captioning_result", "retrieval_result",
           "cross_model_findings", "stage_findings", "findings_table", "FINDING_STAGES"]

# The stages that decide claims on their own and log them under ``findings`` in their metrics files.
FINDING_STAGES = ("modality_summary", "videomind_retrieval", "panda_splitting", "panda_captions", "panda_student",
                  "human_eval")


@dataclass
class FindingsParams:
    """``findings``: the claims decided across matrix cells, and how.

    Attributes:
        classification_scores: per model, the class scores of its Table 4 row (mPLUG-video: the 45 class names
            ranked by the frozen LM, the paper's protocol).
        retrieval_scores: per model of Table 5, the ``<method>/<score set>`` that is its retrieval row (mPLUG-video:
            its matching head on every pair, the paper's protocol; ALPRO and mPLUG-2: contrastive top-k re-ranked by
            their matching head, their official inference).
        n_boot: bootstrap resamples of the paired differences.
        seed: the bootstrap.
    """

    classification_scores: dict[str, str] = field(default_factory=lambda: {
        "mplug_video": "generative", "alpro": "head", "mplug2": "head"})
    retrieval_scores: dict[str, str] = field(default_factory=lambda: {
        "mplug_video": "mplug_matching/head", "alpro": "alpro/rerank", "mplug2": "mplug2/rerank"})
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_n_boot(self.n_boot)


@dataclass
class Finding:
    """One checked claim.

    Attributes:
        id: a short key, ``<paper>_<claim>``.
        claim: the claim in words.
        paper: the paper's figures behind it.
        ours: the number that decides it here (e.g. a difference in points).
        low, high: its 95 % interval.
        holds: the verdict.
        note: why, in particular when it fails.
    """

    id: str
    claim: str
    paper: str
    ours: float | None
    low: float | None
    high: float | None
    holds: bool
    note: str = ""


def compare(better: MetricResult, worse: MetricResult, metric: str, rng: np.random.Generator,
            n_boot: int, lower_is_better: bool = False) -> tuple[float, float, float, bool]:
    """(difference, low, high, holds) of ``better − worse`` on `metric`, paired over the same items; holds when the
    interval excludes zero on the claimed side (below zero for a rank, where lower is better)."""
    row = paired_differences(better, worse, rng=rng, n_boot=n_boot).loc[metric]
    holds = row["high"] < 0 if lower_is_better else row["low"] > 0
    return float(row["difference"]), float(row["low"]), float(row["high"]), bool(holds)


def classification_result(root: Path, model: str, score_set: str) -> MetricResult:
    """The Table 4 classification row of `model`: its pre-trained vision + language cell of the matrix."""
    cell = Path(root) / "checkpoints" / "finetune_classification" / f"{model}-vision_language_pretrained"
    return load_predictions(cell)[score_set]


def captioning_result(root: Path, model: str) -> MetricResult:
    """The captioning metrics of `model`'s val predictions (per item, for the paired bootstrap)."""
    table = pd.read_csv(Path(root) / "checkpoints" / "finetune_captioning" / model / "predictions_val.csv")
    references = {v: json.loads(r) for v, r in zip(table["video_id"], table["references"])}
    return caption_metrics(dict(zip(table["video_id"], table["prediction"].fillna(""))), references)


def retrieval_result(root: Path, method_scores: str) -> MetricResult:
    """Retrieval metrics of one ``<method>/<score set>`` from its saved similarity matrix (texts x videos)."""
    method, scores = method_scores.split("/")
    folder = Path(root) / "checkpoints" / "finetune_retrieval" / method
    texts = pd.read_csv(folder / "texts.csv")
    similarity = np.load(folder / f"similarity_{scores}.npy")
    return retrieval_metrics(similarity, texts["video"].to_numpy())


def _paper(table: str, a: str, b: str, metric: str) -> str:
    return f"{paper_value(table, a, metric)} vs {paper_value(table, b, metric)} ({metric})"


def _decided(fid: str, claim: str, paper: str, results: dict, a: str, b: str, metric: str,
             rng: np.random.Generator, n_boot: int) -> Finding:
    if a not in results or b not in results:
        missing = [m for m in (a, b) if m not in results]
        return Finding(fid, claim, paper, None, None, None, False, f"not run: no results for {', '.join(missing)}")
    difference, low, high, holds = compare(results[a], results[b], metric, rng, n_boot)
    note = (f"{a} {results[a].summary[metric]:.2f} vs {b} {results[b].summary[metric]:.2f} {metric}: "
            f"{verdict_reason(difference, low, high)}")
    return Finding(fid, claim, paper, difference, low, high, holds, note)


def cross_model_findings(root: Path, params: FindingsParams, rng: np.random.Generator) -> list[Finding]:
    """Youku-mPLUG's Table 4 and 5 claims, decided from the matrix cells present under `root`.

    Table 4 (classification): "mPLUG-video achieves the highest accuracy" (80.57 vs ALPRO 78.15, mPLUG-2 77.79);
    Table 4 (captioning): "mPLUG-video obtains higher scores than mPLUG-2 on BLEU-4" (47.1 vs 43.7); Table 5:
    "mPLUG-2 outperforms ALPRO … mPLUG-video performs poorly on retrieval" (t2v R@1 38.45 > 26.63 > 7.62). A cell
    that has not run makes its claim "not run" (FAILS with that note), never an error.
    """
    root = Path(root)
    cls = {m: classification_result(root, m, s) for m, s in params.classification_scores.items()
           if (root / "checkpoints" / "finetune_classification" / f"{m}-vision_language_pretrained").is_dir()}
    cap = {m: captioning_result(root, m) for m in ("mplug_video", "mplug2")
           if (root / "checkpoints" / "finetune_captioning" / m / "predictions_val.csv").is_file()}
    ret = {m: retrieval_result(root, s) for m, s in params.retrieval_scores.items()
           if (root / "checkpoints" / "finetune_retrieval" / s.split("/")[0] / "texts.csv").is_file()}
    n = params.n_boot
    found = [_decided(f"youku_table4_top1_mplug_video_vs_{other}",
                      f"mPLUG-video beats {other} on classification top-1 (Table 4)",
                      _paper("Table 4", "mplug_video", other, "top1"), cls, "mplug_video", other, "top1", rng, n)
             for other in ("alpro", "mplug2")]
    found.append(_decided("youku_table4_bleu4_mplug_video_vs_mplug2", "mPLUG-video beats mPLUG-2 on captioning "
                          "BLEU-4 (Table 4)", _paper("Table 4", "mplug_video", "mplug2", "BLEU-4"), cap,
                          "mplug_video", "mplug2", "BLEU-4", rng, n))
    found += [_decided(f"youku_table5_t2v_r1_{a}_vs_{b}", f"{a} beats {b} on text-to-video retrieval R@1 (Table 5)",
                       _paper("Table 5", a, b, "t2v_R@1"), ret, a, b, "t2v_R@1", rng, n)
              for a, b in (("mplug2", "alpro"), ("alpro", "mplug_video"))]
    return found


def stage_findings(metrics_files: list[Path]) -> list[Finding]:
    """The findings stages logged in their metrics files (``findings``: id → fields)."""
    found = []
    for path in metrics_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for key, entry in (data.get("findings") or {}).items():
            found.append(Finding(id=key, **{k: entry.get(k) for k in ("claim", "paper", "ours", "low", "high")},
                                 holds=bool(entry.get("holds")), note=entry.get("note", "")))
    return found


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    """One row per finding, for the report: claim, the paper's figures, ours with its interval, the verdict."""
    def ours(f: Finding) -> str:
        if f.ours is None:
            return "—"
        interval = f" [{f.low:.2f}, {f.high:.2f}]" if f.low is not None and f.high is not None else ""
        return f"{f.ours:.2f}{interval}"

    return pd.DataFrame([{"finding": f.id, "claim": f.claim, "paper": f.paper, "ours (95% CI)": ours(f),
                          "verdict": "HOLDS" if f.holds else "FAILS", "note": f.note} for f in findings])
