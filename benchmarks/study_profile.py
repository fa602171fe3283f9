"""Where the study's time goes: per stage, wall time and its split into decode / train / evaluate / write, and the
training steps' achieved model-FLOP rate against this machine's matmul peak, measured in the same run.

Reads the run records a finished study leaves (``reports/runs/<stage id>.json``: the stage's seconds in the
notebook, the task phases' timings and each training run's FLOPs per step and step time, written by
`vlstudy.pipeline.stage` and `vlstudy.tasks.common.training_record`). Kernel start-up (~4 s per stage run) is not
in a stage's seconds; the total adds it as a count.

    python benchmarks/study_profile.py                      # the default workspace (this folder)
    python benchmarks/study_profile.py --workspace runs/smoke
    python benchmarks/study_profile.py --before 1398cad      # also the stage times of a committed earlier run
    python benchmarks/study_profile.py --json reports/profile.json

The peak is the best of a few float32 2048x2048 matmuls on the threads torch uses (as benchmarks/model_mfu.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

PHASES = ("decode", "train", "evaluate", "write")


def matmul_peak(size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best matmul rate in FLOP/s over `repeats` multiplications of two `size` x `size` matrices of `dtype`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def _flatten_timings(timings: dict) -> dict[str, float]:
    """Phase seconds of a stage, summed over its tasks (a stage may run several, keyed by name)."""
    out = dict.fromkeys(PHASES, 0.0)
    for key, value in timings.items():
        if isinstance(value, dict):
            for phase, seconds in _flatten_timings(value).items():
                out[phase] += seconds
        elif key in out:
            out[key] += float(value)
    return out


def _training_runs(training: dict) -> list[dict]:
    if "flops_per_step" in training:
        return [training]
    return [run for value in training.values() if isinstance(value, dict) for run in _training_runs(value)]


def stage_rows(workspace: Path) -> list[dict]:
    """One row per stage run record of `workspace`, in file order of the pipeline's reports/runs."""
    rows = []
    records = sorted((workspace / "reports" / "runs").glob("*.json"))
    records += sorted((workspace / "reports").glob("*.run.json"))
    for path in records:
        run = json.loads(path.read_text(encoding="utf-8"))
        phases = _flatten_timings(run.get("timings", {}))
        flops = seconds = 0.0
        for t in _training_runs(run.get("training", {})):
            if t.get("flops_per_step") and t.get("step_seconds"):
                flops += t["flops_per_step"] * t.get("steps", 0)
                seconds += t["step_seconds"]
        rows.append({"stage": run.get("stage", path.stem), "seconds": run.get("seconds", 0.0), **phases,
                     "train_step_s": seconds, "gflops": flops / seconds / 1e9 if seconds else None})
    return rows


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def before_rows(commit: str) -> list[dict]:
    """Stage seconds of a committed run: its run records (``reports/runs/<stage id>.json``, ``seconds``) or, for a
    commit from before run records, the ``_seconds`` of its reports/metrics files."""
    for folder, key in (("reports/runs", "seconds"), ("reports/metrics", "_seconds")):
        try:
            names = _git("ls-tree", "--name-only", f"{commit}:{folder}").split()
        except subprocess.CalledProcessError:  # the folder does not exist at that commit
            continue
        rows = [{"stage": name.removesuffix(".json"),
                 "seconds": float(json.loads(_git("show", f"{commit}:{folder}/{name}")).get(key, 0.0))}
                for name in sorted(names) if name.endswith(".json")]
        if any(r["seconds"] for r in rows):
            return rows
    raise SystemExit(f"{commit}: neither reports/runs nor reports/metrics hold stage seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("."))
    parser.add_argument("--before", help="a commit whose reports/metrics hold an earlier run's stage times")
    parser.add_argument("--kernel-start", type=float, default=4.0, help="seconds per stage run not in its record")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    peak = matmul_peak()
    rows = stage_rows(args.workspace)
    if not rows:
        print(f"no run records in {args.workspace}/reports/runs: run the study first", file=sys.stderr)
        return 1
    print(f"matmul peak (float32, {torch.get_num_threads()} threads): {peak / 1e9:.0f} GFLOP/s\n")
    header = f"{'stage':58s} {'wall s':>7s} " + " ".join(f"{p:>8s}" for p in PHASES) + f" {'GFLOP/s':>8s} {'% peak':>7s}"
    print(header)
    for r in rows:
        rate = f"{r['gflops']:8.1f} {100 * r['gflops'] * 1e9 / peak:6.1f}%" if r["gflops"] else f"{'':8s} {'':7s}"
        print(f"{r['stage']:58s} {r['seconds']:7.1f} " + " ".join(f"{r[p]:8.1f}" for p in PHASES) + f" {rate}")
    total = sum(r["seconds"] for r in rows)
    print(f"\n{len(rows)} stage runs: {total:.0f} s in the notebooks + ~{args.kernel_start * len(rows):.0f} s of kernel "
          f"start-up = ~{(total + args.kernel_start * len(rows)) / 60:.1f} min")
    if args.before:
        old = before_rows(args.before)
        old_total = sum(r["seconds"] for r in old)
        print(f"\nbefore ({args.before}): {len(old)} stage runs, {old_total:.0f} s in the notebooks "
              f"(~{(old_total + args.kernel_start * len(old)) / 60:.1f} min with kernel start-up)")
        now = {r["stage"]: r["seconds"] for r in rows}
        print(f"{'stage':58s} {'before s':>9s} {'now s':>7s} {'now/before':>10s}")
        for r in old:
            if r["stage"] in now:
                ratio = f"{now[r['stage']] / r['seconds']:10.2f}" if r["seconds"] else f"{'':10s}"
                print(f"{r['stage']:58s} {r['seconds']:9.1f} {now[r['stage']]:7.1f} {ratio}")
            else:
                print(f"{r['stage']:58s} {r['seconds']:9.1f} {'(gone)':>7s}")
        for stage in sorted(set(now) - {r["stage"] for r in old}):
            print(f"{stage:58s} {'(new)':>9s} {now[stage]:7.1f}")
        print(f"ratio now / before (notebook seconds): {total / old_total:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"peak_gflops": peak / 1e9, "stages": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
