"""``dvc repro`` with several stages at a time, for a machine that one stage does not fill.

DVC 3 runs a pipeline's stages one after the other (``dvc repro`` has no jobs option; ``dvc exp run --queue``
runs whole experiments in copies of the workspace). `reproduce` keeps up to `jobs` stages running, each with the
same ``cores // jobs`` torch threads, and leaves every decision to DVC:

1. the stages and their order are DVC's (``Repo.index.graph``): the targets and every stage upstream of them;
2. a stage is looked at once every stage upstream of it is done; DVC's status decides whether it changed (its
   command runs) or not (skipped, as ``dvc repro`` skips it);
3. when its command succeeds, its outputs are committed to ``dvc.lock`` (``Repo.commit``), as ``dvc repro`` does
   after each stage, so an interrupted study resumes where it stopped, like ``dvc repro``;
4. after a failure no stage starts; the running ones finish (and are committed); the exit code is the failed
   command's (130 after Ctrl-C).

Written here because no library does it: DVC has no parallel ``repro``, and a generic DAG runner (a Makefile,
Snakemake) would have to re-implement DVC's change detection.

What it gains and what it changes, measured on the 2-core machine of this kit (2026-12-01): the smoke study, whose
stages are mostly kernel start-up and imports (single-threaded), 7.4 -> 5.5 min; the default study none (41 min
either way from cold caches): a training step with one thread is 1.4-1.7x slower than with two, and two stages side
by side slow each other further. And float results of some kernels depend on the thread count: ``pretrain_alpro``'s
held-out VTM loss is 0.6354482769966125 with 2 threads and 0.6354483962059021 with 1. So every stage gets the same
thread count, whatever runs beside it (a study with ``--jobs N`` reproduces another with ``--jobs N`` bit for bit,
not a ``--jobs 1`` one), and run records name the threads (``reports/runs/<stage>.json``, ``machine``). Among the
stages ready to start, those with the longest chain of work after them go first (seconds from their last run
records).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["reproduce", "stage_graph"]


def stage_graph(work: Path, targets: list[str] | None = None) -> tuple[dict[str, str], dict[str, set[str]]]:
    """DVC's stages of `work`: ``({stage: command}, {stage: the stages it depends on directly})``, restricted to
    `targets` and every stage upstream of them (all stages when None).

    Raises:
        ValueError: a target that is not a stage of the pipeline (the message names it).
    """
    import networkx as nx
    from dvc.repo import Repo

    with contextlib.chdir(work):  # DVC names a stage relative to the working directory
        graph = Repo(".").index.graph  # an edge runs from a stage to a stage it depends on
        stages = {s.addressing: s for s in graph.nodes}
        unknown = [t for t in targets or [] if t not in stages]
        if unknown:
            raise ValueError(f"{work / 'dvc.yaml'}: no stage {unknown[0]!r}")
        wanted = set(stages) if not targets else {
            name for t in targets for name in (t, *(s.addressing for s in nx.descendants(graph, stages[t])))}
        commands = {name: stages[name].cmd for name in wanted}
        upstream = {name: {s.addressing for s in graph.successors(stages[name])} & wanted for name in wanted}
    return commands, upstream


def _remaining_seconds(work: Path, upstream: dict[str, set[str]]) -> dict[str, float]:
    """Per stage, the seconds of the longest chain of stages from it to the end (last run records; 10 s where a
    stage has none): what should start first."""
    def seconds(name: str) -> float:
        record = work / "reports" / "runs" / f"{name}.json"
        try:
            return float(json.loads(record.read_text(encoding="utf-8"))["seconds"]) + 6.0  # + kernel start
        except (OSError, ValueError, KeyError, TypeError):
            return 10.0

    downstream: dict[str, set[str]] = {name: set() for name in upstream}
    for name, ups in upstream.items():
        for up in ups:
            downstream[up].add(name)
    remaining: dict[str, float] = {}

    def chain(name: str) -> float:
        if name not in remaining:
            remaining[name] = seconds(name) + max((chain(d) for d in downstream[name]), default=0.0)
        return remaining[name]

    for name in upstream:
        chain(name)
    return remaining


def _changed(work: Path, name: str) -> bool:
    from dvc.repo import Repo

    with contextlib.chdir(work):  # DVC resolves a target relative to the working directory
        return bool(Repo(".").status(targets=[name]))


def _commit(work: Path, name: str) -> None:
    from dvc.repo import Repo

    with contextlib.chdir(work):
        Repo(".").commit(name, force=True)


def reproduce(work: Path, targets: list[str] | None = None, jobs: int = 2, threads: int | None = None,
              force: bool = False, out: TextIO = sys.stdout) -> int:
    """Run the changed stages of `work`'s pipeline (the `targets` and what they depend on), `jobs` at a time.

    Args:
        work: the DVC workspace (the folder with ``dvc.yaml``).
        targets: stage names (``stage`` or ``stage@cell``); None: the whole pipeline.
        jobs: stages running at once.
        threads: torch threads of every stage (``OMP_NUM_THREADS``); default: the cores divided by `jobs`.
        force: run every stage, changed or not (``dvc repro --force``).
        out: where the progress lines go.

    Returns:
        0 when every stage is up to date or ran; else the exit code of the first stage that failed (130: Ctrl-C).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    commands, upstream = stage_graph(work, targets)
    remaining = _remaining_seconds(work, upstream)
    each = threads or max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(each), "MKL_NUM_THREADS": str(each)}
    pending, done = set(commands), set()
    running: dict[str, subprocess.Popen] = {}
    failure: tuple[str, int] | None = None

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(f"vlstudy: {len(commands)} stages, up to {jobs} at a time, {each} torch thread(s) each")
    try:
        while pending or running:
            while failure is None and len(running) < jobs:
                ready = sorted((n for n in pending if upstream[n] <= done), key=lambda n: (-remaining[n], n))
                if not ready:
                    break
                name = ready[0]
                pending.discard(name)
                if not force and not _changed(work, name):
                    say(f"Stage '{name}' didn't change, skipping")
                    done.add(name)
                    continue
                say(f"Running stage '{name}':\n> {commands[name]}")
                running[name] = subprocess.Popen(commands[name], shell=True, cwd=work, env=env)
            if not running:
                break  # nothing runs and nothing can start: finished, or stopped after a failure
            finished = [(n, p.returncode) for n, p in running.items() if p.poll() is not None]
            if not finished:
                time.sleep(0.2)
                continue
            for name, code in finished:
                del running[name]
                if code == 0:
                    _commit(work, name)
                    done.add(name)
                elif failure is None:
                    failure = (name, code)
                    say(f"vlstudy: stage '{name}' failed (exit code {code}); waiting for {len(running)} running "
                        "stage(s), starting no other")
    except KeyboardInterrupt:
        for process in running.values():
            process.send_signal(signal.SIGINT)  # each runner keeps its stage's work and exits 130
        for process in running.values():
            process.wait()
        say("vlstudy: interrupted; finished stages are committed, `vlstudy study` again resumes")
        return 130
    if failure is not None:
        return failure[1]
    return 0
