"""The DVC spine on real stages: `dvc repro` runs them, a second `dvc repro` is a no-op, and changing one stage's
params reruns that stage and what depends on it, nothing upstream.

The project is a two-stage copy of the real pipeline (the real notebooks, params sections and dvc.yaml entries):
`mini_youku` at a few dozen videos, then `report`, which depends on mini_youku's metrics file.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vlstudy.config import deep_merge

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "pool_videos": 24,
    "classification_per_class": {"train": 1, "val": 1, "test": 1},
    "captioning": {"train": 6, "val": 3, "test": 1},
    "retrieval": {"train": 6, "val": 3, "test": 1},
    "references": 2,
    "corpus_videos": 20,
    "workers": 1,
}


def _dvc(project: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1")
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture()
def project(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    (tmp_path / "notebooks").mkdir()
    for name in ("00_mini_youku.ipynb", "99_report.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, tmp_path / "notebooks")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"recipe": params["recipe"], "mini_youku": deep_merge(params["mini_youku"], TINY, strict=False),
         "report": params["report"]}, allow_unicode=True))
    mini, report = stages["mini_youku"], stages["report"]
    mini["deps"] = ["notebooks/00_mini_youku.ipynb"]  # the package is installed, not copied, here
    report["deps"] = ["notebooks/99_report.ipynb", "reports/metrics", "reports/figures", "reports/runs"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"mini_youku": mini, "report": report}}))
    _dvc(tmp_path, "init", "--no-scm", "-q")
    return tmp_path


@pytest.mark.slow
def test_repro_noop_and_param_change_reruns_only_dependents(project):
    first = _dvc(project, "repro")
    assert "Running stage 'mini_youku'" in first and "Running stage 'report'" in first
    assert (project / "reports" / "index.html").is_file()
    assert (project / "data" / "mini_youku").is_dir()

    again = _dvc(project, "repro")
    assert "Running stage" not in again
    assert "Data and pipelines are up to date." in _dvc(project, "status")

    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["report"]["title"] = "a new title"
    (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    status = _dvc(project, "status")
    assert "report:" in status and "mini_youku:" not in status
    rerun = _dvc(project, "repro")
    assert "Running stage 'report'" in rerun and "Running stage 'mini_youku'" not in rerun
    assert "a new title" in (project / "reports" / "index.html").read_text(encoding="utf-8")
