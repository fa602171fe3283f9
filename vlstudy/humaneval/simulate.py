"""A SIMULATED rater panel around the rubric's grades: the embedded default of the ``human_eval`` stage.

No human rated anything here. The panel starts from the rubric's grade of every (item, responder) answer
(:func:`vlstudy.humaneval.rubric.grade_responses`) — what the kit's own models answered, graded against
mini-Youku's truth — and lets simulated raters disagree with it, so that the agreement statistics (Fleiss'
kappa, Krippendorff's alpha, rubric-vs-rater agreement) have real disagreement to measure. Every table it
produces carries ``simulated = True`` and ``attrs["source"]``; every title made from it says "(simulated
raters)" (:func:`vlstudy.humaneval.scores.titled`). Real ratings (the rating page's exported CSV) replace it.

Rater model (an ordinal rater with leniency and noise, e.g. Johnson & Albert, *Ordinal Data Modeling*, 1999,
ch. 5): rater ``r`` perceives answer (item ``i``, responder ``m``) at

    z[r, i, m] = rubric_score[i, m] + leniency[r] + noise[r, i, m]

with the rubric score A=3 … D=0, leniency ~ N(0, leniency_sd²) (a lenient or strict rater, shared by all of
their ratings) and noise ~ N(0, noise_sd²) (each judgement). The rater's grade is ``z`` rounded to the nearest
score and clipped to 0..3; their best pick for an item is the responder with the largest ``z``. With both
spreads 0 every rater repeats the rubric; the larger ``noise_sd``, the lower the inter-rater agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from vlstudy.humaneval.protocol import GRADES

__all__ = ["SIMULATED_PANEL", "SimulationConfig", "simulate_panel", "expected_rater_score"]

SIMULATED_PANEL = "simulated raters"
_SCORE = {g: len(GRADES) - 1 - k for k, g in enumerate(GRADES)}  # A=3 … D=0


@dataclass
class SimulationConfig:
    """The simulated raters.

    Attributes:
        n_raters: raters; every rater grades every answer.
        leniency_sd: spread of the raters' leniency, in grade steps.
        noise_sd: spread of one judgement's noise, in grade steps (0.5: about a third of the grades one step
            off the rubric's).
    """

    n_raters: int = 3
    leniency_sd: float = 0.3
    noise_sd: float = 0.5

    def __post_init__(self):
        if self.n_raters < 1:
            raise ValueError(f"n_raters must be >= 1, got {self.n_raters}")
        for name in ("leniency_sd", "noise_sd"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def _score_matrix(rubric: pd.DataFrame) -> pd.DataFrame:
    """Rubric scores as items × responders; every item must be graded for every responder, with a grade A–D."""
    missing = [c for c in ("item_id", "model", "grade") if c not in rubric.columns]
    if missing:
        raise KeyError(f"rubric table lacks column(s) {missing}")
    bad = rubric[~rubric["grade"].isin(GRADES)]
    if len(bad):
        raise ValueError(f"rubric table: grade {bad['grade'].iloc[0]!r} of item {bad['item_id'].iloc[0]} "
                         f"(model {bad['model'].iloc[0]!r}) is not one of {', '.join(GRADES)}")
    dup = rubric.duplicated(["item_id", "model"])
    if dup.any():
        raise ValueError(f"rubric table: item {rubric['item_id'][dup].iloc[0]} graded twice for model "
                         f"{rubric['model'][dup].iloc[0]!r}")
    scores = rubric.assign(score=rubric["grade"].map(_SCORE)).pivot(index="item_id", columns="model", values="score")
    scores = scores.reindex(index=list(dict.fromkeys(rubric["item_id"])), columns=list(dict.fromkeys(rubric["model"])))
    if scores.isna().any().any():
        item, model = scores.stack(future_stack=True).loc[lambda s: s.isna()].index[0]
        raise ValueError(f"rubric table: no grade for item {item} and model {model!r}")
    return scores


def simulate_panel(rubric: pd.DataFrame, config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the SIMULATED panel's ratings of every answer the rubric graded (model in the module docstring).

    Args:
        rubric: one row per (item, responder) with ``item_id``, ``model``, ``grade`` (A–D), e.g. from
            :func:`~vlstudy.humaneval.rubric.grade_responses`; ``video_id`` and ``aspect`` are carried over.
        config: raters, leniency and noise.
        rng: the only source of randomness.

    Returns:
        The long ratings table (rater, item_id, model, grade, best, simulated=True, [video_id, aspect]), one row
        per rater and answer, raters outer, then items, then responders in the rubric's order.
    """
    scores = _score_matrix(rubric)                                                     # (I, M)
    n_r, (n_i, n_m) = config.n_raters, scores.shape
    leniency = rng.normal(0.0, config.leniency_sd, (n_r, 1, 1))                        # (R, 1, 1)
    z = scores.to_numpy(float)[None] + leniency + rng.normal(0.0, config.noise_sd, (n_r, n_i, n_m))  # (R, I, M)
    rated = np.clip(np.rint(z), 0, len(GRADES) - 1).astype(int)
    best = z == z.max(axis=2, keepdims=True)

    r_idx, i_idx, m_idx = np.meshgrid(np.arange(n_r), np.arange(n_i), np.arange(n_m), indexing="ij")
    ratings = pd.DataFrame({
        "rater": np.array([f"sim-rater-{r + 1}" for r in range(n_r)])[r_idx.ravel()],
        "item_id": scores.index.to_numpy()[i_idx.ravel()],
        "model": scores.columns.to_numpy()[m_idx.ravel()],
        "grade": np.asarray(GRADES)[len(GRADES) - 1 - rated.ravel()],
        "best": best.ravel(),
        "simulated": True,
    })
    for column in ("video_id", "aspect"):
        if column in rubric.columns:
            ratings[column] = ratings["item_id"].map(rubric.drop_duplicates("item_id").set_index("item_id")[column])
    ratings.attrs["source"] = (f"{SIMULATED_PANEL} (vlstudy.humaneval.simulate: {n_r} raters around the rubric's "
                               f"grades of {n_i} items)")
    return ratings


def expected_rater_score(grade: str, config: SimulationConfig) -> float:
    """The expected score a simulated rater gives an answer the rubric graded `grade`, over raters and noise.

    The rated score counts the half-steps ``k - 0.5`` (k = 1, 2, 3) that ``z ~ N(score, leniency_sd² +
    noise_sd²)`` exceeds, so its mean is ``sum_k P(z > k - 0.5)``; clipping pulls A down and D up.
    """
    sd = float(np.hypot(config.leniency_sd, config.noise_sd))
    cuts = np.arange(1, len(GRADES)) - 0.5
    if sd == 0:
        return float((_SCORE[grade] > cuts).sum())
    return float(norm.sf(cuts, loc=_SCORE[grade], scale=sd).sum())
