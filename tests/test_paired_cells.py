"""benchmarks/paired_cells.py: two cells' val predictions compared item by item (top-1 of each, a - b with its
paired interval), each read with the findings stage's score set for the model its folder names."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "paired_cells.py"
_spec = importlib.util.spec_from_file_location("paired_cells", SCRIPT)
bench = sys.modules["paired_cells"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _cell(folder: Path, labels: np.ndarray, predicted: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    scores = np.eye(45)[predicted]  # one-hot: the predicted class scores highest
    pd.DataFrame({"video_id": [f"v{i}.mp4" for i in range(len(labels))], "label": labels,
                  "head": list(scores)}).to_parquet(folder / "predictions_val.parquet")
    return folder


def test_paired_difference_of_two_cells(tmp_path, monkeypatch, capsys):
    labels = np.arange(200) % 45
    wrong = (labels + 1) % 45
    a = _cell(tmp_path / "alpro-vision_language_pretrained", labels, labels)  # all right
    b = _cell(tmp_path / "alpro-vision_language", labels, np.where(np.arange(200) % 2 == 0, labels, wrong))  # half
    monkeypatch.setattr(sys, "argv", ["paired_cells.py", str(a), str(b), "--n-boot", "200"])
    bench.main()
    out = capsys.readouterr().out
    assert "top-1 100.00" in out and "top-1 50.00" in out
    assert "a - b: +50.00 [" in out and "the interval excludes 0" in out


def test_a_folder_that_names_no_model_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="not a classification cell folder"):
        bench.score_set(tmp_path / "clip-vision")
    assert bench.score_set(tmp_path / "mplug_video-language") == "generative"
