"""Benchmark the pipeline: the whole study one stage at a time and N at a time, and a no-op ``dvc repro``.

Figures, per profile (default: the work tree; smoke: ``runs/smoke/``):

1. full, one stage at a time: ``vlstudy study --force`` (``dvc repro --force``: every stage runs, 2 torch threads);
2. full, ``--jobs`` stages at a time: ``vlstudy study --force --jobs N`` (`vlstudy.pipeline.parallel`, cores/N
   threads each), printed as a ratio to (1) in the same run, and which metrics files differ after (2) from after
   (1) (float results of some kernels depend on the thread count: none differ in the smoke profile, the ALPRO
   stages do at the default size);
3. no-op: ``dvc repro`` right after, when nothing changed (target <= 3 s), as a ratio to ``dvc status``.

``--skip-full`` measures only the no-op of a workspace that has already been reproduced (seconds, no training).

Usage:
    python benchmarks/pipeline.py --profiles smoke                # ~13 min on 2 cores
    python benchmarks/pipeline.py --profiles default --jobs 2     # ~80 min
    python benchmarks/pipeline.py --profiles smoke default --skip-full
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

from vlstudy.pipeline.stage import find_root
from vlstudy.pipeline.study import prepare_workspace, workspace_for


def timed(cmd: list[str], cwd) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def metrics_digest(work: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((work / "reports/metrics").glob("*.json"))}


def full_run(profile: str, jobs: int, work: Path) -> tuple[float, dict[str, str]]:
    cmd = [sys.executable, "-m", "vlstudy.pipeline.cli", "study", "--profile", profile, "--force", "--jobs", str(jobs)]
    print(f"[{profile}] {' '.join(cmd[3:])} ...", flush=True)
    seconds, log = timed(cmd, find_root())
    stage_times = sorted(((float(s), name) for name, s in re.findall(r"vlstudy: stage (\S+) done in ([\d.]+) s", log)),
                         reverse=True)
    print(f"[{profile}] {jobs} at a time: {seconds / 60:.1f} min; slowest stages: "
          + ", ".join(f"{name} {s:.0f} s" for s, name in stage_times[:5]), flush=True)
    return seconds, metrics_digest(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["smoke"])
    parser.add_argument("--jobs", type=int, default=2, help="stages at a time in the second full run")
    parser.add_argument("--skip-full", action="store_true", help="only time the no-op of reproduced workspaces")
    parser.add_argument("--repeats", type=int, default=3, help="no-op and status timings keep the fastest")
    args = parser.parse_args()

    root = find_root()
    rows = []
    for profile in args.profiles:
        work = prepare_workspace(root, profile) if profile != "default" else workspace_for(root, profile)
        one = many = None
        if args.skip_full:
            _, out = timed(["dvc", "status"], work)
            if "Data and pipelines are up to date." not in out:
                raise SystemExit(f"[{profile}] --skip-full needs a reproduced workspace; `dvc status` in {work} says:\n"
                                 f"{out}\nrun `vlstudy study --profile {profile}` first")
        else:
            one, digest_one = full_run(profile, 1, work)
            many, digest_many = full_run(profile, args.jobs, work)
            differ = sorted(name for name in digest_one.keys() | digest_many.keys()
                            if digest_one.get(name) != digest_many.get(name))
            print(f"[{profile}] metrics files that differ between 1 and {args.jobs} at a time: "
                  f"{', '.join(differ) if differ else 'none'} (of {len(digest_one)})", flush=True)
        noop = min(timed(["dvc", "repro"], work)[0] for _ in range(args.repeats))
        _, out = timed(["dvc", "repro"], work)
        if "Running stage" in out:
            raise SystemExit(f"[{profile}] the no-op dvc repro ran a stage:\n{out}")
        status = min(timed(["dvc", "status"], work)[0] for _ in range(args.repeats))
        rows.append((profile, one, many, noop, status))

    print(f"\nprofile   1 at a time   {args.jobs} at a time   ratio   no-op dvc repro   dvc status   no-op / status")
    for profile, one, many, noop, status in rows:
        full = (f"{one / 60:7.1f} min   {many / 60:7.1f} min   {one / many:5.2f}x" if one is not None
                else "      (skipped)                      ")
        print(f"{profile:8s}  {full}   {noop:11.2f} s   {status:8.2f} s   {noop / status:10.2f}x")


if __name__ == "__main__":
    main()
