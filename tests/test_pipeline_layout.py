"""One name in four places (DVC stage = params section = notebook stem = metrics file), one recipe, and params
that agree with the code: the structure the pipeline relies on (STYLE.md rules 2–4)."""

import ast
import json
from pathlib import Path

import pytest
import yaml

from vlstudy.config import RECIPE_SECTION, to_dict
from vlstudy.pipeline.notebooks import parameters_cell, stage_notebooks
from vlstudy.pipeline.registry import STAGES, params_class
from vlstudy.pipeline.runner import validate_section
from vlstudy.pipeline.stage import GATHERERS
from vlstudy.pipeline.study import profile_names, profile_params
from vlstudy.train.config import RECIPE_TRAIN, TrainConfig, recipe_train

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
RECIPE = PARAMS[RECIPE_SECTION]
NOTEBOOKS = stage_notebooks(ROOT)
SECTIONS = sorted(s for s in PARAMS if s != RECIPE_SECTION)


def test_every_stage_has_notebook_params_section_and_dataclass():
    assert set(DVC) == set(NOTEBOOKS) == set(SECTIONS) == set(STAGES)


def _sid(stage: str) -> str:
    matrix = DVC[stage].get("matrix")
    return stage + ("@" + "-".join(f"${{item.{k}}}" for k in matrix) if matrix else "")


def _paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


@pytest.mark.parametrize("stage", sorted(DVC))
def test_stage_declaration(stage):
    spec, sid = DVC[stage], _sid(stage)
    matrix = spec.get("matrix")
    assert spec["cmd"] == f"vlstudy run {stage}" + "".join(f" --set {k}=${{item.{k}}}" for k in matrix or [])
    assert str(NOTEBOOKS[stage].relative_to(ROOT)) in spec["deps"]
    outs = _paths(spec.get("outs"))
    assert all(isinstance(o, dict) and next(iter(o.values())).get("persist") for o in spec["outs"]), \
        "every output persists: a failed or killed stage leaves the previous outputs, and no run-cache restore"
    if stage in GATHERERS:  # it reads every stage's records, so its own go beside those folders
        assert {"reports/metrics", "reports/figures", "reports/runs", "reports/executed"} <= set(spec["deps"])
        assert {"reports/report.run.json", "reports/report.ipynb", "reports/html"} <= set(outs)
        return
    assert f"reports/executed/{sid}.ipynb" in outs
    assert f"reports/runs/{sid}.json" in outs and f"reports/figures/{sid}" in outs
    assert _paths(spec.get("metrics")) == [f"reports/metrics/{sid}.json"]


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_parameters_cell_is_the_params_section(stage):
    assert parameters_cell(NOTEBOOKS[stage]) == PARAMS[stage]


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_notebook_builds_the_registered_params_class(stage):
    """The notebook's ``Stage.from_parameters(name, globals(), Class)`` names its own stage and the registry's class."""
    source = "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                       for c in json.loads(NOTEBOOKS[stage].read_text(encoding="utf-8"))["cells"]
                       if c["cell_type"] == "code")
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "from_parameters"]
    assert len(calls) == 1
    name, _, cls = calls[0].args
    assert name.value == stage
    assert ast.unparse(cls).split(".")[-1] == params_class(stage).__name__


@pytest.mark.parametrize("stage", SECTIONS)
def test_dataclass_defaults_equal_params_yaml(stage):
    """params.yaml (recipe applied) and the dataclass defaults are one source: the same values."""
    assert to_dict(validate_section(stage, PARAMS[stage] or {}, RECIPE)) == to_dict(params_class(stage)())


def test_findings_stage_depends_on_every_stage_that_decides_findings():
    """The findings table reads the ``findings`` of these stages' metrics files: DVC must rerun it when they change."""
    from vlstudy.report.findings import FINDING_STAGES

    deps = set(_paths(DVC["findings"]["deps"]))
    assert {f"reports/metrics/{stage}.json" for stage in FINDING_STAGES} <= deps


def test_recipe_train_in_code_equals_params_yaml():
    """The stages' train defaults start from `RECIPE_TRAIN`; it is params.yaml's ``recipe.train`` (less precision)."""
    assert {k: v for k, v in RECIPE["train"].items() if k != "precision"} == RECIPE_TRAIN
    assert recipe_train(epochs=3) == TrainConfig(**{**RECIPE["train"], "epochs": 3})


@pytest.mark.parametrize("profile", profile_names(ROOT))
def test_profiles_validate(profile):
    assert set(profile_params(ROOT, profile)) == set(PARAMS)


def test_a_profile_is_a_file_in_profiles():
    from vlstudy.config import ParamError

    with pytest.raises(ParamError, match=r"profile '\.\./params': not a profile \(profiles: default, "):
        profile_params(ROOT, "../params")


@pytest.mark.parametrize("stage", sorted(NOTEBOOKS))
def test_notebooks_are_committed_without_outputs(stage):
    nb = json.loads(NOTEBOOKS[stage].read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "vlstudy"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


def test_classification_matrix_expands_models_times_variants():
    """Table 6 is one DVC matrix: every (model, variant) of params.yaml is a stage, with its own params deps."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = {s.addressing: s for s in repo.index.stages if s.addressing.startswith("finetune_classification@")}
    section = PARAMS["finetune_classification"]
    expected = {f"finetune_classification@{m}-{v}" for m in section["models"] for v in section["variants"]}
    assert set(stages) == expected
    cell = stages["finetune_classification@alpro-vision"]
    params = {str(k) for dep in cell.deps if hasattr(dep, "params") for k in dep.params}
    assert {"finetune_classification.models.alpro", "finetune_classification.variants.vision"} <= params
    assert not any(k.endswith(".language") or k.endswith(".mplug_video") for k in params)
