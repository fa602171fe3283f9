"""One name in four places: DVC stage = params section = notebook stem = metrics file (STYLE.md rule 2)."""

import json
from pathlib import Path

import pytest
import yaml

from vlstudy.notebooks import parameters_cell, stage_notebooks
from vlstudy.pipeline import validate_section
from vlstudy.stages import STAGE_PARAMS
from vlstudy.study import profile_params

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
NOTEBOOKS = stage_notebooks(ROOT)


def test_every_stage_has_notebook_params_section_and_dataclass():
    assert set(DVC) == set(NOTEBOOKS) == set(PARAMS) == set(STAGE_PARAMS)


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_declaration(stage):
    spec = DVC[stage]
    matrix = spec.get("matrix")
    suffix = "".join(f" --set {k}=${{item.{k}}}" for k in matrix) if matrix else ""
    assert spec["cmd"] == f"vlstudy run {stage}{suffix}"
    sid = stage + ("@" + "-".join(f"${{item.{k}}}" for k in matrix) if matrix else "")
    assert str(NOTEBOOKS[stage].relative_to(ROOT)) in spec["deps"]
    assert stage in spec["params"]
    metrics = [next(iter(m)) if isinstance(m, dict) else m for m in spec.get("metrics", [])]
    assert f"reports/metrics/{sid}.json" in metrics
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", [])]
    assert f"reports/executed/{sid}.ipynb" in outs and f"reports/html/{sid}.html" in outs


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_parameters_cell_matches_params_section(stage):
    assert parameters_cell(NOTEBOOKS[stage]) == PARAMS[stage]


@pytest.mark.parametrize("stage", sorted(PARAMS))
def test_params_section_validates(stage):
    validate_section(stage, PARAMS[stage])


@pytest.mark.parametrize("profile", ["default"] + sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_profiles_validate(profile):
    merged = profile_params(ROOT, profile)
    assert set(merged) == set(PARAMS)


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_notebooks_are_committed_without_outputs(stage):
    nb = json.loads(NOTEBOOKS[stage].read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "vlstudy"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


def _metrics_files(stage: str) -> list[str]:
    """The metrics files a stage writes, its matrix expanded with the values params.yaml gives it."""
    matrix = DVC[stage].get("matrix")
    if not matrix:
        return [f"reports/metrics/{stage}.json"]
    ((key, ref),) = matrix.items()  # the one matrix of this pipeline: modality_ablation over its variants
    section, name = ref.strip("${}").split(".")
    return [f"reports/metrics/{stage}@{value}.json" for value in PARAMS[section][name]]


def test_report_depends_on_every_stages_metrics():
    """DVC reruns `report` when any stage's numbers change only if it lists every metrics file as a dependency."""
    expected = [f for stage in DVC if stage != "report" for f in _metrics_files(stage)]
    metrics_deps = [d for d in DVC["report"]["deps"] if d.startswith("reports/metrics/")]
    assert sorted(metrics_deps) == sorted(expected)
    assert "reports/figures" in DVC["report"]["deps"]


def test_modality_summary_depends_on_every_ablation_variant():
    """The summary reads each variant's predictions from checkpoints/modality_ablation/<variant>/."""
    outs = [o for o in DVC["modality_ablation"]["outs"] if o.startswith("checkpoints/")]
    assert outs == ["checkpoints/modality_ablation/${item.variant}"]
    assert "checkpoints/modality_ablation" in DVC["modality_summary"]["deps"]


def _key_paths(tree: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in tree.items():
        paths.add(prefix + key)
        if isinstance(value, dict) and value:
            paths |= _key_paths(value, prefix + key + ".")
    return paths


@pytest.mark.parametrize("stage", sorted(PARAMS))
def test_params_section_lists_every_field(stage):
    """params.yaml is the complete record of a run: no field left to a default hidden in the code."""
    from vlstudy.config import to_dict

    defaults = to_dict(STAGE_PARAMS[stage]())
    assert _key_paths(PARAMS[stage] or {}) == _key_paths(defaults)
