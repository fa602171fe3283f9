"""One name in four places (DVC stage = params section = notebook stem = metrics file), one recipe, and params
that agree with the code: the structure the pipeline relies on (STYLE.md rules 2–4)."""

import ast
import functools
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
    stages = {name: s for name, s in _resolved_stages().items() if name.startswith("finetune_classification@")}
    section = PARAMS["finetune_classification"]
    expected = {f"finetune_classification@{m}-{v}" for m in section["models"] for v in section["variants"]}
    assert set(stages) == expected
    cell = stages["finetune_classification@alpro-vision"]
    params = {str(k) for dep in cell.deps if hasattr(dep, "params") for k in dep.params}
    assert {"finetune_classification.models.alpro", "finetune_classification.variants.vision"} <= params
    assert not any(k.endswith(".language") or k.endswith(".mplug_video") for k in params)


WORKSPACE_PREFIXES = ("checkpoints/", "data/")


def _workspace_paths(value) -> set[str]:
    """Every string in a params tree that names a file or folder of the workspace (a stage's output)."""
    if isinstance(value, dict):
        return set().union(*map(_workspace_paths, value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*map(_workspace_paths, value)) if value else set()
    return {value} if isinstance(value, str) and value.startswith(WORKSPACE_PREFIXES) else set()


@functools.cache
def _resolved_stages(project: Path = ROOT) -> dict:
    """``{stage run name: DVC stage}`` of `project`'s pipeline, every matrix expanded (read once per project)."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return {s.addressing: s for s in repo.index.stages}


def _profile_project(profile: str, tmp: Path) -> tuple[Path, dict]:
    """The pipeline and params a profile's workspace gets (`prepare_workspace`'s files, without its copies of the
    notebooks), in a DVC project at `tmp`; the default profile is the project itself."""
    from dvc.repo import Repo

    from vlstudy.pipeline.study import profile_file, workspace_pipeline

    params = profile_params(ROOT, profile)
    if profile == "default":
        return ROOT, params
    without = list((profile_file(ROOT, profile).get("_pipeline") or {}).get("without", []))
    (tmp / "dvc.yaml").write_text(workspace_pipeline((ROOT / "dvc.yaml").read_text(encoding="utf-8"), without),
                                  encoding="utf-8")
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    Repo.init(str(tmp), no_scm=True).close()
    return tmp, params


def _cell_params(cmd: str, params: dict):
    """The params a stage's command runs with: its section, a matrix cell's ``--set`` keys, the recipe; a matrix
    stage's dataclass narrowed to the cell (``cell()``)."""
    from vlstudy.pipeline.runner import parse_overrides

    words = cmd.split()
    stage = words[2]
    overrides = parse_overrides([words[i + 1] for i, w in enumerate(words) if w == "--set"], stage)
    cell = validate_section(stage, {**(params[stage] or {}), **overrides}, params[RECIPE_SECTION])
    return cell.cell() if hasattr(cell, "cell") else cell


@pytest.mark.parametrize("profile", profile_names(ROOT))
def test_every_checkpoint_or_data_path_a_cell_reads_is_one_of_its_dvc_deps(profile, tmp_path):
    """Hand-typed data and checkpoint deps must cover what the params point at (its own outputs aside): a cell
    reading a folder DVC does not track would reuse its output after that folder changed. Checked on each
    profile's own pipeline (a profile leaves stages out, and the deps on their outputs with them)."""
    project, params = _profile_project(profile, tmp_path)
    stages = _resolved_stages(project)
    missing = {}
    for name, stage in sorted(stages.items()):
        deps = [str(d.def_path).rstrip("/") for d in [*stage.deps, *stage.outs] if not hasattr(d, "params")]
        read = _workspace_paths(to_dict(_cell_params(stage.cmd, params)))
        uncovered = sorted(p for p in read if not any(p == d or p.startswith(d + "/") for d in deps))
        if uncovered:
            missing[name] = uncovered
    assert missing == {}
    assert len(stages) >= 20                                   # the matrices expanded: every cell was checked


def test_a_classification_cell_depends_on_its_own_models_pretraining_only():
    """Rerunning one pre-training reruns that model's Table 6 cells, not every model's."""
    stages = _resolved_stages()
    section = PARAMS["finetune_classification"]
    for model in section["models"]:
        for variant in section["variants"]:
            deps = {str(d.def_path) for d in stages[f"finetune_classification@{model}-{variant}"].deps}
            assert {d for d in deps if d.startswith("checkpoints/")} == {"checkpoints/text_lm",
                                                                         f"checkpoints/pretrain_{model}"}
    for model in PARAMS["finetune_captioning"]["models"]:
        deps = {str(d.def_path) for d in stages[f"finetune_captioning@{model}"].deps}
        assert {d for d in deps if d.startswith("checkpoints/pretrain_")} == {f"checkpoints/pretrain_{model}"}


def test_dvc_lock_records_only_stages_of_the_pipeline():
    """A renamed or removed stage's entry would linger in the committed dvc.lock (DVC keeps it) and mislead a
    reader about what ran."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    assert sorted({name.split("@")[0] for name in lock} - set(DVC)) == []
    assert set(lock) == set(_resolved_stages())
