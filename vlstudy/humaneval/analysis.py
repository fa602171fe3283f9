"""Analysis of the human evaluation (stage ``human_eval``): Youku-mPLUG Fig. 5 on the kit's own responders.

Youku-mPLUG (Xu et al., 2023, §5.4, Fig. 5) shows, per model, the shares of the grades A–D that raters gave its
answers to 65 instructions. Here the answers are the kit's responders' answers to grounded instructions
(:mod:`~vlstudy.humaneval.instructions`), graded twice:

- by the deterministic rubric against mini-Youku's truth (:mod:`~vlstudy.humaneval.rubric`);
- by raters: real ones (the rating page's exported CSVs, :mod:`~vlstudy.humaneval.ratings`) or, when none are
  given, a SIMULATED panel that perturbs the rubric's grades (:mod:`~vlstudy.humaneval.simulate`), labelled so
  in every table and title.

:func:`analyse` computes, on the raters' grades, the Fig. 5 shares, mean scores with bootstrap intervals,
Holm-corrected Wilcoxon tests between responders, the configured ordered claims (HOLDS / FAILS), preference
ratios and inter-rater agreement (:mod:`~vlstudy.humaneval.scores`, :mod:`~vlstudy.humaneval.agreement`); with
the rubric's grades also the rubric's own shares and mean scores and its agreement with the raters; with
automatic metrics of the answers (BLEU-4, CIDEr) their correlation with the raters' scores. A real-ratings table
and a simulated one give tables with the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlstudy.humaneval.agreement import agreement, metric_correlations, rubric_agreement
from vlstudy.humaneval.protocol import GRADE_LABELS, GRADES
from vlstudy.humaneval.ratings import read_ratings
from vlstudy.humaneval.rubric import RUBRIC_PANEL, as_ratings
from vlstudy.humaneval.scores import (
    grade_distribution,
    mean_scores,
    ordered_comparison,
    pairwise_tests,
    panel_name,
    preference_ratios,
    titled,
)
from vlstudy.humaneval.simulate import SimulationConfig, simulate_panel
from vlstudy.metrics.bootstrap import check_n_boot

__all__ = ["HumanEvalConfig", "HumanEvalReport", "load_panel", "plot_grade_distribution", "analyse"]


@dataclass
class HumanEvalConfig:
    """Params of the ``human_eval`` analysis.

    Attributes:
        seed: seeds the simulated panel and the bootstraps.
        ratings: ratings CSV files exported by the rating page. Empty: the SIMULATED panel of ``simulation``.
        package: the rating package folder the ratings belong to (required with ``ratings``).
        key: its blinding key (required with ``ratings``).
        metric_columns: the automatic metrics of each answer to correlate with the raters' scores; empty: every
            column of the metrics table except item_id and model.
        claims: ordered claims ``[better, worse]`` between responders, each tested by
            :func:`~vlstudy.humaneval.scores.ordered_comparison` (e.g. the pre-trained responder beats the one
            without pre-training, the paper's Fig. 5 finding).
        n_boot: bootstrap resamples.
        confidence: level of the bootstrap intervals.
        alpha: family-wise error rate of the Holm-corrected pairwise tests.
        simulation: the simulated raters (used when ``ratings`` is empty).
    """

    seed: int = 0
    ratings: list[str] = field(default_factory=list)
    package: str | None = None
    key: str | None = None
    metric_columns: list[str] = field(default_factory=list)
    claims: list[tuple[str, str]] = field(default_factory=list)
    n_boot: int = 2000
    confidence: float = 0.95
    alpha: float = 0.05
    simulation: SimulationConfig = field(default_factory=SimulationConfig)

    def __post_init__(self):
        if self.ratings and (not self.package or not self.key):
            raise ValueError("ratings need the package folder and the key file (set package and key)")
        if not 0 < self.confidence < 1 or not 0 < self.alpha < 1:
            raise ValueError(f"need 0 < confidence, alpha < 1, got {self.confidence}, {self.alpha}")
        check_n_boot(self.n_boot, self.confidence)  # the same floor as every interval of vlstudy.metrics
        same = [c for c in self.claims if c[0] == c[1]]
        if same:
            raise ValueError(f"claim {same[0][0]} > {same[0][1]} compares a responder with itself")


def load_panel(config: HumanEvalConfig, rubric: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The ratings to analyse: the real ratings CSVs (read, validated, de-blinded with the package and key) when
    ``config.ratings`` names any, else the SIMULATED panel drawn around `rubric` (the rubric's grades)."""
    if config.ratings:
        return read_ratings(config.ratings, config.package, config.key)
    return simulate_panel(rubric, config.simulation, rng)


def plot_grade_distribution(table: pd.DataFrame):
    """Horizontal stacked bars of grade shares per responder, as the paper's Fig. 5.

    Args:
        table: :func:`~vlstudy.humaneval.scores.grade_distribution`'s table (or the CSV it was saved to).

    Returns:
        The matplotlib Figure; its title carries "(simulated raters)" when the table is simulated and says
        "rubric" for the rubric's grades.
    """
    import matplotlib.pyplot as plt

    from vlstudy.plotting import use_cjk_font

    use_cjk_font()
    shares = table.pivot(index="model", columns="label", values="share")
    shares = shares.reindex(index=list(dict.fromkeys(table["model"]))[::-1],
                            columns=[f"{g} {GRADE_LABELS[g]}" for g in GRADES])
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(shares) + 1.6))
    colors = plt.get_cmap("RdYlGn_r")(np.linspace(0.1, 0.9, len(GRADES)))
    left = np.zeros(len(shares))
    for label, color in zip(shares.columns, colors):
        values = shares[label].to_numpy()
        bars = ax.barh(shares.index, values, left=left, color=color, label=label)
        ax.bar_label(bars, labels=[f"{v:.0%}" if v >= 0.06 else "" for v in values], label_type="center")
        left += values
    ax.set_xlim(0, 1)
    ax.set_xlabel("占比")
    ax.legend(ncols=len(GRADES), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    panel = table["panel"].iloc[0]
    title = "零样本指令理解评测：等级分布（评分规则）" if panel == RUBRIC_PANEL else "零样本指令理解人工评测：等级分布"
    ax.set_title(titled(title, panel), pad=28)
    fig.tight_layout()
    return fig


@dataclass
class HumanEvalReport:
    """Every result of :func:`analyse`; tables are plot tables (one CSV each). The rubric's results are None
    when no rubric was given, ``correlation`` when no metrics were."""

    panel: str
    distribution: pd.DataFrame
    scores: pd.DataFrame
    pairwise: pd.DataFrame
    comparisons: pd.DataFrame
    agreement: dict
    preference: pd.DataFrame
    correlation: pd.DataFrame | None = None
    rubric_distribution: pd.DataFrame | None = None
    rubric_scores: pd.DataFrame | None = None
    rubric_agreement: dict | None = None

    def metrics(self) -> dict:
        """Headline numbers for the stage's metrics JSON (``panel`` says whether raters were simulated)."""
        out = {
            "panel": self.panel,
            "agreement": {k: v for k, v in self.agreement.items() if k != "panel"},
            "models": _model_summary(self.scores, self.distribution),
            "preference": {row.model: row.ratio for row in self.preference.itertuples()},
            "pairwise_p_holm": {f"{row.model_a} vs {row.model_b}": row.p_holm for row in self.pairwise.itertuples()},
            "claims": {row.claim: {"verdict": row.verdict, "mean_diff": row.mean_diff, "ci_low": row.ci_low,
                                   "ci_high": row.ci_high, "p_holm": row.p_holm}
                       for row in self.comparisons.itertuples()},
        }
        if self.rubric_scores is not None:
            out["rubric"] = {"models": _model_summary(self.rubric_scores, self.rubric_distribution),
                             "agreement_with_raters": {k: v for k, v in self.rubric_agreement.items() if k != "panel"}}
        if self.correlation is not None:
            out["spearman"] = {row.metric: row.spearman_rho for row in self.correlation.itertuples()}
        return out


def _model_summary(scores: pd.DataFrame, distribution: pd.DataFrame) -> dict:
    shares = distribution.pivot(index="model", columns="grade", values="share")
    return {row.model: {"mean_score": row.mean, "ci_low": row.ci_low, "ci_high": row.ci_high, "n_items": row.n_items,
                        **{f"share_{g}": float(shares.loc[row.model, g]) for g in GRADES}}
            for row in scores.itertuples()}


_COMPARISON_COLUMNS = ("claim", "better", "worse", "n_items", "mean_diff", "ci_low", "ci_high", "p_holm", "verdict",
                       "panel")


def analyse(ratings: pd.DataFrame, config: HumanEvalConfig, rng: np.random.Generator,
            rubric: pd.DataFrame | None = None, metrics: pd.DataFrame | None = None) -> HumanEvalReport:
    """Run every analysis on a ratings table.

    Args:
        ratings: the long table (real or simulated).
        config: bootstrap size, confidence, test level, claims and the metric columns.
        rng: drives every bootstrap.
        rubric: the rubric's grade of each answer (``rubric.grade_responses``); its results are skipped when None.
        metrics: per-answer automatic metrics (item_id, model, …); the correlation is skipped when None. When
            ``config.metric_columns`` is empty, every column other than item_id and model is used.
    """
    pairwise = pairwise_tests(ratings, config.alpha)
    comparisons = pd.DataFrame([ordered_comparison(ratings, better, worse, rng, config.n_boot, config.confidence,
                                                   config.alpha, pairwise) for better, worse in config.claims],
                               columns=list(_COMPARISON_COLUMNS))
    report = HumanEvalReport(
        panel=panel_name(ratings),
        distribution=grade_distribution(ratings),
        scores=mean_scores(ratings, rng, config.n_boot, config.confidence),
        pairwise=pairwise,
        comparisons=comparisons,
        agreement=agreement(ratings),
        preference=preference_ratios(ratings, rng, config.n_boot, config.confidence),
    )
    if metrics is not None:
        columns = config.metric_columns or [c for c in metrics.columns if c not in ("item_id", "model")]
        report.correlation = metric_correlations(ratings, metrics, columns)
    if rubric is not None:
        graded = as_ratings(rubric)
        report.rubric_distribution = grade_distribution(graded)
        report.rubric_scores = mean_scores(graded, rng, config.n_boot, config.confidence)
        report.rubric_agreement = rubric_agreement(ratings, rubric)
    return report
