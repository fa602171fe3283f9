"""Analysis of the human evaluation (stage ``human_eval``): Youku-mPLUG Fig. 5 and Panda-70M's preference study.

Input is the long ratings table (rater, item_id, model, grade, best, simulated) that :mod:`~.ratings` imports
from the rating page or :mod:`~.simulate` draws. Outputs:

- grade shares per model, the paper's Fig. 5 stacked bars (:func:`grade_distribution`,
  :func:`plot_grade_distribution`);
- mean score per model with a 95% bootstrap interval (:func:`mean_scores`). Scores are A=3, B=2, C=1, D=0, so a
  score counts the grade steps above "irrelevant or invalid" and 0 is a useless answer. A model's per-item score
  is the mean over raters; the interval resamples *items* (percentile method, ``scipy.stats.bootstrap``);
- pairwise paired tests between models on the per-item scores: Wilcoxon signed-rank (``scipy.stats.wilcoxon``,
  zero differences dropped) with Holm's correction over all pairs (``statsmodels``) (:func:`pairwise_tests`);
- inter-rater agreement on the (item, model) responses: Fleiss' kappa (``statsmodels``, nominal, responses rated
  by every rater) and Krippendorff's alpha (``krippendorff``, ordinal, missing ratings allowed) (:func:`agreement`);
- preference ratios, as in Panda-70M's user study of its teacher captions: per item, the share of raters who
  picked each model's response as the best; a model's ratio is the mean over items, with a bootstrap interval
  over items (:func:`preference_ratios`);
- Spearman correlation between the human score of each (item, model) response and an automatic caption metric
  of the same response supplied by the caller (:func:`metric_correlations`).

Every result table has a ``panel`` column ("simulated raters" or "human raters") so that a figure drawn later
from the CSV still knows; titles go through :func:`titled`, which appends "(simulated raters)".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from statsmodels.stats.multitest import multipletests

from vlstudy.humaneval.protocol import GRADE_LABELS, GRADES
from vlstudy.humaneval.ratings import HUMAN_PANEL, LONG_COLUMNS, read_ratings
from vlstudy.humaneval.simulate import SIMULATED_PANEL, SimulationConfig, simulate_panel, simulated_metric
from vlstudy.metrics.bootstrap import check_n_boot

__all__ = ["SCORES", "HumanEvalConfig", "HumanEvalReport", "panel_name", "titled", "load_panel",
           "grade_distribution", "plot_grade_distribution", "item_scores", "mean_scores", "pairwise_tests",
           "agreement", "preference_ratios", "metric_correlations", "analyse"]

SCORES: dict[str, int] = {"A": 3, "B": 2, "C": 1, "D": 0}
"""Grade → score: the number of grade steps above D (irrelevant or invalid)."""


@dataclass
class HumanEvalConfig:
    """Params of the ``human_eval`` stage.

    Attributes:
        seed: seeds the simulated panel and the bootstrap.
        ratings: ratings CSV files exported by the rating page. Empty: the SIMULATED panel of ``simulation``.
        package: the rating package folder the ratings belong to (required with ``ratings``).
        key: its blinding key (required with ``ratings``).
        metrics: optional CSV with columns item_id, model and one column per automatic metric of each response.
        metric_columns: the metric columns to correlate with the human scores; empty: every column of the
            metrics table except item_id and model. On the simulated panel, when ``metrics`` is not given, a
            simulated metric is used.
        n_boot: bootstrap resamples.
        confidence: level of the bootstrap intervals.
        alpha: family-wise error rate of the Holm-corrected pairwise tests.
        simulation: the simulated panel (used when ``ratings`` is empty).
    """

    seed: int = 0
    ratings: list[str] = field(default_factory=list)
    package: str | None = None
    key: str | None = None
    metrics: str | None = None
    metric_columns: list[str] = field(default_factory=list)
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


def panel_name(ratings: pd.DataFrame) -> str:
    """"simulated raters" when any rating is simulated, else "human raters"."""
    return SIMULATED_PANEL if ratings["simulated"].any() else HUMAN_PANEL


def titled(text: str, panel: str) -> str:
    """A figure or table title; a simulated panel's carries " (simulated raters)"."""
    return f"{text} ({SIMULATED_PANEL})" if panel == SIMULATED_PANEL else text


def load_panel(config: HumanEvalConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The ratings to analyse and the automatic metrics to correlate (None when there are none).

    With ``config.ratings`` empty this is the SIMULATED panel and its simulated metric (unless ``config.metrics``
    names a file); otherwise the CSVs are read, validated and de-blinded with the package and key.
    """
    metrics = pd.read_csv(config.metrics, dtype={"item_id": str, "model": str}) if config.metrics else None
    if config.ratings:
        return read_ratings(config.ratings, config.package, config.key), metrics
    panel = simulate_panel(config.simulation, rng)
    return panel.ratings, metrics if metrics is not None else simulated_metric(panel, rng)


def _models(ratings: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(ratings["model"]))


def _graded(ratings: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry a grade, with its score."""
    missing = [c for c in LONG_COLUMNS if c not in ratings.columns]
    if missing:
        raise KeyError(f"ratings table lacks column(s) {missing}")
    graded = ratings[ratings["grade"].notna()]
    return graded.assign(score=graded["grade"].map(SCORES))


def grade_distribution(ratings: pd.DataFrame) -> pd.DataFrame:
    """Share of each grade per model (Fig. 5): the plot table of :func:`plot_grade_distribution`.

    Returns:
        One row per (model, grade): model, grade, label (Chinese), count, share (sums to 1 per model), panel.
    """
    graded = _graded(ratings)
    counts = pd.crosstab(graded["model"], graded["grade"]).reindex(index=_models(ratings), columns=list(GRADES),
                                                                   fill_value=0)
    table = counts.stack().rename("count").reset_index()
    table["share"] = table["count"] / table.groupby("model")["count"].transform("sum")
    table.insert(2, "label", table["grade"].map(lambda g: f"{g} {GRADE_LABELS[g]}"))
    table["panel"] = panel_name(ratings)
    return table


def plot_grade_distribution(table: pd.DataFrame):
    """Horizontal stacked bars of grade shares per model, as the paper's Fig. 5.

    Args:
        table: :func:`grade_distribution`'s table (or the CSV it was saved to).

    Returns:
        The matplotlib Figure; its title carries "(simulated raters)" when the table is simulated.
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
    ax.set_title(titled("零样本指令理解人工评测：等级分布", table["panel"].iloc[0]), pad=28)
    fig.tight_layout()
    return fig


def item_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean score over raters of each response: items × models (NaN where a model's response has no grade)."""
    graded = _graded(ratings)
    return graded.pivot_table(index="item_id", columns="model", values="score", aggfunc="mean").reindex(
        columns=_models(ratings))


def _bootstrap_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int,
                    confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampling its entries)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    res = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                          method="percentile", rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_scores(ratings: pd.DataFrame, rng: np.random.Generator, n_boot: int = 2000,
                confidence: float = 0.95) -> pd.DataFrame:
    """Mean score per model (A=3 … D=0) with a bootstrap interval over items.

    The interval reflects the sampling of items only; the raters are taken as fixed (with few raters, their
    leniency moves every model's mean together, which the paired tests cancel but this interval does not show).

    Returns:
        model, mean, ci_low, ci_high, n_items, n_ratings, panel; models in their order of appearance.
    """
    per_item = item_scores(ratings)
    counts = _graded(ratings).groupby("model").size()
    rows = []
    for model in per_item.columns:
        values = per_item[model].dropna().to_numpy()
        low, high = _bootstrap_mean(values, rng, n_boot, confidence)
        rows.append({"model": model, "mean": float(values.mean()), "ci_low": low, "ci_high": high,
                     "n_items": len(values), "n_ratings": int(counts[model])})
    return pd.DataFrame(rows).assign(panel=panel_name(ratings))


def pairwise_tests(ratings: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of models on per-item scores, Holm-corrected.

    Items are paired: only items with a score for both models count. When every difference is zero there is
    no evidence either way and the p-value is 1.

    Returns:
        model_a, model_b, n_items, mean_diff (a − b), statistic, p_value, p_holm, significant, panel.
    """
    per_item = item_scores(ratings)
    if per_item.shape[1] < 2:
        raise ValueError(f"pairwise tests need at least 2 models, the ratings have {list(per_item.columns)}")
    rows = []
    for a, b in itertools.combinations(per_item.columns, 2):
        pair = per_item[[a, b]].dropna()
        diff = (pair[a] - pair[b]).to_numpy()
        if np.any(diff != 0):
            res = stats.wilcoxon(pair[a], pair[b], zero_method="wilcox")
            statistic, p = float(res.statistic), float(res.pvalue)
        else:
            statistic, p = float("nan"), 1.0
        rows.append({"model_a": a, "model_b": b, "n_items": len(pair), "mean_diff": float(diff.mean()),
                     "statistic": statistic, "p_value": p})
    table = pd.DataFrame(rows)
    reject, p_holm, _, _ = multipletests(table["p_value"], alpha=alpha, method="holm")
    return table.assign(p_holm=p_holm, significant=reject, panel=panel_name(ratings))


def agreement(ratings: pd.DataFrame) -> dict[str, float | int | str]:
    """Inter-rater agreement on the grades of the (item, model) responses.

    Fleiss' kappa treats grades as nominal and needs the same number of ratings per response, so it uses the
    responses graded by every rater. Krippendorff's alpha uses the ordinal distance and every response graded
    by at least two raters. A coefficient without any such response is NaN.

    Returns:
        fleiss_kappa, n_units_kappa, krippendorff_alpha (ordinal), n_units_alpha, n_raters, panel.
    """
    by_unit = _graded(ratings).pivot_table(index=["item_id", "model"], columns="rater", values="score",
                                           aggfunc="first")                                 # (units, raters)
    n_raters = by_unit.shape[1]
    complete = by_unit.dropna() if n_raters >= 2 else by_unit.iloc[:0]
    pairable = by_unit[by_unit.notna().sum(axis=1) >= 2]
    kappa = alpha = float("nan")
    if len(complete):
        counts, _ = aggregate_raters(complete.to_numpy(dtype=int), n_cat=len(GRADES))       # (units, 4)
        kappa = float(fleiss_kappa(counts))
    if len(pairable):
        alpha = float(krippendorff.alpha(reliability_data=pairable.T.to_numpy(dtype=float),  # (raters, units)
                                         value_domain=sorted(SCORES.values()), level_of_measurement="ordinal"))
    return {"fleiss_kappa": kappa, "n_units_kappa": len(complete), "krippendorff_alpha": alpha,
            "n_units_alpha": len(pairable), "n_raters": n_raters, "panel": panel_name(ratings)}


def preference_ratios(ratings: pd.DataFrame, rng: np.random.Generator, n_boot: int = 2000,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Panda-70M style preference: how often each model's response was picked as the best one.

    Per item, a model's share is the fraction of the raters who picked a best response there that picked this
    model's; the ratio is the mean share over those items (ratios sum to 1 over models).

    Returns:
        model, ratio, ci_low, ci_high, n_items, panel.
    """
    picks = ratings[ratings["best"]]
    shares = pd.crosstab(picks["item_id"], picks["model"], normalize="index").reindex(
        columns=_models(ratings), fill_value=0.0)                                            # (items, models)
    rows = []
    for model in shares.columns:
        values = shares[model].to_numpy()
        low, high = _bootstrap_mean(values, rng, n_boot, confidence)
        rows.append({"model": model, "ratio": float(values.mean()) if len(values) else float("nan"),
                     "ci_low": low, "ci_high": high, "n_items": len(values)})
    return pd.DataFrame(rows).assign(panel=panel_name(ratings))


def metric_correlations(ratings: pd.DataFrame, metrics: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Spearman correlation between each response's human score and its automatic metric values.

    Args:
        ratings: the long ratings table.
        metrics: one row per response: item_id, model and the metric columns.
        columns: the metric columns to correlate.

    Returns:
        metric, spearman_rho, p_value, n (responses with both a human score and the metric), panel.
    """
    missing = [c for c in ("item_id", "model", *columns) if c not in metrics.columns]
    if missing:
        raise KeyError(f"metrics table lacks column(s) {missing}")
    human = item_scores(ratings).stack().rename("human_score").reset_index()
    merged = human.merge(metrics, on=["item_id", "model"], how="inner")
    rows = []
    for column in columns:
        pair = merged[["human_score", column]].dropna()
        res = stats.spearmanr(pair["human_score"], pair[column])
        rows.append({"metric": column, "spearman_rho": float(res.statistic), "p_value": float(res.pvalue),
                     "n": len(pair)})
    return pd.DataFrame(rows).assign(panel=panel_name(ratings))


@dataclass
class HumanEvalReport:
    """Every result of :func:`analyse`; tables are plot tables (one CSV each)."""

    panel: str
    distribution: pd.DataFrame
    scores: pd.DataFrame
    pairwise: pd.DataFrame
    agreement: dict
    preference: pd.DataFrame
    correlation: pd.DataFrame | None

    def metrics(self) -> dict:
        """Headline numbers for the stage's metrics JSON (``panel`` says whether raters were simulated)."""
        shares = self.distribution.pivot(index="model", columns="grade", values="share")
        out = {
            "panel": self.panel,
            "agreement": {k: v for k, v in self.agreement.items() if k != "panel"},
            "models": {
                row.model: {"mean_score": row.mean, "ci_low": row.ci_low, "ci_high": row.ci_high,
                            "n_items": row.n_items,
                            **{f"share_{g}": float(shares.loc[row.model, g]) for g in GRADES}}
                for row in self.scores.itertuples()
            },
            "preference": {row.model: row.ratio for row in self.preference.itertuples()},
            "pairwise_p_holm": {f"{row.model_a} vs {row.model_b}": row.p_holm
                                for row in self.pairwise.itertuples()},
        }
        if self.correlation is not None:
            out["spearman"] = {row.metric: row.spearman_rho for row in self.correlation.itertuples()}
        return out


def analyse(ratings: pd.DataFrame, config: HumanEvalConfig, rng: np.random.Generator,
            metrics: pd.DataFrame | None = None) -> HumanEvalReport:
    """Run every analysis on a ratings table.

    Args:
        ratings: the long table (real or simulated).
        config: bootstrap size, confidence, test level and the metric columns.
        rng: drives both bootstraps.
        metrics: per-response automatic metrics (item_id, model, …); the correlation is skipped when None.
            When ``config.metric_columns`` is empty, every column other than item_id and model is used.
    """
    correlation = None
    if metrics is not None:
        columns = config.metric_columns or [c for c in metrics.columns if c not in ("item_id", "model")]
        correlation = metric_correlations(ratings, metrics, columns)
    return HumanEvalReport(
        panel=panel_name(ratings),
        distribution=grade_distribution(ratings),
        scores=mean_scores(ratings, rng, config.n_boot, config.confidence),
        pairwise=pairwise_tests(ratings, config.alpha),
        agreement=agreement(ratings),
        preference=preference_ratios(ratings, rng, config.n_boot, config.confidence),
        correlation=correlation,
    )
