"""A SIMULATED rater panel with known truth: the embedded default of the ``human_eval`` stage.

No human rated anything here. The panel exists so the analysis runs end to end on a laptop and so tests can
check that the analysis recovers a truth that is known by construction. Every table it produces carries the
column ``simulated = True`` and ``attrs["source"]``; every title made from it says "(simulated raters)"
(:func:`vlstudy.humaneval.analysis.titled`). Real ratings replace it by pointing the stage params at the CSV
files the rating page exports.

Generative model (an ordinal-probit rater model, e.g. Johnson & Albert, *Ordinal Data Modeling*, 1999): rater
``r`` perceives response (item ``i``, model ``m``) at the latent value

    z[r, i, m] = quality[m] - difficulty[i] + response[i, m] + bias[r] + noise[r, i, m]

with difficulty ~ N(0, item_difficulty_sd²), response ~ N(0, response_sd²) (how good this particular answer is),
bias ~ N(0, rater_bias_sd²) (a lenient or strict rater) and noise ~ N(0, rater_noise_sd²). The grade counts the
thresholds that ``z`` exceeds: 3 → A, 2 → B, 1 → C, 0 → D. The rater's best pick for an item is the model with
the largest ``z``. Smaller rater noise means higher inter-rater agreement; the expected score of a model is
:func:`expected_scores` in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from vlstudy.humaneval.protocol import GRADES

__all__ = ["SIMULATED_PANEL", "SimulationConfig", "SimulatedPanel", "simulate_panel", "expected_scores",
           "simulated_metric"]

SIMULATED_PANEL = "simulated raters"


@dataclass
class SimulationConfig:
    """The simulated panel's truth and noise.

    Attributes:
        model_quality: model name → latent quality (higher is better); the order here is the true ranking.
        n_items: instructions (items) rated.
        n_raters: raters; every rater grades every response.
        thresholds: increasing latent cut points D|C, C|B, B|A.
        item_difficulty_sd: spread of item difficulty (shared by all models and raters).
        response_sd: spread of the quality of one model's answer to one item (shared by raters).
        rater_bias_sd: spread of rater leniency.
        rater_noise_sd: a rater's per-judgement noise; lower means more agreement.
    """

    model_quality: dict[str, float] = field(default_factory=lambda: {"strong": 1.0, "medium": 0.3, "weak": -0.5})
    n_items: int = 65
    n_raters: int = 3
    thresholds: tuple[float, float, float] = (-1.0, 0.0, 1.0)
    item_difficulty_sd: float = 0.5
    response_sd: float = 0.5
    rater_bias_sd: float = 0.2
    rater_noise_sd: float = 0.5

    def __post_init__(self):
        if len(self.model_quality) < 2:
            raise ValueError(f"model_quality needs at least 2 models, got {list(self.model_quality)}")
        if self.n_items < 2 or self.n_raters < 1:
            raise ValueError(f"need n_items >= 2 and n_raters >= 1, got {self.n_items} and {self.n_raters}")
        if list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"thresholds must increase, got {list(self.thresholds)}")
        for name in ("item_difficulty_sd", "response_sd", "rater_bias_sd", "rater_noise_sd"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class SimulatedPanel:
    """A simulated panel's ratings and the truth behind them.

    Attributes:
        ratings: the long table (rater, item_id, model, grade, best, simulated=True), one row per rater and
            response; ``attrs["source"]`` says it is simulated.
        response_quality: the true quality of every response, columns item_id, model, quality
            (``quality[m] - difficulty[i] + response[i, m]``, before any rater).
    """

    ratings: pd.DataFrame
    response_quality: pd.DataFrame


def simulate_panel(config: SimulationConfig, rng: np.random.Generator) -> SimulatedPanel:
    """Draw a simulated panel (see the module docstring for the model)."""
    models = list(config.model_quality)
    n_i, n_m, n_r = config.n_items, len(models), config.n_raters
    item_ids = [f"q{i + 1:03d}" for i in range(n_i)]
    raters = [f"sim-rater-{r + 1}" for r in range(n_r)]

    quality = (np.array([config.model_quality[m] for m in models])[None, :]
               - rng.normal(0.0, config.item_difficulty_sd, (n_i, 1))
               + rng.normal(0.0, config.response_sd, (n_i, n_m)))                          # (I, M)
    bias = rng.normal(0.0, config.rater_bias_sd, (n_r, 1, 1))                             # (R, 1, 1)
    z = quality[None] + bias + rng.normal(0.0, config.rater_noise_sd, (n_r, n_i, n_m))    # (R, I, M)
    exceeded = (z[..., None] > np.asarray(config.thresholds)).sum(-1)                     # (R, I, M) in 0..3
    grades = np.asarray(GRADES)[len(GRADES) - 1 - exceeded]
    best = z == z.max(axis=2, keepdims=True)

    r_idx, i_idx, m_idx = np.meshgrid(np.arange(n_r), np.arange(n_i), np.arange(n_m), indexing="ij")
    ratings = pd.DataFrame({
        "rater": np.asarray(raters)[r_idx.ravel()],
        "item_id": np.asarray(item_ids)[i_idx.ravel()],
        "model": np.asarray(models)[m_idx.ravel()],
        "grade": grades.ravel(),
        "best": best.ravel(),
        "simulated": True,
    })
    ratings.attrs["source"] = f"{SIMULATED_PANEL} (vlstudy.humaneval.simulate: {n_r} raters, {n_i} items)"
    truth = pd.DataFrame({
        "item_id": np.repeat(item_ids, n_m),
        "model": np.tile(models, n_i),
        "quality": quality.ravel(),
    })
    return SimulatedPanel(ratings, truth)


def expected_scores(config: SimulationConfig) -> dict[str, float]:
    """Each model's expected score (A=3 … D=0) over items and raters: the truth a mean score estimates.

    The score is the number of thresholds exceeded, so its mean is ``sum_k P(z > t_k)`` with
    ``z ~ N(quality[m], sd²)`` and ``sd²`` the sum of the four variances.
    """
    sd = float(np.sqrt(config.item_difficulty_sd ** 2 + config.response_sd ** 2 + config.rater_bias_sd ** 2
                       + config.rater_noise_sd ** 2))
    return {m: float(norm.sf(np.asarray(config.thresholds), loc=q, scale=sd).sum())
            for m, q in config.model_quality.items()}


def simulated_metric(panel: SimulatedPanel, rng: np.random.Generator, noise_sd: float = 0.5,
                     name: str = "simulated_metric") -> pd.DataFrame:
    """A SIMULATED automatic metric per response: the true response quality plus Gaussian noise.

    Stands in for a caption metric (e.g. CIDEr of each response) so the correlation analysis has an input on
    the simulated panel; its correlation with the human scores is positive by construction.

    Returns:
        Columns item_id, model and ``name``.
    """
    truth = panel.response_quality
    return pd.DataFrame({"item_id": truth["item_id"], "model": truth["model"],
                         name: truth["quality"].to_numpy() + rng.normal(0.0, noise_sd, len(truth))})
