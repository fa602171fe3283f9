"""The training log: one JSON object per line, appended and flushed as training goes; and its loss-curve figure.

Each record carries ``kind`` ("train" or "eval") and ``step`` (optimizer steps done). A train record holds the
epoch, the loss and every other scalar the loss function returned (averaged over the step's micro-batches and
processes), ``lr/<group>`` for each parameter group, ``grad_norm`` (before clipping), ``samples_per_s``,
``elapsed_s`` and ``skipped_videos`` (cumulative). An eval record holds the step and the eval metrics.

A resumed run reopens the same file: `JsonlLog` first drops every record past the checkpoint's step (the steps a
killed run logged after its last checkpoint are redone), and an incomplete last line left by a kill is dropped, so
the finished file has each step exactly once. A stage publishes the log into its output folder with `publish_log`,
which leaves out the wall-clock fields: that folder is a DVC dependency of the stages after it, so it must hash the
same for the same weights (with step timings in it, rerunning a stage reran everything downstream of it). The
loss-curve figure is drawn from the file, not from memory (STYLE.md rule 12), and comes with its plot table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlstudy.io import write_text

if TYPE_CHECKING:  # pandas and matplotlib are imported where used: training processes never draw
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["JsonlLog", "WALL_CLOCK_FIELDS", "read_log", "truncate_log", "publish_log", "last_results", "loss_table",
           "loss_curve"]

WALL_CLOCK_FIELDS = ("samples_per_s", "elapsed_s")  # differ between runs of bit-identical training


def read_log(path: Path) -> list[dict[str, Any]]:
    """All records of a JSON-lines log, in file order ([] if the file does not exist).

    An incomplete last line (a process killed mid-write) is ignored.

    Raises:
        ValueError: naming the file and line, if a line other than the last is not a JSON object.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}:{number}: expected a JSON object with a 'step' key, got {line[:80]!r}")
        records.append(record)
    return records


def truncate_log(path: Path, step: int) -> int:
    """Rewrite `path` atomically keeping only records with ``step <= step``; returns how many were dropped."""
    if not path.exists():
        return 0
    records = read_log(path)
    kept = [r for r in records if r["step"] <= step]
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return len(records) - len(kept)


def publish_log(source: Path, destination: Path) -> None:
    """Write the log `source` to `destination` (atomically) without its `WALL_CLOCK_FIELDS`.

    Every other field, the order of the records and their JSON form are kept, so the same training gives the same
    bytes. The run's rates stay in the stage's run record (`vlstudy.tasks.common.training_record`); the per-step
    timings only in the trainer's log in the work folder, which the runner clears once the stage succeeded.
    """
    records = [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS} for r in read_log(source)]
    write_text(destination, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def last_results(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The loss terms of the last train record and the metrics of the last eval record of a log ({} if none)."""
    records = read_log(path)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    drop = {"kind", "step", "epoch", "grad_norm", "samples_per_s", "elapsed_s", "skipped_videos"}
    losses = {k: v for k, v in train[-1].items() if k not in drop and not k.startswith("lr/")} if train else {}
    metrics = {k: v for k, v in evals[-1].items() if k not in {"kind", "step"}} if evals else {}
    return losses, metrics


class JsonlLog:
    """An append-only JSON-lines log that continues a resumed run without duplicating steps.

    Args:
        path: the log file (its folder is created).
        resume_step: the step the run resumes from (0 for a fresh run); records past it are dropped first.
    """

    def __init__(self, path: Path, *, resume_step: int = 0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        truncate_log(path, resume_step)
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the OS."""
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def loss_table(path: Path) -> pd.DataFrame:
    """The train records of a log as a table: one row per logged step, one column per scalar."""
    import pandas as pd

    rows = [r for r in read_log(path) if r.get("kind") == "train"]
    if not rows:
        raise ValueError(f"{path}: no training records to plot")
    return pd.DataFrame(rows).drop(columns="kind").sort_values("step").reset_index(drop=True)


def loss_curve(path: Path) -> tuple[Figure, pd.DataFrame]:
    """Draw the loss terms and the learning rates against the optimizer step from a training log.

    Args:
        path: the JSON-lines log written by the trainer.

    Returns:
        The figure (left: every column whose name starts with "loss"; right: ``lr/<group>``) and its plot table
        (`loss_table`).
    """
    from matplotlib.figure import Figure

    from vlstudy.plotting import use_cjk_font

    use_cjk_font()
    table = loss_table(path)
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax_loss, ax_lr = fig.subplots(1, 2)
    for column in [c for c in table.columns if c.startswith("loss")]:
        ax_loss.plot(table["step"], table[column], label=column)
    ax_loss.set(xlabel="优化步 (optimizer step)", ylabel="损失 (loss)", title="训练损失 (training loss)")
    ax_loss.legend()
    for column in [c for c in table.columns if c.startswith("lr/")]:
        ax_lr.plot(table["step"], table[column], label=column.removeprefix("lr/"))
    ax_lr.set(xlabel="优化步 (optimizer step)", ylabel="学习率 (learning rate)", title="学习率 (learning rate)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax_lr.legend()
    return fig, table
