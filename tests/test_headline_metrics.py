"""`dvc metrics show` stays headline-only: the stage's pattern selection, the long table of every number, and the
committed metrics files themselves."""

import json
from pathlib import Path

import pandas as pd
import pytest

from vlstudy.report.headline import headline, long_table

ROOT = Path(__file__).resolve().parents[1]
IV = {"estimate": 20.0, "low": 15.0, "high": 25.0}


def test_headline_keeps_matching_subtrees_and_drops_the_rest():
    metrics = {"alpro": {"t2v_factual_R@1": IV, "t2v_factual_R@5": IV, "any2v_R@1": IV},
               "deme": {"t2v_intent_R@1": IV, "v2t_AvgR": 3.0},
               "findings": {"x": {"claim": "c", "holds": False}}, "n": 4}
    assert headline(metrics, ["*.t2v_*_R@1", "findings"]) == {
        "alpro": {"t2v_factual_R@1": IV}, "deme": {"t2v_intent_R@1": IV},
        "findings": {"x": {"claim": "c", "holds": False}}}


def test_headline_patterns_are_anchored_at_the_top_level():
    metrics = {"rubric": {"models": {"a": {"mean_score": 1.0, "share_A": 0.5}}},
               "raters": {"rubric": {"models": {"a": {"mean_score": 2.0}}}}}
    assert headline(metrics, ["rubric.models.*.mean_score"]) == {"rubric": {"models": {"a": {"mean_score": 1.0}}}}


def test_headline_without_patterns_is_an_error():
    with pytest.raises(ValueError, match="no patterns given"):
        headline({"a": 1}, [])


def test_long_table_holds_every_number_once():
    metrics = {"a": {"R@1": IV, "MeanR": {"estimate": 7.5}}, "n_items": 225, "verdict": "HOLDS"}
    table = long_table(metrics)
    assert table["metric"].tolist() == ["a.R@1", "a.MeanR", "n_items", "verdict"]
    assert table.iloc[0, 1:].tolist() == [20.0, 15.0, 25.0]
    assert table.iloc[1, 1] == 7.5 and pd.isna(table.iloc[1, 2]) and table.iloc[2, 1] == 225


def _leaves(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else key)
    else:
        yield path


@pytest.mark.parametrize("path", sorted((ROOT / "reports" / "metrics").glob("*.json")), ids=lambda p: p.stem)
def test_committed_metrics_files_hold_headline_numbers(path):
    """Each file's numbers outside its protocol and findings blocks fit a screen (the per-system dumps of VideoMind
    and Panda had 135-269; the full tables live in reports/figures/<stage>/all_metrics.csv)."""
    keys = [k for k in _leaves(json.loads(path.read_text(encoding="utf-8")))
            if not k.startswith(("protocol", "findings"))]
    assert len(keys) <= 80, f"{path.name}: {len(keys)} values; log the headline, save the rest with long_table"
