"""The stage runner: validated params before any kernel starts, atomic outputs, failed stages leave nothing."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from vlstudy.pipeline.runner import _shutdown, run_stage

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
    outputs = [project / "reports" / p for p in ("index.html", "report.ipynb", "report.run.json")]
    assert all(p.is_file() for p in outputs)
    html = (project / "reports" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*src=\"https?://", html), "the report page must open offline"
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


def test_yaml_syntax_error_is_a_one_line_message_with_exit_code_2(project, capsys):
    (project / "params.yaml").write_text("report:\n  title: [unclosed\n", encoding="utf-8")
    assert run_stage("report", root=project) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vlstudy: stage report not run: params.yaml, line 3, column 1: not valid YAML")
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("section", "value", "message"), [
    ("finetune_captioning", {"models": {"mplug_video": {"num_frames": 0}}},
     "params.yaml: finetune_captioning.models.mplug_video: num_frames must be >= 1, got 0"),
    ("finetune_classification", {"models": {"alpro": {"eval_batch_size": 0}}},
     "params.yaml: finetune_classification.models.alpro: eval_batch_size must be >= 1, got 0"),
    ("modality_summary", {"n_boot": 0},
     "params.yaml: modality_summary: n_boot=0 is too few bootstrap resamples for a 95% percentile interval"),
])
def test_value_constraints_fail_in_the_params_check_naming_file_and_key(section, value, message):
    from vlstudy.config import ParamError
    from vlstudy.pipeline.runner import validate_section

    with pytest.raises(ParamError) as raised:
        validate_section(section, value)
    assert str(raised.value).startswith(message)


@pytest.mark.slow
def test_ctrl_c_is_a_clean_failure_that_keeps_the_old_outputs(project):
    """SIGINT to the runner's process group (what Ctrl-C in a terminal does): exit 130, no traceback, the executed
    notebook kept in reports/failed/, the staging folder removed, nothing in place changed."""
    import signal
    import time

    import nbformat

    nb_path = project / "notebooks" / "99_report.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    marker = project / "in_the_long_cell"  # written by the kernel: Ctrl-C is pressed while a cell surely runs
    nb.cells.insert(len(nb.cells) - 1, nbformat.v4.new_code_cell(
        f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(120)"))
    nbformat.write(nb, nb_path)
    (project / "reports").mkdir()
    (project / "reports" / "index.html").write_text("old page")
    command = [sys.executable, "-c", "import sys; from vlstudy.pipeline.cli import main; sys.exit(main())",
               "run", "report"]
    # A terminal's foreground job takes Ctrl-C; a harness started in the background (no job control) passes SIGINT
    # down ignored, and Python then installs no KeyboardInterrupt handler: the runner gets the terminal's default.
    process = subprocess.Popen(command, cwd=project, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120  # a fixed wait after the staging folder appeared was too short on a busy machine
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the notebook never reached the long cell"
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err
    assert (project / "reports" / "failed" / "report.ipynb").is_file()
    assert not (project / ".vlstudy" / "staging" / "report").exists()
    assert (project / "reports" / "index.html").read_text() == "old page"


def test_a_params_error_shuts_down_the_kernel_that_booted_meanwhile(project, capsys, monkeypatch):
    """The kernel boots while the params are checked; a failed check must not leave it running."""
    from vlstudy.pipeline import runner

    started = []

    def recording_start(*args, **kwargs):
        started.append(runner_start(*args, **kwargs))
        return started[-1]

    runner_start = runner.start_kernel
    monkeypatch.setattr(runner, "start_kernel", recording_start)
    _set_param(project, "title", 123)
    assert run_stage("report", root=project) == 2
    assert "params.yaml: report.title: expected str, got 123 (int)" in capsys.readouterr().err
    assert len(started) == 1 and not started[0].has_kernel
    assert not (project / "reports").exists() and not (project / ".vlstudy" / "staging").exists()


@pytest.mark.slow
def test_the_kernel_imports_the_stage_module_as_it_boots_and_binds_no_name(tmp_path):
    from vlstudy.pipeline.runner import KERNEL_NAME, start_kernel

    km = start_kernel(KERNEL_NAME, tmp_path, "vlstudy.report.headline")
    client = km.blocking_client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        outputs = []
        client.execute_interactive("import os, sys; print('vlstudy.report.headline' in sys.modules, "
                                   "'vlstudy' in dir(), os.getcwd())",
                                   output_hook=lambda msg: outputs.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
        _shutdown(km)
    assert "".join(outputs).split() == ["True", "False", str(tmp_path)]


@pytest.mark.slow
def test_kernels_started_at_once_listen_on_sockets_of_their_own(tmp_path):
    """Two stages start their kernels at once under ``--jobs 2``. On TCP, jupyter_client can hand both the same
    "free" port (CI's smoke run once failed so: ``Address already in use``, the second kernel hung as it exited);
    each kernel now listens on Unix sockets in a folder of its own, removed at shutdown."""
    from vlstudy.pipeline.runner import KERNEL_NAME, check_in_kernel, start_kernel

    kernels = [start_kernel(KERNEL_NAME, tmp_path, "json") for _ in range(2)]
    try:
        folders = [Path(km.ip).parent for km in kernels]
        assert [km.transport for km in kernels] == ["ipc", "ipc"] and folders[0] != folders[1]
        for km in kernels:
            check_in_kernel(km, "report", {}, {}, timeout=60)  # both answer
        assert all(any(folder.iterdir()) for folder in folders)  # their sockets
    finally:
        for km in kernels:
            _shutdown(km)
    assert not any(folder.exists() for folder in folders)


def test_the_params_are_checked_in_the_kernel_and_this_process_never_imports_the_stage_module(project):
    """The stage's module (torch, transformers) is imported once per stage run, in the kernel, not here too."""
    _set_param(project, "title", 123)
    code = ("import sys; from vlstudy.pipeline.runner import run_stage; "
            f"rc = run_stage('report', root={str(project)!r}); "
            "print(rc, 'vlstudy.report.index' in sys.modules, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project, timeout=300)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert "params.yaml: report.title: expected str, got 123 (int)" in done.stderr


@pytest.mark.slow
def test_check_in_kernel_raises_the_params_error_and_leaves_no_trace_in_the_kernel(tmp_path):
    from vlstudy.config import ParamError
    from vlstudy.pipeline.runner import KERNEL_NAME, check_in_kernel, start_kernel

    recipe = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["recipe"]
    km = start_kernel(KERNEL_NAME, tmp_path, "vlstudy.report.index")
    client = km.blocking_client()

    def state():  # the notebook's namespace and next execution count, read without storing history
        printed = []
        client.execute_interactive("print(get_ipython().execution_count, sorted(dir()))", store_history=False,
                                   output_hook=lambda msg: printed.append(msg["content"].get("text", "")))
        return "".join(printed)

    try:
        client.start_channels()
        client.wait_for_ready(timeout=120)
        fresh = state()
        check_in_kernel(km, "report", {"title": "ok"}, recipe)
        with pytest.raises(ParamError, match=r"^params.yaml: report.title: expected str, got 123 \(int\)$"):
            check_in_kernel(km, "report", {"title": 123}, recipe)
        after = state()
    finally:
        client.stop_channels()
        _shutdown(km)
    assert fresh.startswith("1 [") and after == fresh


def test_machine_info_names_the_cpu_and_the_instruction_set_torch_dispatches_to():
    """Run records say which machine ran a stage; torch entries only when the stage loaded torch (fresh process)."""
    code = ("import json, os; from vlstudy.pipeline.stage import machine_info; before = machine_info(); import torch; "
            "after = machine_info(); print(json.dumps([before, after, torch.backends.cpu.get_cpu_capability(), "
            "os.cpu_count(), torch.cuda.device_count()]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout  # as a stage of a parallel study
    before, after, capability, cores, gpus = json.loads(out)
    assert set(before) == {"cpu", "cores"} and before["cores"] == cores and before["cpu"]
    assert after["cpu_capability"] == capability and after["cpu"] == before["cpu"] and len(after["gpus"]) == gpus
    assert after["threads"] == 1
