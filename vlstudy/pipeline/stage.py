"""What a stage notebook needs from the pipeline: validated params, paths from the project root, staged outputs.

A stage is a notebook ``notebooks/NN_<stage>.ipynb`` driven by the ``<stage>`` section of ``params.yaml`` (one
name in four places: DVC stage = params section = notebook stem = metrics file). Its second cell builds a
`Stage`::

    stage = Stage.from_parameters("dataset_statistics", globals(), StatisticsParams)
    P = stage.params

which gives the same result under ``dvc repro`` (the runner, `vlstudy.pipeline.runner`, executes the notebook
with Papermill) and in JupyterLab (a student runs it cell by cell):

- **Paths.** The kernel moves to the project root (the folder holding ``dvc.yaml``), so every relative path in
  the params (``init: checkpoints/...``) and in the notebook means the same file in both cases.
- **Params.** The notebook's parameters are checked against the stage's dataclass, after the shared ``recipe``
  of ``params.yaml`` is filled in (`vlstudy.config.apply_recipe`): a typo or a wrong type fails at once.
- **Outputs.** `output` hands out paths in a private staging folder (``.vlstudy/staging/<stage id>``). Nothing
  in the work tree changes until the stage finished: the runner moves the staged outputs into place, and a run
  by hand does it in `finish`. A failed or interrupted run therefore never empties a DVC output.
- **Results.** `log_metrics` collects the headline numbers and `protocol` how they were measured; `finish`
  writes them to ``reports/metrics/<stage id>.json``, the one result channel later stages and ``dvc metrics``
  read. The resolved params, figure captions and timings go to ``reports/runs/<stage id>.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from vlstudy import io
from vlstudy.config import RECIPE_SECTION, read_params, resolve_section, to_dict
from vlstudy.plotting import use_cjk_font

__all__ = ["Stage", "StageSkipped", "find_root", "stage_id", "run_record", "executed_record", "machine_info",
           "GATHERERS", "commit_staged", "PARAMS_FILE", "PROFILE_FILE",
           "STAGING_ENV", "STAGE_ID_ENV", "STAGING_DIR", "WORK_DIR"]

STAGING_ENV = "VLSTUDY_STAGING"
STAGE_ID_ENV = "VLSTUDY_STAGE_ID"
PARAMS_FILE = "params.yaml"
WORK_DIR = Path(".vlstudy") / "work"
STAGING_DIR = Path(".vlstudy") / "staging"
PROFILE_FILE = Path(".vlstudy") / "profile"

log = logging.getLogger("vlstudy.pipeline")


class StageSkipped(Exception):
    """Raised by `Stage.skip`: the stage has nothing to compute (the data it needs is absent from a partial
    release). Its metrics file says why; the runner records the stage as done (skipped), with placeholders for
    its other outputs, so that DVC and the later stages go on."""


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder at or above `start` (default: cwd) that holds ``dvc.yaml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no dvc.yaml found in {here} or any folder above it")


def stage_id(stage: str, cell: dict | None = None) -> str:
    """DVC's name for a matrix cell, ``stage@value[-value...]``; the plain stage name otherwise."""
    return stage + "@" + "-".join(str(v) for v in cell.values()) if cell else stage


GATHERERS = ("report",)
"""Stages that read every other stage's records (reports/metrics, runs, figures, executed notebooks): theirs go
beside those folders (``reports/<id>.*``), never inside a folder they depend on, and they write no metrics file."""


def run_record(sid: str) -> Path:
    """Where a stage's run record (resolved params, captions, timings) goes, relative to the root."""
    return Path("reports") / f"{sid}.run.json" if sid in GATHERERS else Path("reports/runs") / f"{sid}.json"


def executed_record(sid: str) -> Path:
    """Where the runner keeps a stage's executed notebook, relative to the root."""
    return Path("reports") / f"{sid}.ipynb" if sid in GATHERERS else Path("reports/executed") / f"{sid}.ipynb"


def machine_info() -> dict[str, Any]:
    """What ran a stage, for its run record: the CPU model, the instruction set torch's kernels dispatch to (float
    results of the same code can differ between AVX2 and AVX-512 kernels, so a number that moved between two runs is
    a machine difference when this did), the core count, and the torch version, its threads and the GPUs when the
    stage loaded torch (a stage that did not load it gets no torch entries: its numbers do not depend on it)."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []
    info: dict[str, Any] = {"cpu": names[0] if names else platform.processor(), "cores": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info.update(cpu_capability=torch.backends.cpu.get_cpu_capability(), torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
    return info


def commit_staged(staging: Path, root: Path, rels: list[str]) -> None:
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


class Stage:
    """The pipeline as a stage notebook sees it (see the module docstring).

    Args:
        name: the stage name (= params section = notebook stem).
        params_cls: the stage's params dataclass.
        params: the notebook's parameters (the keys of its ``parameters`` cell, as papermill or the cell set them).
    """

    def __init__(self, name: str, params_cls: type, params: dict) -> None:
        self.name = name
        self.root = find_root()
        if Path.cwd().resolve() != self.root:
            print(f"vlstudy: working directory set to the project root {self.root} (paths in params are relative to it)")
            os.chdir(self.root)
        staging = os.environ.get(STAGING_ENV)
        self.by_runner = staging is not None
        matrix = getattr(params_cls, "MATRIX", ())  # the keys a DVC matrix sets, e.g. ("model", "variant")
        self.id = os.environ.get(STAGE_ID_ENV) or stage_id(name, {k: params[k] for k in matrix if k in params})
        self.staging = Path(staging) if staging else self.root / STAGING_DIR / f"{self.id}-manual"
        if not self.by_runner and self.staging.exists():
            shutil.rmtree(self.staging)
        self.profile = (self.root / PROFILE_FILE).read_text().strip() if (self.root / PROFILE_FILE).is_file() \
            else "default"
        recipe = read_params(self.root).get(RECIPE_SECTION, {}) if (self.root / PARAMS_FILE).is_file() else {}
        self.params = resolve_section(params_cls, params, recipe, where=f"{PARAMS_FILE}: {name}")
        use_cjk_font()  # every figure of every stage gets readable Chinese labels
        self.metrics: dict[str, Any] = {}
        self.run_info: dict[str, Any] = {"captions": {}, "tables": {}, "timings": {},
                                         "given_params": self._given(params, matrix)}
        self._outputs: list[str] = []
        self._t0 = time.time()

    @classmethod
    def from_parameters(cls, name: str, namespace: dict, params_cls: type) -> Stage:
        """The stage with its params read from a notebook's namespace: the variables its parameters cell set."""
        keys = [f.name for f in dataclasses.fields(params_cls)]
        return cls(name, params_cls, {k: namespace[k] for k in keys if k in namespace})

    @staticmethod
    def _given(params: dict, matrix: tuple[str, ...]) -> dict:
        """The params as the section gives them; for a matrix cell only the cell's keys and entries (the
        ``models``/``variants`` entry named by ``model``/``variant``)."""
        if not matrix:
            return dict(params)
        given = {}
        for key in matrix:
            given[key] = params.get(key)
            entries = params.get(f"{key}s")
            if isinstance(entries, dict) and params.get(key) in entries:
                given[f"{key}s.{params[key]}"] = entries[params[key]]
        return given

    # -- paths -----------------------------------------------------------------------------------------------
    def input(self, rel: str | Path) -> Path:
        """A path to read, relative to the project root; it must exist (its stage ran)."""
        path = self.root / rel
        if not path.exists():
            raise FileNotFoundError(f"stage {self.name}: input {rel} does not exist; run its stage first (dvc repro)")
        return path

    def output(self, rel: str | Path) -> Path:
        """A folder or file to write, relative to the project root. It lives in the staging folder until the
        stage finished (see the module docstring); it starts empty. Parents are created."""
        rel = Path(rel)
        if rel.is_absolute():
            raise ValueError(f"stage {self.name}: output {rel} must be relative to the project root")
        path = self.staging / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if str(rel) not in self._outputs:
            self._outputs.append(str(rel))
            io.write_json(self.staging / ".outputs.json", self._outputs)
        return path

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
    def save_table(self, name: str, table, title: str = "") -> Path:
        """Write a result table (a pandas DataFrame) as ``reports/figures/<stage>/<name>.csv``; the report shows
        tables whose name starts with ``table_`` under `title` (e.g. "Table 6: modality ablation (ALPRO)")."""
        if title:
            self.run_info["tables"][name] = title
        return io.write_table(self.figures_dir / f"{name}.csv", table)

    def save_figure(self, fig, name: str, table=None, caption: str = "") -> Path:
        """Save a matplotlib figure as PNG (and the table it was drawn from as CSV) under the figures folder.

        The figure stays open, so the notebook still shows it. The caption is kept for the report page.
        """
        if table is not None:
            self.save_table(name, table)
        with io.atomic_path(self.figures_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        if caption:
            self.run_info["captions"][name] = caption
        return self.figures_dir / f"{name}.png"

    def log_metrics(self, **values: Any) -> None:
        """Add headline numbers to this stage's metrics file (nested dicts allowed; keep it to headline numbers)."""
        self.metrics.update(values)

    def protocol(self, **facts: Any) -> None:
        """Record how the numbers were measured (split, items, frames and sampler, normalisation, retrieval
        mode, ...): written beside the numbers as the metrics file's ``protocol`` block."""
        self.metrics.setdefault("protocol", {}).update(facts)

    def log_result(self, result, name: str | None = None) -> None:
        """A task's result (`vlstudy.tasks.common.TaskResult`): its metrics and protocol go to the metrics file
        (under `name` when the stage runs several tasks), its training bookkeeping and phase timings to the run
        file."""
        metrics = self.metrics.setdefault(name, {}) if name else self.metrics
        metrics.update(result.metrics)
        if "skipped_videos" in result.training:  # every skip count belongs in `dvc metrics show`
            metrics["skipped_videos"] = result.training["skipped_videos"]
        protocol = self.metrics.setdefault("protocol", {})
        (protocol.setdefault(name, {}) if name else protocol).update(result.protocol)
        for key in ("training", "timings"):
            record = self.run_info.setdefault(key, {})
            (record.setdefault(name, {}) if name else record).update(getattr(result, key))

    def record(self, **info: Any) -> None:
        """Bookkeeping that is not a headline number (it goes to ``reports/runs/<stage id>.json``)."""
        self.run_info.update(info)

    def require(self, *splits: tuple[str, str], data: str | Path = "data/prepared") -> None:
        """Skip the stage (`skip`) unless every (task, split) it needs is in the ingested data.

        A partial copy of the release (only some official CSVs) leaves some splits absent; the data stage records
        them in ``manifest.json``. A stage that needs one of them has nothing to compute: it says so in its
        metrics and the report, instead of failing.
        """
        from vlstudy.data.prepared import present_in_manifest, read_manifest

        folder = self.root / data
        if not (folder / "manifest.json").is_file():
            return  # not prepared yet: the stage's own reading reports the missing input
        manifest = read_manifest(folder)
        absent = [f"{task} {split}" for task, split in splits if not present_in_manifest(manifest, task, split)]
        if absent:
            self.skip(f"the ingested data has no {', '.join(absent)} split (absent from the release's CSVs)")

    def skip(self, reason: str) -> None:
        """Finish the stage as skipped: the metrics file holds ``skipped: reason`` and the run stops here."""
        self.metrics = {"skipped": reason}
        self.headline(f"skipped: {reason}")
        self.finish()
        raise StageSkipped(reason)

    def headline(self, text: str) -> None:
        """The one line the console prints when the stage is done, e.g. ``"top-1 46.0 [43.8, 48.7]"``."""
        self.run_info["headline"] = text

    def finish(self) -> Path:
        """Write the metrics and run files (a gatherer, `GATHERERS`, writes no metrics file); run by hand, also
        move the staged outputs into place. Call once."""
        if self.id not in GATHERERS:
            io.write_json(self.output(Path("reports/metrics") / f"{self.id}.json"), self.metrics)
        self.run_info.update(stage=self.id, profile=self.profile, seconds=round(time.time() - self._t0, 2),
                             params=to_dict(self.params), machine=machine_info())
        io.write_json(self.output(run_record(self.id)), self.run_info)
        if not self.by_runner:
            commit_staged(self.staging, self.root, self._outputs)
            shutil.rmtree(self.staging, ignore_errors=True)
            print(f"vlstudy: stage {self.id} finished by hand; outputs moved into place "
                  f"({', '.join(self._outputs)}). `dvc commit` records them for DVC.")
        return self.root / run_record(self.id)
