"""The params dataclass of every pipeline stage, by stage name.

One explicit table (no registration by import side effects): ``vlstudy run <stage>`` checks the stage's
``params.yaml`` section against its dataclass before a kernel starts, and the stage notebook builds the same
dataclass from its parameters. The component configs inside each stage dataclass live with their components.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STAGE_PARAMS", "ReportParams"]


@dataclass
class ReportParams:
    """``report``: the front page gathering every stage's metrics, tables and figures."""

    title: str = "vlstudy — Youku-mPLUG study report"


STAGE_PARAMS: dict[str, type] = {
    "report": ReportParams,
}
