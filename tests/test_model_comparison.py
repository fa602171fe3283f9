"""Tables 4/5 across models: per-item results read back from matrix cells, and the paired-bootstrap findings."""

import numpy as np
import pandas as pd
import pytest

from vlstudy.metrics.classification import classification_metrics
from vlstudy.report.model_comparison import (
    CLAIMS,
    classification_result,
    decide_claims,
    finding,
    retrieval_result,
)


def _retrieval_cell(folder, similarity: np.ndarray, name: str = "rerank"):
    """A retrieval cell's outputs: 2 texts per video, texts listed video by video."""
    folder.mkdir(parents=True, exist_ok=True)
    videos = similarity.shape[1]
    pd.DataFrame({"video": np.repeat(np.arange(videos), 2), "video_id": [f"v{i}" for i in np.repeat(np.arange(videos), 2)],
                  "text": [f"t{i}" for i in range(2 * videos)]}).to_csv(folder / "texts.csv", index=False)
    np.save(folder / f"similarity_{name}.npy", similarity.astype(np.float32))
    return folder


def test_retrieval_result_reads_the_cell_back(tmp_path):
    similarity = np.array([[3.0, 0, 0], [0, 0, 1], [0, 3, 0], [0, 2, 0], [0, 0, 3], [1, 0, 0]])  # (6 texts, 3 videos)
    result = retrieval_result(_retrieval_cell(tmp_path / "cell", similarity), "rerank")
    assert result.summary["t2v_R@1"] == pytest.approx(100 * 4 / 6)  # texts 1 and 5 miss
    assert result.per_item["item_id"].tolist() == ["v0", "v1", "v2"]
    with pytest.raises(FileNotFoundError, match=r"similarity_contrastive\.npy: no such score set"):
        retrieval_result(tmp_path / "cell", "contrastive")


def test_classification_result_reads_the_cell_back(tmp_path):
    scores = np.eye(45)[[0, 1, 2, 5]]
    pd.DataFrame({"video_id": ["a", "b", "c", "d"], "head": list(scores), "label": [0, 1, 2, 3]}).to_parquet(
        tmp_path / "predictions_val.parquet")
    assert classification_result(tmp_path).summary["top1"] == pytest.approx(75.0)
    with pytest.raises(KeyError, match="no score set 'generative' \\(has head\\)"):
        classification_result(tmp_path, "generative")


def _classification(correct: np.ndarray) -> object:
    """A result whose item i is right when correct[i]."""
    labels = np.zeros(len(correct), dtype=int)
    scores = np.where(correct[:, None], np.eye(45)[0], np.eye(45)[1])
    return classification_metrics(scores, labels, ids=[f"v{i}" for i in range(len(correct))])


def test_a_finding_holds_only_when_the_interval_excludes_zero_on_the_claimed_side():
    rng = np.random.default_rng(0)
    strong = _classification(np.arange(200) % 10 < 8)  # 80 % right
    weak = _classification(np.arange(200) % 10 < 4)  # 40 % right, the same items
    up = finding(strong, weak, "top1", claim="strong > weak", paper="-", rng=rng, n_boot=500)
    assert up["holds"] and up["ours"] == pytest.approx(40.0) and up["low"] > 0
    down = finding(weak, strong, "top1", claim="weak > strong", paper="-", rng=rng, n_boot=500)
    assert not down["holds"] and down["high"] < 0 and "reverse" in down["note"]
    tie = finding(strong, strong, "top1", claim="tie", paper="-", rng=rng, n_boot=500)
    assert not tie["holds"] and tie["low"] == tie["high"] == 0.0


def test_decide_claims_names_the_paper_numbers_and_skips_missing_cells():
    strong = _classification(np.arange(100) % 10 < 8)
    weak = _classification(np.arange(100) % 10 < 5)
    out = decide_claims({"classification": {"mplug_video": strong, "mplug2": weak}},
                        rng=np.random.default_rng(0), n_boot=500)
    assert set(out) == {"youku_t4_mplug_video_gt_mplug2_top1"}
    assert out["youku_t4_mplug_video_gt_mplug2_top1"]["paper"] == "Table 4 top1: mplug_video 80.57 vs mplug2 77.79"
    assert out["youku_t4_mplug_video_gt_mplug2_top1"]["holds"]
    assert {task for task, *_ in CLAIMS.values()} == {"retrieval", "classification", "captioning"}
