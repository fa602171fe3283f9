"""The pipeline spine: run one notebook as one DVC stage, atomically.

A stage is a notebook ``notebooks/NN_<stage>.ipynb`` driven by the ``<stage>`` section of ``params.yaml``
(one name in four places: DVC stage = params section = notebook stem = metrics file). ``vlstudy run <stage>``
is the whole stage command in ``dvc.yaml``. It

1. reads the section and checks it against the stage's params dataclass (``vlstudy.stages.STAGE_PARAMS``), so
   a wrong type or an unknown key fails before any kernel starts, with a message naming the file and key;
2. executes the notebook with Papermill, passing exactly that section as parameters;
3. renders the executed notebook to offline HTML;
4. moves every output into place only after all of this succeeded.

Inside the notebook a :class:`Stage` gives the validated params and the paths to write. While the runner is in
charge, ``Stage.output`` points into a private staging folder (``.vlstudy/staging/<stage>``); the runner moves
the staged paths into the work tree at the end with ``os.replace``. A stage that fails half-way therefore leaves
nothing in place that DVC could mistake for a valid output; its executed notebook goes to ``reports/failed/``
(not a DVC output) for debugging. Opened in Jupyter by hand, ``Stage`` writes straight into the work tree.

Per stage id ``S`` the standard outputs are ``reports/executed/S.ipynb``, ``reports/html/S.html``,
``reports/metrics/S.json`` (declared as DVC metrics) and ``reports/figures/S/`` (PNG figures with the CSV plot
table each was drawn from; declared as DVC plots).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from vlstudy.config import ParamError, from_dict, to_dict
from vlstudy.plotting import use_cjk_font

STAGING_ENV = "VLSTUDY_STAGING"
STAGE_ID_ENV = "VLSTUDY_STAGE_ID"
KERNEL_NAME = "vlstudy"
WORK_DIR = Path(".vlstudy") / "work"
PARAMS_FILE = "params.yaml"

__all__ = ["Stage", "find_root", "load_section", "validate_section", "run_stage", "notebook_path", "main"]


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder at or above `start` (default: cwd) that holds ``dvc.yaml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no dvc.yaml found in {here} or any folder above it")


def notebook_path(root: Path, stage: str) -> Path:
    """``notebooks/NN_<stage>.ipynb``: exactly one notebook must carry the stage name as its stem."""
    hits = sorted((root / "notebooks").glob(f"[0-9][0-9]_{stage}.ipynb"))
    if len(hits) != 1:
        raise FileNotFoundError(
            f"stage {stage!r}: expected one notebook notebooks/NN_{stage}.ipynb, found {[h.name for h in hits]}"
        )
    return hits[0]


def load_section(root: Path, stage: str, params_file: str = PARAMS_FILE) -> dict:
    """The ``stage`` section of ``params.yaml`` as a dict (an error names the file when it is missing)."""
    path = root / params_file
    with open(path, encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if stage not in params:
        raise ParamError(f"{params_file}: no section {stage!r} (sections: {', '.join(params)})")
    section = params[stage]
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ParamError(f"{params_file}: {stage}: expected a mapping, got {section!r}")
    return section


def parse_overrides(pairs: list[str], where: str) -> dict:
    """``key=value`` strings (values parsed as YAML scalars) from a DVC matrix item."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ParamError(f"{where}: override {pair!r} is not key=value")
        out[key] = yaml.safe_load(raw)
    return out


def validate_section(stage: str, section: dict, params_file: str = PARAMS_FILE):
    """The stage's params dataclass filled from `section`; raises ParamError naming file and key."""
    from vlstudy.stages import STAGE_PARAMS

    if stage not in STAGE_PARAMS:
        raise ParamError(f"{params_file}: stage {stage!r} has no params dataclass in vlstudy.stages.STAGE_PARAMS")
    return from_dict(STAGE_PARAMS[stage], section, where=f"{params_file}: {stage}")


def stage_id(stage: str, overrides: dict) -> str:
    """DVC's name for a matrix item, ``stage@value[-value...]``; the plain stage name otherwise."""
    if not overrides:
        return stage
    return stage + "@" + "-".join(str(v) for v in overrides.values())


def _json_default(obj: Any):
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _clean_floats(obj: Any) -> Any:
    """NaN/inf are not JSON: they become None so that `dvc metrics` can read the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_clean_floats(json.loads(json.dumps(data, default=_json_default))), f, ensure_ascii=False, indent=2)
        f.write("\n")
    os.replace(tmp, path)


class Stage:
    """What a stage notebook needs from the pipeline: validated params and where to read and write.

    Args:
        name: the stage name (= params section = notebook stem).
        params: the notebook's parameters as a dict (the keys of its ``parameters`` cell).

    Example (the second cell of every stage notebook)::

        stage = Stage.from_parameters("dataset_statistics", globals())
        P = stage.params
    """

    def __init__(self, name: str, params: dict):
        self.name = name
        self.root = find_root()
        self.id = os.environ.get(STAGE_ID_ENV, name)
        staging = os.environ.get(STAGING_ENV)
        self.staging = Path(staging) if staging else None
        self.params = validate_section(name, params)
        use_cjk_font()  # every figure of every stage gets readable Chinese labels
        self.metrics: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._t0 = time.time()

    @classmethod
    def from_parameters(cls, name: str, namespace: dict) -> Stage:
        """The stage with its params read from a notebook's namespace: the variables its parameters cell set."""
        from vlstudy.stages import STAGE_PARAMS

        keys = [f.name for f in dataclasses.fields(STAGE_PARAMS[name])]
        return cls(name, {k: namespace[k] for k in keys if k in namespace})

    # -- paths -----------------------------------------------------------------------------------------------
    def input(self, rel: str | Path) -> Path:
        """A path to read, relative to the project root (inputs are always in place)."""
        path = self.root / rel
        if not path.exists():
            raise FileNotFoundError(f"stage {self.name}: input {rel} does not exist; run its stage first (dvc repro)")
        return path

    def output(self, rel: str | Path) -> Path:
        """A folder or file to write, relative to the project root; staged while the runner is in charge.

        The path is emptied first (a stage rewrites its outputs whole). Parents are created.
        """
        rel = Path(rel)
        if rel.is_absolute():
            raise ValueError(f"stage {self.name}: output {rel} must be relative to the project root")
        base = self.staging if self.staging is not None else self.root
        path = base / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if str(rel) not in self._outputs:
            self._outputs.append(str(rel))
        self._write_manifest()
        return path

    def _write_manifest(self) -> None:
        if self.staging is not None:
            write_json_atomic(self.staging / ".outputs.json", self._outputs)

    def scratch(self, *inputs: str | Path) -> Path:
        """A work folder that outlives a failed or killed run of this stage, so that training resumes.

        It is keyed by the stage's params and by the size and modification time of every file under `inputs`
        (the upstream outputs the work depends on), so a rerun after an upstream change starts afresh. The runner
        deletes the stage's work folders once the stage succeeded.
        """
        digest = hashlib.sha1(json.dumps(to_dict(self.params), sort_keys=True).encode())
        for item in inputs:
            base = self.root / item
            files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
            for f in files:
                st = f.stat()
                digest.update(f"{f.relative_to(self.root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        path = self.root / WORK_DIR / f"{self.id}-{digest.hexdigest()[:12]}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def figures_dir(self) -> Path:
        if not hasattr(self, "_figures_dir"):
            self._figures_dir = self.output(Path("reports/figures") / self.id)
            self._figures_dir.mkdir(parents=True, exist_ok=True)
        return self._figures_dir

    # -- results ---------------------------------------------------------------------------------------------
    def save_table(self, name: str, table) -> Path:
        """Write a plot table (a pandas DataFrame) as ``reports/figures/<stage>/<name>.csv``."""
        path = self.figures_dir / f"{name}.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, path)
        return path

    def save_figure(self, fig, name: str, table=None, caption: str = "") -> Path:
        """Save a matplotlib figure as PNG (and the table it was drawn from as CSV) under the figures folder.

        The figure stays open, so the notebook still shows it. A caption is kept for the report page.
        """
        if table is not None:
            self.save_table(name, table)
        path = self.figures_dir / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        if caption:
            captions = self.metrics.setdefault("_captions", {})
            captions[name] = caption
        return path

    def log_metrics(self, **values: Any) -> None:
        """Add headline numbers to this stage's metrics file (nested dicts allowed)."""
        self.metrics.update(values)

    def finish(self) -> Path:
        """Write ``reports/metrics/<stage>.json`` (params echoed, run time added). Call once, at the end."""
        path = self.output(Path("reports/metrics") / f"{self.id}.json")
        data = dict(self.metrics)
        data["_params"] = to_dict(self.params)
        data["_seconds"] = round(time.time() - self._t0, 2)
        write_json_atomic(path, data)
        return path


# -- the runner ------------------------------------------------------------------------------------------------


def _offline_html(executed: Path, html_path: Path) -> None:
    """Executed notebook → self-contained HTML (figures inlined as PNG, no CDN scripts)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = False
    # No MathJax/require.js from a CDN: the page must open offline. Stage notebooks use no LaTeX.
    exporter.mathjax_url = ""
    body, _ = exporter.from_notebook_node(nb)
    body = _strip_remote_scripts(body)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html_path)


def _strip_remote_scripts(html: str) -> str:
    """Drop ``<script src="http...">`` tags: offline they only stall the page."""
    import re

    return re.sub(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', "", html)


def _commit(staging: Path, root: Path, rels: list[str]) -> None:
    """Move staged outputs into the work tree, each with one ``os.replace`` after removing the old copy."""
    for rel in rels:
        src, dst = staging / rel, root / rel
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        elif dst.exists() or dst.is_symlink():
            dst.unlink()
        os.replace(src, dst)


def run_stage(stage: str, overrides: dict | None = None, root: Path | None = None, kernel: str = KERNEL_NAME) -> int:
    """Execute ``notebooks/NN_<stage>.ipynb`` with its params section; returns a process exit code.

    Exit codes: 0 success; 1 the notebook raised (its error is printed, the executed copy kept in
    ``reports/failed/``); 2 bad parameters (nothing was run).
    """
    import papermill as pm

    root = Path(root or find_root()).resolve()
    overrides = overrides or {}
    sid = stage_id(stage, overrides)
    try:
        notebook = notebook_path(root, stage)
        section = load_section(root, stage)
        unknown = [k for k in overrides if k not in section]
        if unknown:
            raise ParamError(f"{PARAMS_FILE}: {stage}.{unknown[0]}: matrix key is not in the section")
        section = {**section, **overrides}
        validate_section(stage, section)
    except (ParamError, FileNotFoundError) as e:
        print(f"vlstudy: stage {sid} not run: {e}", file=sys.stderr)
        return 2

    staging = root / ".vlstudy" / "staging" / sid
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    executed = staging / "reports" / "executed" / f"{sid}.ipynb"
    executed.parent.mkdir(parents=True)
    env_before = {k: os.environ.get(k) for k in (STAGING_ENV, STAGE_ID_ENV)}
    os.environ[STAGING_ENV] = str(staging)
    os.environ[STAGE_ID_ENV] = sid
    t0 = time.time()
    print(f"vlstudy: stage {sid}: executing {notebook.relative_to(root)}", file=sys.stderr, flush=True)
    try:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=section,
            kernel_name=kernel,
            cwd=str(root),
            progress_bar=False,
            log_output=True,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except pm.PapermillExecutionError as e:
        failed = root / "reports" / "failed" / f"{sid}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if executed.exists():
            os.replace(executed, failed)
        print(
            f"vlstudy: stage {sid} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
            f"vlstudy: the executed notebook is kept in {failed.relative_to(root)}; no output was written",
            file=sys.stderr,
        )
        shutil.rmtree(staging, ignore_errors=True)
        return 1
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    manifest = staging / ".outputs.json"
    outputs = json.loads(manifest.read_text()) if manifest.exists() else []
    metrics_rel = f"reports/metrics/{sid}.json"
    if metrics_rel not in outputs:
        print(f"vlstudy: stage {sid}: the notebook did not call stage.finish() (no {metrics_rel})", file=sys.stderr)
        shutil.rmtree(staging, ignore_errors=True)
        return 1
    html_rel = f"reports/html/{sid}.html"
    _offline_html(executed, staging / html_rel)
    _commit(staging, root, [f"reports/executed/{sid}.ipynb", html_rel, *outputs])
    shutil.rmtree(staging, ignore_errors=True)
    for work in (root / WORK_DIR).glob(f"{sid}-*"):  # the run is complete: its resumable work is not needed
        shutil.rmtree(work, ignore_errors=True)
    print(f"vlstudy: stage {sid} done in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlstudy", description="vlstudy pipeline commands")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one stage notebook (the command of a dvc.yaml stage)")
    run.add_argument("stage")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="a DVC matrix item's value for one key of the section")
    run.add_argument("--kernel", default=KERNEL_NAME)
    study = sub.add_parser("study", help="run the whole study (dvc repro) under a profile")
    study.add_argument("--profile", default="default")
    study.add_argument("targets", nargs="*")
    sync = sub.add_parser("sync-params", help="rewrite each notebook's parameters cell from params.yaml")
    sync.add_argument("stages", nargs="*")
    args = parser.parse_args(argv)

    if args.command == "run":
        try:
            overrides = parse_overrides(args.overrides, f"{PARAMS_FILE}: {args.stage}")
        except ParamError as e:
            print(f"vlstudy: {e}", file=sys.stderr)
            return 2
        return run_stage(args.stage, overrides, kernel=args.kernel)
    if args.command == "study":
        from vlstudy.study import run_study

        return run_study(args.profile, args.targets)
    if args.command == "sync-params":
        from vlstudy.notebooks import sync_parameters

        return sync_parameters(find_root(), args.stages)
    return 2


if __name__ == "__main__":
    sys.exit(main())
