"""Benchmark the pipeline: the whole study, the smoke profile, and a no-op ``dvc repro``.

Figures, per profile (default: the work tree; smoke: ``runs/smoke/``):

1. full: ``dvc repro --force``, every stage executed (seconds, and the slowest stages from the runner's log);
2. no-op: ``dvc repro`` right after, when nothing changed (seconds; target <= 3 s), printed as a ratio to
   ``dvc status`` in the same run (the least any DVC command that checks the pipeline costs; target <= 2x).

``--skip-full`` measures only the no-op of a workspace that has already been reproduced (seconds, no training).

Usage:
    python benchmarks/pipeline.py [--profiles smoke default] [--skip-full] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time

from vlstudy.pipeline import find_root
from vlstudy.study import prepare_workspace


def timed(cmd: list[str], cwd) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["smoke", "default"])
    parser.add_argument("--skip-full", action="store_true", help="only time the no-op of reproduced workspaces")
    parser.add_argument("--repeats", type=int, default=3, help="no-op and status timings keep the fastest")
    args = parser.parse_args()

    root = find_root()
    rows = []
    for profile in args.profiles:
        work = prepare_workspace(root, profile)
        full = None
        if args.skip_full:
            _, out = timed(["dvc", "status"], work)
            if "Data and pipelines are up to date." not in out:
                raise SystemExit(f"[{profile}] --skip-full needs a reproduced workspace; `dvc status` in {work} says:\n"
                                 f"{out}\nrun `vlstudy study --profile {profile}` first")
        else:
            print(f"[{profile}] dvc repro --force in {work} ...", flush=True)
            full, log = timed(["dvc", "repro", "--force"], work)
            stage_times = sorted(((float(s), name) for name, s in
                                  re.findall(r"vlstudy: stage (\S+) done in ([\d.]+) s", log)), reverse=True)
            print(f"[{profile}] full: {full:.0f} s; slowest stages: "
                  + ", ".join(f"{name} {s:.0f} s" for s, name in stage_times[:5]), flush=True)
        noop = min(timed(["dvc", "repro"], work)[0] for _ in range(args.repeats))
        _, out = timed(["dvc", "repro"], work)
        if "Running stage" in out:
            raise SystemExit(f"[{profile}] the no-op dvc repro ran a stage:\n{out}")
        status = min(timed(["dvc", "status"], work)[0] for _ in range(args.repeats))
        rows.append((profile, full, noop, status))

    print("\nprofile   full dvc repro   no-op dvc repro   dvc status   no-op / status")
    for profile, full, noop, status in rows:
        full_text = f"{full / 60:8.1f} min" if full is not None else "     (skipped)"
        print(f"{profile:8s}  {full_text}   {noop:11.2f} s   {status:8.2f} s   {noop / status:10.2f}x")


if __name__ == "__main__":
    main()
