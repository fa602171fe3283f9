"""The teacher's knob: a variant removed from ``finetune_classification.variants`` leaves Table 6 (the modality
summary) and DVC's matrix, even when the removed cell's old predictions are still on disk."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.pipeline.runner import run_stage
from vlstudy.report.ablation import cell_dir, matrix_cells

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("vision", "language", "vision_language", "vision_language_pretrained")


def _project(tmp_path: Path, variants: list[str]) -> Path:
    """The modality_summary stage alone, its params.yaml with only `variants`, and predictions of EVERY variant on
    disk (as a previous run with the full matrix leaves them)."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "08_modality_summary.ipynb", tmp_path / "notebooks")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    section = params["finetune_classification"]
    section["variants"] = {name: section["variants"][name] for name in variants}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {k: stages[k] for k in (
        "finetune_classification", "modality_summary")}}), encoding="utf-8")
    rng = np.random.default_rng(0)
    labels = np.arange(60) % len(CLASS_NAMES)
    for model in section["models"]:
        for i, variant in enumerate(VARIANTS):
            scores = rng.normal(size=(60, len(CLASS_NAMES)))
            scores[np.arange(60), labels] += i  # some signal, more for later variants
            folder = cell_dir(tmp_path, model, variant)
            folder.mkdir(parents=True)
            pd.DataFrame({"video_id": [f"v{j}" for j in range(60)], "label": labels,
                          "generative": list(scores), "head": list(scores)}).to_parquet(
                folder / "predictions_val.parquet")
    return tmp_path


def test_removed_variant_leaves_the_matrix_and_dvc(tmp_path):
    from dvc.repo import Repo

    kept = [v for v in VARIANTS if v != "language"]
    project = _project(tmp_path, kept)
    models, variants = matrix_cells(project)
    assert variants == kept
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    with Repo(str(project)) as repo:
        cells = {s.name for s in repo.index.stages if s.name.startswith("finetune_classification@")}
    assert cells == {f"finetune_classification@{m}-{v}" for m in models for v in kept}


@pytest.mark.slow
def test_removed_variant_leaves_the_summary(tmp_path):
    kept = [v for v in VARIANTS if v != "language"]
    project = _project(tmp_path, kept)
    assert cell_dir(project, "alpro", "language").is_dir()  # the stale cell is on disk
    assert run_stage("modality_summary", root=project) == 0
    metrics = json.loads((project / "reports" / "metrics" / "modality_summary.json").read_text(encoding="utf-8"))
    models, _ = matrix_cells(project)
    assert set(metrics["top1"]) == set(models)
    for model in models:
        assert list(metrics["top1"][model]) == kept
    tables = list((project / "reports" / "figures" / "modality_summary").glob("table_6*.csv"))
    assert tables and not any("language" in set(pd.read_csv(t).get("variant", [])) for t in tables)
