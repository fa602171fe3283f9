"""The runner's fixed cost per stage run, and what checking the params inside the booting kernel saves.

Every stage run pays, besides its notebook's own work: the imports to check the params (the stage's module: torch,
transformers), Papermill, the kernel's start and the notebook's imports inside the kernel.
`vlstudy.pipeline.runner.run_stage` starts the kernel, which imports the stage's module as it boots, imports
Papermill meanwhile and then checks the params inside the kernel: the stage's module is imported once per stage run.
``overlap=False`` is the sequential order it replaces (import the module here and check, then boot the kernel, which
imports it again). This runs one stage in fresh processes, alternating the two orders, and prints the median wall
seconds of each, the notebook's own seconds and the ratio.

    python benchmarks/stage_overhead.py                         # modality_summary of this workspace, 3 repeats
    python benchmarks/stage_overhead.py --stage report --repeats 5

The stage runs in a temporary project that links this workspace's ``data/`` and ``checkpoints/`` (read only) and
writes its outputs there; the workspace is not changed. The stage's inputs must exist (run the study first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vlstudy.pipeline.runner import notebook_path
from vlstudy.pipeline.stage import find_root

RUN = "import sys; from vlstudy.pipeline.runner import run_stage; sys.exit(run_stage({stage!r}, overlap={overlap}))"


def project_copy(root: Path, stage: str, tmp: Path) -> Path:
    """A project in `tmp` with `root`'s params, dvc.yaml and the stage's notebook; data, checkpoints and the
    reports it reads linked."""
    (tmp / "notebooks").mkdir()
    shutil.copy(notebook_path(root, stage), tmp / "notebooks")
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(root / name, tmp / name)
    for name in ("data", "checkpoints"):
        if (root / name).exists():
            (tmp / name).symlink_to(root / name)
    shutil.copytree(root / "reports" / "metrics", tmp / "reports" / "metrics")
    return tmp


def timed_run(project: Path, stage: str, overlap: bool) -> tuple[float, float]:
    """Wall seconds of one stage run in a fresh process, and the notebook's own seconds (its run record)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN.format(stage=stage, overlap=overlap)], cwd=project,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{stage} (overlap={overlap}) failed:\n{done.stderr[-2000:]}")
    record = json.loads((project / "reports" / "runs" / f"{stage}.json").read_text(encoding="utf-8"))
    return wall, record["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="modality_summary")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    root = find_root()
    with tempfile.TemporaryDirectory() as tmp:
        project = project_copy(root, args.stage, Path(tmp))
        timed_run(project, args.stage, True)  # warm the file cache; not counted
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for overlap in (False, True):
                runs[overlap].append(timed_run(project, args.stage, overlap))
    print(f"stage {args.stage}, {args.repeats} runs of each order in fresh processes (median seconds)")
    wall = {}
    for overlap, label in ((False, "check params, then boot the kernel"), (True, "check in the booting kernel")):
        wall[overlap] = statistics.median(w for w, _ in runs[overlap])
        inside = statistics.median(n for _, n in runs[overlap])
        print(f"  {label:38s} wall {wall[overlap]:6.1f}   in the notebook {inside:6.1f}   "
              f"outside {wall[overlap] - inside:6.1f}")
    print(f"ratio in-kernel / sequential wall: {wall[True] / wall[False]:.2f} "
          f"(saves {wall[False] - wall[True]:.1f} s per stage run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
