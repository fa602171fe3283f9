"""benchmarks/human_eval_wording.py: the training wording keeps every item but its instruction, and the paired
difference is the mean over items of the score difference (the README quotes the script's figures)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy.humaneval.instructions import GROUNDED_ASPECTS, GroundedItem, templates

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "human_eval_wording.py"
_spec = importlib.util.spec_from_file_location("human_eval_wording", SCRIPT)
bench = sys.modules["human_eval_wording"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_train_wording_changes_only_the_instruction():
    items = [GroundedItem(item_id=f"q{i}", video_id=f"v{i}", aspect=aspect, instruction=templates(aspect)[0],
                          reference="参考")
             for i, aspect in enumerate(GROUNDED_ASPECTS)]
    reworded = bench.with_train_wording(items, seed=0)
    for before, after in zip(items, reworded):
        assert after.instruction in templates(before.aspect, "train")
        assert dataclasses.replace(after, instruction=before.instruction) == before
    assert bench.with_train_wording(items, seed=0) == reworded  # seeded


def test_paired_difference_is_the_mean_score_difference_over_items():
    grades = pd.DataFrame({"item_id": ["q1", "q2", "q3"] * 2, "model": ["a"] * 3 + ["b"] * 3,
                           "grade": ["A", "C", "D", "C", "C", "B"]})  # a: 3, 1, 0; b: 1, 1, 2
    d, low, high = bench.paired_difference(grades, "a", "b", n_boot=2000, seed=0)
    assert d == np.mean([3 - 1, 1 - 1, 0 - 2])
    assert -2 <= low < d < high <= 2  # bootstrap means of the item differences (2, 0, -2)
