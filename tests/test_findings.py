"""The findings table: paired verdicts, claims decided from matrix cells, claims logged by stages."""

import json

import numpy as np
import pandas as pd
import pytest

from vlstudy.metrics.classification import classification_metrics
from vlstudy.metrics.verdict import verdict_reason
from vlstudy.report.ablation import ablation_findings, ordering_check
from vlstudy.report.findings import (
    FindingsParams,
    classification_result,
    compare,
    cross_model_findings,
    findings_table,
    stage_findings,
)

N = 300


def _scores(correct: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, 45) scores whose argmax is the label exactly where `correct` is True (else the next class)."""
    scores = np.zeros((len(labels), 45))
    scores[np.arange(len(labels)), np.where(correct, labels, (labels + 1) % 45)] = 1.0
    return scores


def _result(accuracy: float, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 45, N)
    correct = rng.random(N) < accuracy
    return classification_metrics(_scores(correct, labels), labels, ids=[f"v{i}" for i in range(N)])


def test_a_clear_difference_holds_and_a_tie_does_not():
    rng = np.random.default_rng(0)
    better, worse = _result(0.8, 1), _result(0.3, 1)
    difference, low, high, holds = compare(better, worse, "top1", rng, 500)
    assert holds and low > 0 and difference == pytest.approx(better.summary["top1"] - worse.summary["top1"])
    assert not compare(better, better, "top1", rng, 500)[3]
    assert not compare(worse, better, "top1", rng, 500)[3]


def _write_cell(root, model, accuracy, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 45, N)
    correct = rng.random(N) < accuracy
    cell = root / "checkpoints" / "finetune_classification" / f"{model}-vision_language_pretrained"
    cell.mkdir(parents=True)
    scores = _scores(correct, np.asarray(labels))
    table = pd.DataFrame({"video_id": [f"v{i}" for i in range(N)], "label": labels})
    table["head"] = list(scores)
    table["generative"] = list(scores)
    table.to_parquet(cell / "predictions_val.parquet", index=False)


def test_table4_claims_are_decided_from_the_cells_and_missing_ones_are_not_run(tmp_path):
    _write_cell(tmp_path, "mplug_video", 0.7, 3)
    _write_cell(tmp_path, "alpro", 0.4, 3)
    found = {f.id: f for f in cross_model_findings(tmp_path, FindingsParams(), np.random.default_rng(0))}
    assert found["youku_table4_top1_mplug_video_vs_alpro"].holds
    assert found["youku_table4_top1_mplug_video_vs_alpro"].paper == "80.57 vs 78.15 (top1)"
    missing = found["youku_table4_top1_mplug_video_vs_mplug2"]
    assert not missing.holds and missing.ours is None and missing.note == "not run: no results for mplug2"
    assert found["youku_table5_t2v_r1_mplug2_vs_alpro"].note.startswith("not run")
    top1 = {m: classification_result(tmp_path, m, "generative").summary["top1"] for m in ("mplug_video", "alpro")}
    assert found["youku_table4_top1_mplug_video_vs_alpro"].note == (
        f"mplug_video {top1['mplug_video']:.2f} vs alpro {top1['alpro']:.2f} top1: holds: the paired 95 % interval "
        "excludes 0")


def test_a_failing_comparison_says_which_way_it_went_and_why():
    assert verdict_reason(2.0, 0.5, 3.5) == "holds: the paired 95 % interval excludes 0"
    assert verdict_reason(1.0, -0.5, 2.5) == "the claimed way, but the paired 95 % interval includes 0"
    assert verdict_reason(-1.0, -2.5, 0.5) == "the other way round, but the paired 95 % interval includes 0"
    assert verdict_reason(0.0, -1.0, 1.0) == "no difference: the paired 95 % interval includes 0"
    assert verdict_reason(-2.0, -3.5, -0.5) == "the other way round, with a paired 95 % interval that excludes 0"
    # a rank, where lower is better: a negative difference is the claimed way
    assert verdict_reason(-2.0, -3.5, -0.5, lower_is_better=True) == "holds: the paired 95 % interval excludes 0"
    assert verdict_reason(2.0, 0.5, 3.5, lower_is_better=True).startswith("the other way round")


def test_ablation_findings_name_the_failing_step():
    rng = np.random.default_rng(0)
    results = {"language": _result(0.2, 5), "vision": _result(0.5, 5), "vision_language": _result(0.7, 5),
               "vision_language_pretrained": _result(0.7, 5)}
    findings = ablation_findings("alpro", ordering_check(results, rng, 300))
    ordering, gain = findings["youku_table6_ordering_alpro"], findings["youku_pretraining_gain_alpro"]
    assert not ordering["holds"]
    assert ordering["note"].startswith("fails at 视觉+语言+预训练 (V+L+PT) > 视觉+语言 (V+L) (+0.00 [")
    assert ordering["note"].endswith(": no difference: the paired 95 % interval includes 0)")
    assert not gain["holds"] and gain["ours"] == pytest.approx(0.0)
    assert gain["note"] == ("视觉+语言+预训练 (V+L+PT) − 视觉+语言 (V+L): "
                            "no difference: the paired 95 % interval includes 0")


def test_stage_findings_are_read_from_metrics_files_and_tabled(tmp_path):
    path = tmp_path / "modality_summary.json"
    path.write_text(json.dumps({"findings": {"x_claim": {"claim": "a > b", "paper": "2 vs 1", "ours": 1.5,
                                                         "low": 0.5, "high": 2.5, "holds": True}}}))
    (found,) = stage_findings([path])
    table = findings_table([found])
    assert table.loc[0, "verdict"] == "HOLDS" and table.loc[0, "ours (95% CI)"] == "1.50 [0.50, 2.50]"
