"""The stage runner: validated params before any kernel starts, atomic outputs, failed stages leave nothing."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from vlstudy.pipeline.runner import run_stage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path):
    """A one-stage copy of the project: the real report notebook, its params and dvc.yaml entry."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "99_report.ipynb", tmp_path / "notebooks")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"recipe": params["recipe"], "report": params["report"]},
                                                         allow_unicode=True))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"report": stages["report"]}}))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def _set_param(project: Path, key: str, value) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["report"] = {key: value}
    path.write_text(yaml.safe_dump(params, allow_unicode=True))


def test_wrong_type_fails_before_running_and_names_key_and_file(project, capsys):
    _set_param(project, "title", 123)
    assert run_stage("report", root=project) == 2
    err = capsys.readouterr().err
    assert "params.yaml: report.title: expected str, got 123 (int)" in err
    assert not (project / "reports").exists()


def test_unknown_key_fails_and_names_key_and_file(project, capsys):
    _set_param(project, "titel", "x")
    assert run_stage("report", root=project) == 2
    assert "params.yaml: report.titel: unknown key for ReportParams (known keys: title)" in capsys.readouterr().err


@pytest.mark.slow
def test_success_writes_outputs_and_failure_keeps_them(project, capsys):
    assert run_stage("report", root=project) == 0
    outputs = [project / "reports" / p for p in
               ("index.html", "executed/report.ipynb", "html/report.html", "report.run.json")]
    assert all(p.is_file() for p in outputs)
    html = (project / "reports" / "html" / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*src=\"https?://", html), "the rendered notebook must open offline"
    before = {p: p.read_bytes() for p in outputs}

    # Break the notebook after it has written part of its outputs: nothing may change in reports/.
    nb_path = project / "notebooks" / "99_report.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.insert(len(nb.cells) - 1, nbformat.v4.new_code_cell("raise RuntimeError('boom in a late cell')"))
    nbformat.write(nb, nb_path)
    assert run_stage("report", root=project) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom in a late cell" in err
    assert {p: p.read_bytes() for p in outputs} == before
    assert (project / "reports" / "failed" / "report.ipynb").is_file()
    assert not (project / ".vlstudy" / "staging" / "report").exists()
