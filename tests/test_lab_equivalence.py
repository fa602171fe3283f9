"""A student's path: the stage notebooks opened in JupyterLab (the kernel starts in the notebook's folder, nothing
injects parameters) give the same results as `dvc repro`.

A temporary copy of the project runs the first stages of the smoke profile through the pipeline; then each of
those notebooks in the profile's workspace (what ``make lab PROFILE=smoke`` opens) is executed with its own folder
as the working directory, as JupyterLab runs it, and its metrics file must equal the pipeline's, timings aside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["mini_youku", "data", "dataset_statistics", "pretrain_text_lm"]
VOLATILE = ("seconds", "samples_per_s", "achieved_gflops", "timings")  # wall-clock figures differ between runs


def _stable(value):
    """`value` without the wall-clock entries (any key containing a `VOLATILE` word)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@pytest.mark.slow
def test_notebooks_run_by_hand_in_their_folder_match_the_pipeline(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    for folder in ("notebooks", "profiles", "vlstudy"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "vlstudy.pipeline.cli", "study", "--profile", "smoke", *STAGES],
                          cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = project / "runs" / "smoke"
    metrics = {stage: json.loads((work / "reports" / "metrics" / f"{stage}.json").read_text()) for stage in STAGES}

    for stage in STAGES:
        notebook = next((work / "notebooks").glob(f"[0-9][0-9]_{stage}.ipynb"))
        cwd = os.getcwd()
        try:  # papermill's cwd: the kernel starts in the notebook's folder, as in JupyterLab
            papermill.execute_notebook(str(notebook), str(tmp_path / f"{stage}.out.ipynb"), kernel_name="vlstudy",
                                       cwd=str(notebook.parent), progress_bar=False)
        finally:
            os.chdir(cwd)
        by_hand = json.loads((work / "reports" / "metrics" / f"{stage}.json").read_text())
        assert _stable(by_hand) == _stable(metrics[stage]), stage
