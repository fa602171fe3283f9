"""The stage runner: ``vlstudy run <stage>``, the whole command of a ``dvc.yaml`` stage.

It

1. reads the stage's section of ``params.yaml``, fills in the shared ``recipe`` and checks the result against
   the stage's params dataclass (`vlstudy.pipeline.registry`), so a wrong type or an unknown key fails before any
   cell runs, with a message naming the file and the key (exit code 2). The check runs inside the stage's kernel
   (`check_in_kernel`), which imports the stage's module as it boots (`start_kernel`): the module (torch,
   transformers) is imported once per stage run instead of once here and once there, and this process imports
   Papermill while the kernel boots. A failed check shuts the kernel down before any cell runs;
2. executes ``notebooks/NN_<stage>.ipynb`` with Papermill in that kernel, passing the section as parameters, in
   the project root, with the stage's outputs staged in ``.vlstudy/staging/<stage id>`` (`vlstudy.pipeline.stage`);
3. moves every output into place only after all of this succeeded, and prints one line with the stage's
   headline figure. (The report stage renders every executed notebook to offline HTML in one go,
   `vlstudy.report.index.render_notebooks`.)

A notebook that raises leaves nothing in place: its executed copy goes to ``reports/failed/<stage id>.ipynb``
(not a DVC output) and the exit code is 1. Ctrl-C is handled the same way (exit code 130).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from vlstudy import io
from vlstudy.config import RECIPE_SECTION, ParamError, read_params, resolve_section
from vlstudy.pipeline.registry import params_class, params_module
from vlstudy.pipeline.stage import (PARAMS_FILE, STAGE_ID_ENV, STAGING_DIR, STAGING_ENV, WORK_DIR, commit_staged,
                                    executed_record, find_root, run_record, stage_id)

__all__ = ["KERNEL_NAME", "check_in_kernel", "load_section", "notebook_path", "parse_overrides", "run_stage",
           "start_kernel", "validate_section"]

KERNEL_NAME = "vlstudy"


def notebook_path(root: Path, stage: str) -> Path:
    """``notebooks/NN_<stage>.ipynb``: exactly one notebook must carry the stage name as its stem."""
    hits = sorted((root / "notebooks").glob(f"[0-9][0-9]_{stage}.ipynb"))
    if len(hits) != 1:
        raise FileNotFoundError(
            f"stage {stage!r}: expected one notebook notebooks/NN_{stage}.ipynb, found {[h.name for h in hits]}")
    return hits[0]


def load_section(root: Path, stage: str, params_file: str = PARAMS_FILE) -> dict:
    """The ``stage`` section of the params file as a dict (an error names the file when it is missing)."""
    params = read_params(root, params_file)
    if stage not in params:
        raise ParamError(f"{params_file}: no section {stage!r} (sections: {', '.join(params)})")
    section = params[stage]
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ParamError(f"{params_file}: {stage}: expected a mapping, got {section!r}")
    return section


def validate_section(stage: str, section: dict, recipe: dict | None = None, params_file: str = PARAMS_FILE):
    """The stage's params dataclass filled from `section` and the recipe; raises ParamError naming file and key."""
    return resolve_section(params_class(stage, params_file), section, recipe, where=f"{params_file}: {stage}")


def parse_overrides(pairs: list[str], where: str) -> dict:
    """``key=value`` strings (values parsed as YAML scalars) from a DVC matrix cell."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ParamError(f"{where}: override {pair!r} is not key=value")
        out[key] = yaml.safe_load(raw)
    return out


# the kernel's own log (a "running over TCP without encryption" notice on this local, single-user connection; its
# echo of a Ctrl-C) is not the stage's; cell errors still are. No input history: the kernel writes nothing of its
# own, so it can be killed as soon as the notebook returns (`_shutdown`).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", "--HistoryManager.enabled=False"]


def start_kernel(kernel: str, root: Path, preload: str):
    """A started Jupyter kernel (a `jupyter_client.KernelManager`) in `root` that imports the module `preload` as it
    boots, before it answers: the stage's notebook then finds it imported. The kernel inherits this process's
    environment as it is now. The caller shuts it down (`_shutdown`).

    The kernel listens on Unix sockets in a folder of its own, not on TCP ports: jupyter_client picks "free" TCP
    ports by binding and releasing them, so two stages started at once (``vlstudy study --jobs 2``) can be given
    the same port; the second kernel then fails to bind, hangs as it exits (in ``zmq_ctx_term``) and its stage
    waits for it until the timeout (seen once in CI's smoke run). A socket path of its own cannot be taken."""
    import tempfile

    from jupyter_client import KernelManager

    sockets = Path(tempfile.mkdtemp(prefix="vlstudy-kernel-"))
    # nbclient drives the kernel with an asynchronous client; the manager itself can stay synchronous
    km = KernelManager(kernel_name=kernel, client_class="jupyter_client.asynchronous.AsyncKernelClient",
                       transport="ipc", ip=str(sockets / "kernel"))
    code = f"__import__({preload!r})"  # binds no name in the notebook's namespace
    km.start_kernel(cwd=str(root), extra_arguments=[*KERNEL_ARGUMENTS, f"--IPKernelApp.exec_lines={code}"])
    return km


def check_in_kernel(km, stage: str, section: dict, recipe: dict, timeout: float = 600) -> None:
    """`validate_section` run inside the started kernel `km`, where the stage's module is imported anyway.

    Raises ParamError with the kernel's message for bad params, RuntimeError for any other error there (the
    stage's module failed to import, the kernel died). Binds no name and takes no execution count in the kernel:
    the notebook's first cell is still cell 1."""
    call = (f"__import__('vlstudy.pipeline.runner', fromlist=['_']).validate_section("
            f"{stage!r}, __import__('json').loads({json.dumps(section)!r}), "
            f"__import__('json').loads({json.dumps(recipe)!r}));")  # the ';' keeps the result out of `_` and Out
    client = km.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=timeout)
        reply = client.execute_interactive(call, silent=True, store_history=False, timeout=timeout)["content"]
    finally:
        client.stop_channels()
    if reply["status"] == "ok":
        return
    if reply.get("ename") == "ParamError":
        raise ParamError(reply["evalue"])
    raise RuntimeError(f"the params check failed in the kernel: {reply.get('ename')}: {reply.get('evalue')}")


def _shutdown(km) -> None:
    """Kill the kernel. Also after a clean run: by the time the notebook returns, the stage wrote its outputs
    (``stage.finish`` writes atomically) and Papermill the executed notebook (from this process); a graceful
    shutdown would only wait for the kernel's interpreter to tear torch down (~1.6 s per stage here)."""
    if km is not None and km.has_kernel:
        km.shutdown_kernel(now=True)  # also removes the socket files and the connection file
    if km is not None and km.transport == "ipc":
        shutil.rmtree(Path(km.ip).parent, ignore_errors=True)


def _placeholders(root: Path, staging: Path, stage: str, overrides: dict, reason: str, written: list[str]) -> list[str]:
    """A skipped stage's declared outputs that it did not write, created in `staging` so DVC finds them: a folder
    holds ``SKIPPED.txt`` with the reason, a file is empty (the executed notebook and its HTML are real)."""
    from ruamel.yaml import YAML

    spec = YAML(typ="safe").load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    made = []
    for entry in [*spec.get("outs", []), *spec.get("metrics", [])]:
        rel = next(iter(entry)) if isinstance(entry, dict) else entry
        for key, value in overrides.items():
            rel = rel.replace(f"${{item.{key}}}", str(value))
        if rel in written or rel == str(executed_record(stage)) or rel.startswith("reports/executed/"):
            continue
        path = staging / rel
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            io.write_text(path / "SKIPPED.txt", f"stage {stage} skipped: {reason}\n")
        made.append(rel)
    return made


def _fail(root: Path, staging: Path, executed: Path, sid: str, message: str) -> None:
    failed = root / "reports" / "failed" / f"{sid}.ipynb"
    if executed.exists():
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(executed, failed)
    print(f"vlstudy: stage {sid} {message}\nvlstudy: the executed notebook is kept in "
          f"{failed.relative_to(root)}; no output was changed", file=sys.stderr)
    shutil.rmtree(staging, ignore_errors=True)


def run_stage(stage: str, overrides: dict | None = None, root: Path | None = None, kernel: str = KERNEL_NAME,
              verbose: bool = False, overlap: bool = True) -> int:
    """Execute the stage's notebook with its params section; returns a process exit code.

    Args:
        stage: the stage name.
        overrides: a matrix cell's keys (``--set model=alpro``); each must be a key of the section.
        root: the project (or profile workspace) root; default: found from the working directory.
        kernel: the Jupyter kernel.
        verbose: stream the notebook's output to the console (default: one line per stage).
        overlap: check the params in the kernel as it boots, importing Papermill meanwhile (False: check them in
            this process, then boot; the baseline of ``benchmarks/stage_overhead.py``).

    Exit codes: 0 success; 1 the notebook raised, or the kernel died or could not import the stage's module before
    it ran; 2 bad parameters (nothing was run); 130 interrupted.
    """
    root = Path(root or find_root()).resolve()
    overrides = overrides or {}
    sid = stage_id(stage, overrides)
    staging = root / STAGING_DIR / sid
    env_before = {k: os.environ.get(k) for k in (STAGING_ENV, STAGE_ID_ENV)}
    os.environ[STAGING_ENV], os.environ[STAGE_ID_ENV] = str(staging), sid  # before the kernel starts: it inherits them
    km = None
    skipped = failure = None
    try:
        try:
            notebook = notebook_path(root, stage)
            section = load_section(root, stage)
            unknown = [k for k in overrides if k not in section]
            if unknown:
                raise ParamError(f"{PARAMS_FILE}: {stage}.{unknown[0]}: matrix key is not in the section")
            section = {**section, **overrides}
            recipe = read_params(root).get(RECIPE_SECTION, {})
            preload = params_module(stage, PARAMS_FILE)
            if overlap:
                km = start_kernel(kernel, root, preload)
                import papermill as pm  # while the kernel boots

                check_in_kernel(km, stage, section, recipe)
            else:
                validate_section(stage, section, recipe)
                km = start_kernel(kernel, root, preload)
                import papermill as pm
        except (ParamError, FileNotFoundError) as e:
            print(f"vlstudy: stage {sid} not run: {e}", file=sys.stderr)
            return 2
        except (RuntimeError, TimeoutError) as e:  # the kernel died or hung, or the stage's module does not import
            print(f"vlstudy: stage {sid} not run: {e}", file=sys.stderr)
            return 1

        shutil.rmtree(staging, ignore_errors=True)
        executed = staging / executed_record(sid)
        executed.parent.mkdir(parents=True)
        t0 = time.time()
        print(f"vlstudy: stage {sid} ...", file=sys.stderr, flush=True)
        # Quiet unless asked: this runner prints the one line that matters (done, failed or interrupted). After a
        # Ctrl-C, nbclient and asyncio would add their own tracebacks of the kernel being shut down.
        for name in ("papermill", "asyncio"):
            logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
        try:
            pm.execute_notebook(str(notebook), str(executed), parameters=section, kernel_name=kernel, km=km,
                                cwd=str(root), progress_bar=False, log_output=verbose,
                                stdout_file=sys.stdout if verbose else None,
                                stderr_file=sys.stderr if verbose else None)
        except pm.PapermillExecutionError as e:
            if e.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
                failure = 130, "interrupted (Ctrl-C)"
            elif e.ename == "StageSkipped":  # nothing to compute: recorded like a finished stage (`Stage.skip`)
                skipped = e.evalue
            else:
                failure = 1, f"failed in cell {e.exec_count}: {e.ename}: {e.evalue}"
        except KeyboardInterrupt:
            failure = 130, "interrupted (Ctrl-C)"
    finally:
        _shutdown(km)  # before a failure clears the staging folder: the kernel no longer writes there
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if failure is not None:
        code, message = failure
        _fail(root, staging, executed, sid, message)
        return code

    manifest = staging / ".outputs.json"
    outputs = json.loads(manifest.read_text()) if manifest.exists() else []
    if skipped is not None:
        outputs += _placeholders(root, staging, stage, overrides, skipped, outputs)
    run_rel = str(run_record(sid))
    if run_rel not in outputs:
        _fail(root, staging, executed, sid, f"did not call stage.finish() (no {run_rel})")
        return 1
    commit_staged(staging, root, [str(executed_record(sid)), *outputs])
    shutil.rmtree(staging, ignore_errors=True)
    for work in (root / WORK_DIR).glob(f"{sid}-*"):  # the run is complete: its resumable work is not needed
        shutil.rmtree(work, ignore_errors=True)
    run = json.loads((root / run_rel).read_text(encoding="utf-8"))
    headline = f": {run['headline']}" if run.get("headline") else ""
    print(f"vlstudy: stage {sid} done in {time.time() - t0:.0f} s{headline}", file=sys.stderr, flush=True)
    return 0
