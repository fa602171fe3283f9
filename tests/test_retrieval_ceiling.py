"""benchmarks/retrieval_ceiling.py: its consistency rule is what mini-Youku's captions state, and its ceiling is
the mean of 1 / m on known inputs (the README quotes the script's figures)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy.data.mini_youku.text import Cues, caption

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "retrieval_ceiling.py"
_spec = importlib.util.spec_from_file_location("retrieval_ceiling", SCRIPT)
bench = sys.modules["retrieval_ceiling"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def captions_of(cues: Cues, draws: int = 300) -> set[str]:
    """Every caption the generator writes for `cues` (templates and motion phrases drawn at random)."""
    return {caption(cues, np.random.default_rng(seed)) for seed in range(draws)}


def test_captions_state_exactly_the_facts_the_ceiling_compares():
    base = Cues(label=0, scene_shown=True, object_shown=True, group_cue=False, keyword_cue=False, shape="ring",
                motion="orbit", night=False)
    same = captions_of(base)
    assert captions_of(Cues(**{**vars(base), "night": True})) == same  # the time of day is never stated
    assert captions_of(Cues(**{**vars(base), "group_cue": True, "keyword_cue": True})) == same  # title cues: not in it
    for fact, other in (("label", 1), ("scene_shown", False), ("object_shown", False), ("shape", "disc"),
                        ("motion", "bounce")):
        assert not captions_of(Cues(**{**vars(base), fact: other})) & same, fact  # each compared fact is stated
    assert set(bench.CAPTION_FACTS) == {"label", "scene_shown", "object_shown", "shape", "motion"}


def test_consistency_and_ceiling_on_known_videos():
    truth = pd.DataFrame({"label": [0, 0, 0, 1], "scene_shown": ["True", "True", "True", "True"],
                          "object_shown": [True, True, True, False], "shape": ["ring", "ring", "ring", "disc"],
                          "motion": ["orbit", "orbit", "slide", "bounce"]})
    match = bench.consistent(truth, bench.CAPTION_FACTS)
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(match, expected)
    summary = bench.ceiling(match, np.random.default_rng(0), draws=400)
    assert summary["t2v_R@1 (closed form)"] == 100 * (1 / 2 + 1 / 2 + 1 + 1) / 4
    assert abs(summary["t2v_R@1"] - 75.0) < 4  # random tie-breaks: the two twins are each first half the time
    assert summary["t2v_R@5"] == 100.0 and summary["consistent videos per caption"] == 1.5
    by_class = bench.consistent(truth, ("label",))
    assert by_class.sum() == 9 + 1
