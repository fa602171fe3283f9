"""`vlstudy.pipeline.parallel.reproduce`: a toy DVC pipeline (a diamond with a matrix stage) run 2 stages at a time
must leave what ``dvc repro`` leaves (every output, a clean ``dvc status``, the same lock entries), overlap
independent stages, give every stage the same thread count (float results depend on it, so it must not depend on
the schedule), skip unchanged ones, stop starting stages after a failure, and refuse unknown targets."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vlstudy.pipeline.parallel import reproduce, stage_graph

# each stage sleeps, then writes its output and the interval it ran in
STEP = "import os, time; t = time.time(); time.sleep({sleep}); open('{out}', 'w').write({text}); " \
       "open('{out}.time', 'w').write(str(t) + ' ' + str(time.time()) + ' ' + os.environ.get('OMP_NUM_THREADS', '0'))"


def _cmd(out: str, text: str, sleep: float = 0.0) -> str:
    return f'{sys.executable} -c "{STEP.format(out=out, text=text, sleep=sleep)}"'


def _pipeline(root: Path, fail: bool = False) -> None:
    c_text = "open('a.txt').read() + '${item.k}'" + (" + str(1 / 0)" if fail else "")
    stages = {
        "a": {"cmd": _cmd("a.txt", "'a'"), "outs": ["a.txt"]},
        "b": {"cmd": _cmd("b.txt", "open('a.txt').read() + 'b'", 1.0), "deps": ["a.txt"], "outs": ["b.txt"]},
        "c": {"matrix": {"k": ["x", "y"]}, "cmd": _cmd("c_${item.k}.txt", c_text, 1.0), "deps": ["a.txt"],
              "outs": ["c_${item.k}.txt"]},
        "d": {"cmd": _cmd("d.txt", "open('b.txt').read() + open('c_x.txt').read() + open('c_y.txt').read()"),
              "deps": ["b.txt", "c_x.txt", "c_y.txt"], "outs": ["d.txt"]},
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))


def _dvc(root: Path, *args: str) -> str:
    return subprocess.run(["dvc", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    _dvc(root, "init", "--no-scm", "-q")
    _pipeline(root)
    return root


def _interval(root: Path, out: str) -> tuple[float, float]:
    start, end, _ = (root / f"{out}.time").read_text().split()
    return float(start), float(end)


def _threads(root: Path, out: str) -> int:
    return int((root / f"{out}.time").read_text().split()[2])


def test_two_at_a_time_leaves_what_dvc_repro_leaves(project, tmp_path):
    log = io.StringIO()
    assert reproduce(project, jobs=2, out=log) == 0
    assert (project / "d.txt").read_text() == "abaxay"
    assert "up to date" in _dvc(project, "status") or _dvc(project, "status").strip() == ""
    (_, first), (_, second), _ = sorted((_interval(project, f), f) for f in ("b.txt", "c_x.txt", "c_y.txt"))
    assert _interval(project, second)[0] < _interval(project, first)[1], "two independent stages overlap"
    outputs = ("a.txt", "b.txt", "c_x.txt", "c_y.txt", "d.txt")  # alone or side by side: the same threads
    assert {_threads(project, f) for f in outputs} == {max(1, os.cpu_count() // 2)}
    # the same pipeline under plain dvc repro writes the same lock entries (outputs and deps hashes)
    reference = tmp_path / "ref"
    reference.mkdir()
    _dvc(reference, "init", "--no-scm", "-q")
    _pipeline(reference)
    _dvc(reference, "repro", "-q")
    ours, theirs = (yaml.safe_load((r / "dvc.lock").read_text())["stages"] for r in (project, reference))
    assert ours.keys() == theirs.keys() == {"a", "b", "c@x", "c@y", "d"}
    for name in ours:
        assert ours[name]["outs"] == theirs[name]["outs"] and ours[name].get("deps") == theirs[name].get("deps")
    # nothing changed: every stage is skipped
    log = io.StringIO()
    assert reproduce(project, jobs=2, out=log) == 0
    assert log.getvalue().count("didn't change, skipping") == 5 and "Running stage" not in log.getvalue()


def test_targets_run_only_what_they_need(project):
    commands, upstream = stage_graph(project, ["b"])
    assert set(commands) == {"a", "b"} and upstream == {"a": set(), "b": {"a"}}
    assert reproduce(project, ["c@y"], jobs=2, out=io.StringIO()) == 0
    assert {p.name for p in project.glob("*.txt")} == {"a.txt", "c_y.txt"}
    with pytest.raises(ValueError, match=r"dvc\.yaml: no stage 'e'$"):
        reproduce(project, ["e"], jobs=2, out=io.StringIO())


def test_a_failure_stops_new_stages_and_keeps_finished_ones(project):
    _pipeline(project, fail=True)
    log = io.StringIO()
    assert reproduce(project, jobs=2, out=log) == 1
    assert "stage 'c@x' failed (exit code 1)" in log.getvalue() or "stage 'c@y' failed (exit code 1)" in log.getvalue()
    assert not (project / "d.txt").exists()  # downstream of the failure: never started
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert "a" in locked and "d" not in locked and "c@x" not in locked and "c@y" not in locked
