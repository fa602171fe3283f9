"""Grade statistics of a ratings table: Youku-mPLUG Fig. 5 shares, mean scores, paired tests, ordered claims.

Input is the long ratings table (rater, item_id, model, grade, best, simulated) that
:mod:`~vlstudy.humaneval.ratings` imports from the rating page, :mod:`~vlstudy.humaneval.simulate` draws around
the rubric, or :func:`vlstudy.humaneval.rubric.as_ratings` makes of the rubric's own grades. "model" is the
responder. Outputs:

- grade shares per responder, the paper's Fig. 5 stacked bars (:func:`grade_distribution`);
- mean score per responder with a 95% bootstrap interval (:func:`mean_scores`). Scores are A=3, B=2, C=1, D=0,
  so a score counts the grade steps above "irrelevant or invalid". A responder's per-item score is the mean
  over raters; the interval resamples *items* (percentile method, ``scipy.stats.bootstrap``);
- paired tests between every two responders on the per-item scores: Wilcoxon signed-rank
  (``scipy.stats.wilcoxon``, zero differences dropped) with Holm's correction over all pairs (``statsmodels``)
  (:func:`pairwise_tests`);
- an ordered claim "X > Y" (:func:`ordered_comparison`): HOLDS when X's mean per-item score is higher and the
  pair's Holm-corrected p-value is below alpha, else FAILS; reported with the mean paired difference and its
  bootstrap interval over items;
- preference ratios, as in Panda-70M's user study: per item, the share of raters who picked each responder's
  answer as the best; a responder's ratio is the mean over items, with a bootstrap interval
  (:func:`preference_ratios`).

Every table has a ``panel`` column ("simulated raters", "human raters" or "rubric") so that a figure drawn
later from the CSV still knows; titles go through :func:`titled`, which appends "(simulated raters)".
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from vlstudy.humaneval.protocol import GRADE_LABELS, GRADES
from vlstudy.humaneval.ratings import HUMAN_PANEL, LONG_COLUMNS
from vlstudy.humaneval.simulate import SIMULATED_PANEL

__all__ = ["SCORES", "VERDICTS", "panel_name", "titled", "graded_scores", "grade_distribution", "item_scores",
           "bootstrap_mean", "mean_scores", "pairwise_tests", "ordered_comparison", "preference_ratios"]

SCORES: dict[str, int] = {"A": 3, "B": 2, "C": 1, "D": 0}
"""Grade → score: the number of grade steps above D (irrelevant or invalid)."""

VERDICTS = ("HOLDS", "FAILS")


def panel_name(ratings: pd.DataFrame) -> str:
    """The table's ``panel`` column if it has one (the rubric's), else "simulated raters" when any rating is
    simulated, else "human raters"."""
    if "panel" in ratings.columns and len(ratings):
        return str(ratings["panel"].iloc[0])
    return SIMULATED_PANEL if ratings["simulated"].any() else HUMAN_PANEL


def titled(text: str, panel: str) -> str:
    """A figure or table title; a simulated panel's carries " (simulated raters)"."""
    return f"{text} ({SIMULATED_PANEL})" if panel == SIMULATED_PANEL else text


def _models(ratings: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(ratings["model"]))


def graded_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry a grade, with its ``score``."""
    missing = [c for c in LONG_COLUMNS if c not in ratings.columns]
    if missing:
        raise KeyError(f"ratings table lacks column(s) {missing}")
    graded = ratings[ratings["grade"].notna()]
    return graded.assign(score=graded["grade"].map(SCORES))


def grade_distribution(ratings: pd.DataFrame) -> pd.DataFrame:
    """Share of each grade per responder (Fig. 5): the plot table of ``analysis.plot_grade_distribution``.

    Returns:
        One row per (model, grade): model, grade, label (Chinese), count, share (sums to 1 per model), panel.
    """
    graded = graded_scores(ratings)
    counts = pd.crosstab(graded["model"], graded["grade"]).reindex(index=_models(ratings), columns=list(GRADES),
                                                                   fill_value=0)
    table = counts.stack().rename("count").reset_index()
    table["share"] = table["count"] / table.groupby("model")["count"].transform("sum")
    table.insert(2, "label", table["grade"].map(lambda g: f"{g} {GRADE_LABELS[g]}"))
    table["panel"] = panel_name(ratings)
    return table


def item_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean score over raters of each answer: items × models (NaN where a model's answer has no grade)."""
    return graded_scores(ratings).pivot_table(index="item_id", columns="model", values="score",
                                              aggfunc="mean").reindex(columns=_models(ratings))


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int,
                   confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampling its entries); NaN below 2 values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    res = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                          method="percentile", rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_scores(ratings: pd.DataFrame, rng: np.random.Generator, n_boot: int = 2000,
                confidence: float = 0.95) -> pd.DataFrame:
    """Mean score per responder (A=3 … D=0) with a bootstrap interval over items.

    The interval reflects the sampling of items only; the raters are taken as fixed (with few raters, their
    leniency moves every responder's mean together, which the paired tests cancel but this interval does not).

    Returns:
        model, mean, ci_low, ci_high, n_items, n_ratings, panel; models in their order of appearance.
    """
    per_item = item_scores(ratings)
    counts = graded_scores(ratings).groupby("model").size()
    rows = []
    for model in per_item.columns:
        values = per_item[model].dropna().to_numpy()
        low, high = bootstrap_mean(values, rng, n_boot, confidence)
        rows.append({"model": model, "mean": float(values.mean()), "ci_low": low, "ci_high": high,
                     "n_items": len(values), "n_ratings": int(counts[model])})
    return pd.DataFrame(rows).assign(panel=panel_name(ratings))


def pairwise_tests(ratings: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of responders on per-item scores, Holm-corrected.

    Items are paired: only items with a score for both count. When every difference is zero there is no
    evidence either way and the p-value is 1.

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


def ordered_comparison(ratings: pd.DataFrame, better: str, worse: str, rng: np.random.Generator,
                       n_boot: int = 2000, confidence: float = 0.95, alpha: float = 0.05,
                       pairwise: pd.DataFrame | None = None) -> dict:
    """Test the claim "`better` > `worse`" (e.g. the pre-trained responder beats the one without pre-training).

    Args:
        ratings: the long table.
        better, worse: two responders of the table.
        rng: the bootstrap of the paired difference.
        n_boot, confidence: the interval.
        alpha: the family-wise level the Holm-corrected p-value is compared with.
        pairwise: :func:`pairwise_tests` of the same ratings (computed when None); its Holm family is every
            pair of responders, so several claims on one table share one correction.

    Returns:
        claim, better, worse, n_items, mean_diff (better − worse, over items scored for both), ci_low, ci_high,
        p_holm, verdict (HOLDS when mean_diff > 0 and p_holm < alpha, else FAILS), panel.

    Raises:
        KeyError: a responder that is not in the table.
    """
    per_item = item_scores(ratings)
    for name in (better, worse):
        if name not in per_item.columns:
            raise KeyError(f"claim {better} > {worse}: no responder {name!r} in the ratings "
                           f"(responders: {', '.join(per_item.columns)})")
    pairwise = pairwise_tests(ratings, alpha) if pairwise is None else pairwise
    pair = pairwise[((pairwise["model_a"] == better) & (pairwise["model_b"] == worse))
                    | ((pairwise["model_a"] == worse) & (pairwise["model_b"] == better))]
    p_holm = float(pair["p_holm"].iloc[0])
    diff = (per_item[better] - per_item[worse]).dropna().to_numpy()
    low, high = bootstrap_mean(diff, rng, n_boot, confidence)
    mean = float(diff.mean()) if len(diff) else float("nan")
    return {"claim": f"{better} > {worse}", "better": better, "worse": worse, "n_items": len(diff),
            "mean_diff": mean, "ci_low": low, "ci_high": high, "p_holm": p_holm,
            "verdict": VERDICTS[0] if mean > 0 and p_holm < alpha else VERDICTS[1], "panel": panel_name(ratings)}


def preference_ratios(ratings: pd.DataFrame, rng: np.random.Generator, n_boot: int = 2000,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Panda-70M style preference: how often each responder's answer was picked as the best one.

    Per item, a responder's share is the fraction of the raters who picked a best answer there that picked
    this responder's; the ratio is the mean share over those items (ratios sum to 1 over responders).

    Returns:
        model, ratio, ci_low, ci_high, n_items, panel.
    """
    picks = ratings[ratings["best"].astype(bool)]
    shares = pd.crosstab(picks["item_id"], picks["model"], normalize="index").reindex(
        columns=_models(ratings), fill_value=0.0)                                            # (items, models)
    rows = []
    for model in shares.columns:
        values = shares[model].to_numpy()
        low, high = bootstrap_mean(values, rng, n_boot, confidence)
        rows.append({"model": model, "ratio": float(values.mean()) if len(values) else float("nan"),
                     "ci_low": low, "ci_high": high, "n_items": len(values)})
    return pd.DataFrame(rows).assign(panel=panel_name(ratings))
