"""Designed VideoMind ceilings of mini-Youku: the scores of a perfect recogniser of the designed cues.

A layer's text is *consistent* with a video when every cue the text states (the evidence table of
:mod:`vlstudy.data.mini_youku.text`) holds for that video:

* factual: same class, scene shown or not, object shown or not, shape, motion, time of day;
* abstract: same class, and, when the abstract names the place, the same place phrase (scene shown or not);
* intent: same class, or only the same format group when the intent states the group's generic purpose.

These sets are nested for the three texts of one video (factual within abstract within intent), which is the
designed ordering of VideoMind's Tables 2 and 3. :func:`designed_layer_scores` scores text i for video j as
1 / m_i when they are consistent (m_i = the number of videos consistent with text i) and 0 otherwise: a
perfect recogniser that also knows how specific each text is (video -> text then ranks a video's specific
texts above vague ones). ``vlstudy.metrics.videomind_metrics`` of these scores gives the designed ceilings.
Videos a text cannot tell apart tie; ``videomind_metrics`` ranks ties pessimistically, so either keep them (the
floor of a perfect recogniser) or break them at random (add noise smaller than any gap, average a few draws)
for the expected ceiling.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from vlstudy.data.mini_youku.text import Cues, where
from vlstudy.data.mini_youku.world import CLASSES

__all__ = ["GROUND_TRUTH_COLUMNS", "designed_layer_scores"]

GROUND_TRUTH_COLUMNS = ("label", "scene_shown", "object_shown", "shape", "motion", "night", "abstract", "intent")
"""The ``ground_truth.csv`` columns the scores need."""

_PURPOSE = re.compile(r"旨在(.+)。$")


def _bool(values: pd.Series) -> np.ndarray:
    """CSV booleans (True/False, or the strings "True"/"False") as a bool array."""
    return values.map(lambda v: v if isinstance(v, (bool, np.bool_)) else str(v) == "True").to_numpy(dtype=bool)


def designed_layer_scores(truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """Scores of a perfect recogniser for VideoMind's layers on a set of mini-Youku videos.

    Args:
        truth: one row per video (``ground_truth.csv`` rows, e.g. of one test split) with
            :data:`GROUND_TRUTH_COLUMNS`.

    Returns:
        ``factual``, ``abstract``, ``intent`` -> (V, V) scores: [i, j] = 1 / m_i when video i's text of the layer
        is consistent with video j (m_i such videos, i itself among them), else 0; each row sums to 1.

    Raises:
        ValueError: a missing column, or an intent that does not end in "旨在[意图]。" (naming the row).
    """
    missing = [c for c in GROUND_TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"ground truth lacks column(s) {missing}; need {list(GROUND_TRUTH_COLUMNS)}")
    label = truth["label"].to_numpy(dtype=np.int64)
    scene_shown, object_shown, night = (_bool(truth[c]) for c in ("scene_shown", "object_shown", "night"))
    shape, motion = truth["shape"].astype(str).to_numpy(), truth["motion"].astype(str).to_numpy()
    places = [where(Cues(int(lab), bool(s), bool(o), False, False, sh, mo, bool(n)))
              for lab, s, o, sh, mo, n in zip(label, scene_shown, object_shown, shape, motion, night)]
    place_named = np.array([p in a for p, a in zip(places, truth["abstract"].astype(str))])
    group_purpose = np.empty(len(truth), dtype=bool)
    for row, (lab, intent) in enumerate(zip(label, truth["intent"].astype(str))):
        found = _PURPOSE.search(intent)
        if found is None:
            raise ValueError(f"ground truth row {row}: intent {intent!r} does not end in 旨在[意图]。")
        group_purpose[row] = found.group(1) != CLASSES[lab].intent
    group = np.array([CLASSES[lab].group for lab in label])

    def same(values: np.ndarray) -> np.ndarray:  # (V,) -> (V, V)
        return values[:, None] == values[None, :]

    visible = same(label) & same(scene_shown) & same(object_shown) & same(shape) & same(motion) & same(night)
    consistent = {
        "factual": visible,
        "abstract": same(label) & (~place_named[:, None] | same(scene_shown)),
        "intent": np.where(group_purpose[:, None], same(group), same(label)),
    }
    return {layer: c / c.sum(axis=1, keepdims=True) for layer, c in consistent.items()}
