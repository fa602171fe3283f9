"""Agreement: between raters, between the rubric and the raters, and between raters and automatic metrics.

- inter-rater agreement on the (item, responder) answers (:func:`agreement`): Fleiss' kappa (``statsmodels``,
  nominal, answers rated by every rater) and Krippendorff's alpha (``krippendorff``, ordinal, missing ratings
  allowed);
- the rubric against the raters (:func:`rubric_agreement`): Cohen's kappa with quadratic weights
  (``statsmodels.stats.inter_rater.cohens_kappa``, Fleiss–Cohen weights) over every (rater, answer) grade
  paired with the rubric's grade of that answer, the share of exact agreement, and Spearman's rho between the
  rubric's score of an answer and the raters' mean score of it. On the SIMULATED panel this agreement is
  built in (its raters perturb the rubric) and only shows how much noise the panel has; on real ratings it
  measures how far the rubric can stand in for human graders;
- Spearman correlation between each answer's human score and automatic metrics of the same answer
  (:func:`metric_correlations`), e.g. sentence BLEU-4 and CIDEr against the item's reference answer
  (:func:`answer_metrics`: pycocoevalcap's scorers on the captioning protocol's normalisation, one token per CJK
  character; no METEOR, whose JVM start alone costs more than the whole analysis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import krippendorff
import numpy as np
import pandas as pd
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from scipy import stats
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from vlstudy.humaneval.instructions import GroundedItem
from vlstudy.humaneval.protocol import GRADES
from vlstudy.humaneval.scores import SCORES, graded_scores, item_scores, panel_name
from vlstudy.metrics.captioning import normalize_caption

__all__ = ["agreement", "rubric_agreement", "metric_correlations", "answer_metrics"]


def agreement(ratings: pd.DataFrame) -> dict[str, float | int | str]:
    """Inter-rater agreement on the grades of the (item, responder) answers.

    Fleiss' kappa treats grades as nominal and needs the same number of ratings per answer, so it uses the
    answers graded by every rater. Krippendorff's alpha uses the ordinal distance and every answer graded by at
    least two raters. A coefficient without any such answer is NaN.

    Returns:
        fleiss_kappa, n_units_kappa, krippendorff_alpha (ordinal), n_units_alpha, n_raters, panel.
    """
    by_unit = graded_scores(ratings).pivot_table(index=["item_id", "model"], columns="rater", values="score",
                                                 aggfunc="first")                           # (units, raters)
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


def rubric_agreement(ratings: pd.DataFrame, rubric: pd.DataFrame) -> dict[str, float | int | str]:
    """How well the rubric's grades agree with the raters' (see the module docstring).

    Args:
        ratings: the long ratings table (real or simulated).
        rubric: the rubric's grade per answer (item_id, model, grade), e.g. ``rubric.grade_responses``.

    Returns:
        weighted_kappa (quadratic), exact_agreement (share of ratings equal to the rubric's grade),
        spearman_rho and spearman_p (rubric score vs the raters' mean score per answer), n_ratings, n_answers,
        panel. NaN where undefined (no paired rating; a constant grade makes rho undefined).
    """
    missing = [c for c in ("item_id", "model", "grade") if c not in rubric.columns]
    if missing:
        raise KeyError(f"rubric table lacks column(s) {missing}")
    truth = rubric[["item_id", "model"]].assign(rubric_score=rubric["grade"].map(SCORES))
    paired = graded_scores(ratings).merge(truth, on=["item_id", "model"], how="inner")
    out = {"weighted_kappa": float("nan"), "exact_agreement": float("nan"), "spearman_rho": float("nan"),
           "spearman_p": float("nan"), "n_ratings": len(paired), "n_answers": 0, "panel": panel_name(ratings)}
    if paired.empty:
        return out
    levels = sorted(SCORES.values())
    table = pd.crosstab(paired["rubric_score"], paired["score"]).reindex(index=levels, columns=levels,
                                                                        fill_value=0)   # (rubric, rater)
    kappa = cohens_kappa(table.to_numpy(), wt="quadratic", return_results=False)
    per_answer = paired.groupby(["item_id", "model"])[["rubric_score", "score"]].mean()
    out.update(weighted_kappa=float(kappa), exact_agreement=float((paired["score"] == paired["rubric_score"]).mean()),
               n_answers=len(per_answer))
    if (per_answer.nunique() > 1).all():
        rho = stats.spearmanr(per_answer["rubric_score"], per_answer["score"])
        out.update(spearman_rho=float(rho.statistic), spearman_p=float(rho.pvalue))
    return out


def metric_correlations(ratings: pd.DataFrame, metrics: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Spearman correlation between each answer's human score and its automatic metric values.

    Args:
        ratings: the long ratings table.
        metrics: one row per answer: item_id, model and the metric columns.
        columns: the metric columns to correlate.

    Returns:
        metric, spearman_rho, p_value, n (answers with both a human score and the metric), panel.
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


def answer_metrics(items: Sequence[GroundedItem], responses: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Sentence BLEU-4 and CIDEr (x100) of every answer against its item's reference answer.

    Text is normalised as the captioning protocol does (:func:`~vlstudy.metrics.captioning.normalize_caption`:
    non-CJK characters deleted, one token per character); an answer with nothing left scores 0. CIDEr's document
    frequencies come from the references of all items, once per responder (pycocoevalcap's rule).

    Returns:
        One row per (item, responder): item_id, model, BLEU-4, CIDEr.
    """
    references = {it.item_id: [normalize_caption(it.reference)] for it in items}
    rows = []
    for model, answers in responses.items():
        predictions = {it.item_id: [normalize_caption(a)] for it, a in zip(items, answers)}
        _, bleu = Bleu(4).compute_score(references, predictions, verbose=0)
        _, cider = Cider().compute_score(references, predictions)
        rows += [{"item_id": it.item_id, "model": model, "BLEU-4": 100.0 * float(b), "CIDEr": 100.0 * float(c)}
                 for it, b, c in zip(items, bleu[3], np.asarray(cider))]
    return pd.DataFrame(rows)
