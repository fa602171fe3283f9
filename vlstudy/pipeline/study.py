"""Run the whole study (``dvc repro``) under a profile, or open its notebooks in JupyterLab.

The ``default`` profile is the work tree itself: ``params.yaml`` as committed, outputs in ``data/``,
``checkpoints/`` and ``reports/``. Any other profile ``P`` is ``params.yaml`` with ``profiles/P.yaml`` laid over
it, run as a separate DVC workspace in ``runs/P/``: the same ``dvc.yaml`` and notebooks (their parameters cells
rewritten to the profile's values), its own merged ``params.yaml``, its own outputs and lock file. Choosing a
profile therefore edits no committed file, and switching back and forth never leaves DVC believing that outputs
computed under one profile are valid for the other. The ``smoke`` profile (same stages, tiny sizes) is what CI
runs end to end.

A profile file may also hold ``_pipeline: {without: [stage, ...]}``: those stages are left out of the workspace's
``dvc.yaml`` together with the dependencies on their outputs (the real-data profile ``youku`` leaves out the
mini-Youku generator and reads the release from a folder instead). Values in a profile may name environment
variables, ``${VLSTUDY_YOUKU_ROOT}`` or ``${VLSTUDY_YOUKU_ROOT:-/data/youku-mplug}``; ``vlstudy study --set
key=value`` overrides any key after that (e.g. ``--set data.source.root=/mnt/youku``).
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import yaml

from vlstudy import io
from vlstudy.config import RECIPE_SECTION, ParamError, deep_merge, read_params
from vlstudy.pipeline.notebooks import sync_parameters
from vlstudy.pipeline.runner import validate_section
from vlstudy.pipeline.stage import PARAMS_FILE, PROFILE_FILE, find_root

__all__ = ["open_lab", "prepare_workspace", "profile_names", "profile_params", "run_study", "workspace_for"]

# The notebooks, and the package sources that dvc.yaml lists as dependencies (a copy, so that a code change
# reruns the same stages in every workspace; the code that runs is the installed package).
COPIED_DIRS = {"notebooks": "*.ipynb", "vlstudy": "**/*.py"}
# The same settings as the committed .dvc/config of the default workspace.
DVC_CONFIG = {"core.analytics": "false", "cache.type": "reflink,hardlink,copy"}


def profile_names(root: Path) -> list[str]:
    """``default`` and the stem of every ``profiles/*.yaml``."""
    return ["default", *sorted(p.stem for p in (root / "profiles").glob("*.yaml"))]


_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _expand(value, where: str):
    """`value` with ``${VAR}`` / ``${VAR:-default}`` replaced from the environment, in every nested string."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group("name"), match.group("default")
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ParamError(f"{where}: environment variable {name} is not set (set it, or write ${{{name}:-default}})")
        return default

    return _ENV.sub(substitute, value)


def _set(params: dict, dotted: str, value) -> None:
    *parents, key = dotted.split(".")
    node = params
    for name in parents:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise ParamError(f"--set {dotted}: {name} is not a section")
    node[key] = value


def profile_file(root: Path, profile: str) -> dict:
    """``profiles/<profile>.yaml`` with environment variables expanded (``{}`` for the default profile)."""
    known = profile_names(root)
    if profile not in known:
        raise ParamError(f"profile {profile!r}: not a profile (profiles: {', '.join(known)}; each is a file "
                         f"profiles/<name>.yaml)")
    if profile == "default":
        return {}
    return _expand(read_params(root, f"profiles/{profile}.yaml"), f"profiles/{profile}.yaml")


def profile_params(root: Path, profile: str, overrides: dict | None = None) -> dict:
    """``params.yaml`` merged with ``profiles/<profile>.yaml`` and `overrides` (``{"a.b.c": value}``); every
    section validated (recipe applied).

    Only names of files in ``profiles/`` are profiles (a path such as ``../params`` is refused).
    """
    overlay = profile_file(root, profile)
    overlay.pop("_pipeline", None)
    params = read_params(root)
    where = PARAMS_FILE
    if profile != "default":
        params = deep_merge(params, overlay, where=f"profiles/{profile}.yaml", strict=False)
        where = f"profiles/{profile}.yaml over {PARAMS_FILE}"
    for dotted, value in (overrides or {}).items():
        _set(params, dotted, value)
    recipe = params.get(RECIPE_SECTION, {})
    for stage, section in params.items():
        if stage != RECIPE_SECTION:
            validate_section(stage, section or {}, recipe, params_file=where)
    return params


def workspace_for(root: Path, profile: str) -> Path:
    return root if profile == "default" else root / "runs" / profile


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return
    with io.atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)


def workspace_pipeline(dvc_yaml: str, without: list[str]) -> str:
    """``dvc.yaml`` text without the stages `without` and without the dependencies on their outputs."""
    from ruamel.yaml import YAML

    if not without:
        return dvc_yaml
    yaml_rt = YAML()
    yaml_rt.width = 4096
    yaml_rt.indent(mapping=2, sequence=4, offset=2)
    doc = yaml_rt.load(dvc_yaml)
    unknown = [name for name in without if name not in doc["stages"]]
    if unknown:
        raise ParamError(f"_pipeline.without: no stage {unknown[0]!r} in dvc.yaml")
    removed = [str(next(iter(o)) if isinstance(o, dict) else o) for name in without
               for o in doc["stages"][name].get("outs", []) + doc["stages"][name].get("metrics", [])]
    for name in without:
        del doc["stages"][name]
    for stage in doc["stages"].values():
        deps = stage.get("deps", [])
        kept = [d for d in deps if not any(str(d) == r or str(d).startswith(r.rstrip("/") + "/") for r in removed)]
        deps.clear()
        deps.extend(kept)
    buffer = StringIO()
    yaml_rt.dump(doc, buffer)
    return buffer.getvalue()


def prepare_workspace(root: Path, profile: str, overrides: dict | None = None) -> Path:
    """Create or refresh the profile's workspace: pipeline files copied (``dvc.yaml`` without the profile's
    ``_pipeline.without`` stages), merged params written, parameters cells rewritten to the profile's values, DVC
    initialised. The default profile's workspace is `root` itself (no overrides there: edit params.yaml)."""
    params = profile_params(root, profile, overrides)
    work = workspace_for(root, profile)
    if work == root and overrides:
        raise ParamError("--set works with a profile's workspace; for the default study edit params.yaml")
    if work != root:
        work.mkdir(parents=True, exist_ok=True)
        without = list((profile_file(root, profile).get("_pipeline") or {}).get("without", []))
        pipeline = workspace_pipeline((root / "dvc.yaml").read_text(encoding="utf-8"), without)
        if not (work / "dvc.yaml").is_file() or (work / "dvc.yaml").read_text(encoding="utf-8") != pipeline:
            io.write_text(work / "dvc.yaml", pipeline)
        for folder, pattern in COPIED_DIRS.items():
            wanted = {p.relative_to(root / folder) for p in (root / folder).glob(pattern)}
            for p in (work / folder).glob(pattern) if (work / folder).exists() else []:
                if p.relative_to(work / folder) not in wanted:
                    p.unlink()
            for rel in wanted:
                _copy_if_changed(root / folder / rel, work / folder / rel)
        text = f"# Generated by `vlstudy study --profile {profile}`: params.yaml + profiles/{profile}.yaml. Do not edit.\n"
        text += yaml.safe_dump(params, allow_unicode=True, sort_keys=False)
        if not (work / PARAMS_FILE).exists() or (work / PARAMS_FILE).read_text(encoding="utf-8") != text:
            io.write_text(work / PARAMS_FILE, text)
        sync_parameters(work, quiet=True)
        if not (work / ".dvc").is_dir():
            subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=work, check=True)
            for key, value in DVC_CONFIG.items():
                subprocess.run(["dvc", "config", key, value], cwd=work, check=True)
    marker = work / PROFILE_FILE
    if not marker.is_file() or marker.read_text().strip() != profile:
        io.write_text(marker, profile + "\n")
    return work


def run_study(profile: str = "default", targets: list[str] | None = None, overrides: dict | None = None,
              jobs: int = 1, force: bool = False) -> int:
    """``dvc repro`` in the profile's workspace, or `jobs` stages at a time (`vlstudy.pipeline.parallel`); every
    stage with `force`. Prints where the report is. Returns the exit code."""
    root = find_root()
    try:
        work = prepare_workspace(root, profile, overrides)
    except ParamError as e:
        print(f"vlstudy: {e}", file=sys.stderr)
        return 2
    if jobs > 1:
        from vlstudy.pipeline.parallel import reproduce

        print(f"vlstudy: profile {profile}: {jobs} stages at a time in {work}", file=sys.stderr, flush=True)
        try:
            code = reproduce(work, targets or None, jobs, force=force)
        except ValueError as e:  # an unknown target
            print(f"vlstudy: {e}", file=sys.stderr)
            return 2
    else:
        print(f"vlstudy: profile {profile}: dvc repro in {work}", file=sys.stderr, flush=True)
        code = subprocess.run(["dvc", "repro", *(["--force"] if force else []), *(targets or [])], cwd=work).returncode
    index = work / "reports" / "index.html"
    if code == 0 and index.exists():
        print(f"\nThe report is at {index}\n")
    return code


def open_lab(profile: str = "default", extra: list[str] | None = None) -> int:
    """JupyterLab on the profile's notebooks (their parameters cells hold the profile's values)."""
    root = find_root()
    try:
        work = prepare_workspace(root, profile)
    except ParamError as e:
        print(f"vlstudy: {e}", file=sys.stderr)
        return 2
    command = ["jupyter", "lab", str(work / "notebooks"), *(extra or [])]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in command:
        command.append("--allow-root")  # JupyterLab refuses to start as root without it
    print(f"vlstudy: profile {profile}: JupyterLab on {work / 'notebooks'} (outputs go to {work})", file=sys.stderr)
    return subprocess.run(command).returncode
