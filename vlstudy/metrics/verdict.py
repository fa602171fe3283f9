"""A paired comparison's verdict in words, for the findings' notes: which way the difference went and whether its
95 % interval excludes zero. Shared by the findings decided across matrix cells (`vlstudy.report.findings`), the
modality ablation (`vlstudy.report.ablation`) and the stages that decide their own claims (Panda-70M's)."""

from __future__ import annotations

__all__ = ["verdict_reason"]


def verdict_reason(difference: float, low: float, high: float, lower_is_better: bool = False) -> str:
    """Why a paired comparison holds or fails, in words: which way the difference goes and whether its 95 %
    interval excludes zero (`difference`, `low`, `high` are "claimed better − claimed worse")."""
    sign = -1 if lower_is_better else 1
    difference, low, high = sign * difference, *sorted((sign * low, sign * high))
    if low > 0:
        return "holds: the paired 95 % interval excludes 0"
    if high < 0:
        return "the other way round, with a paired 95 % interval that excludes 0"
    if difference < 0:
        return "the other way round, but the paired 95 % interval includes 0"
    if difference == 0:
        return "no difference: the paired 95 % interval includes 0"
    return "the claimed way, but the paired 95 % interval includes 0"
