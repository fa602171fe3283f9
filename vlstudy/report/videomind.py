"""VideoMind's Tables 2 and 3 beside the paper's, the "intent is hardest" finding, and DeME against single-caption
models.

The paper's finding (Yang et al. 2025, Table 2): for every model, text → video retrieval is hardest from the intent
layer, factual R@1 > abstract R@1 > intent R@1 (InternVideo 82.10 > 77.60 > 50.80, and so for UMT-L, CLIP-VIP,
mPLUG-2 and VAST). :func:`layer_steps` decides it per model from the per-video ranks of one model: a step holds when
the paired-bootstrap interval of the difference (the same videos in every resample; each video counts with its
texts of both layers) excludes 0 on the positive side; :func:`intent_hardest_finding` holds when both steps do.
The paper's numbers come from real data and real-scale models (VideoMind-3K): the tables put them beside ours
labelled as different data, for orientation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vlstudy.metrics.base import MetricResult
from vlstudy.metrics.bootstrap import paired_bootstrap_ci, paired_differences
from vlstudy.metrics.videomind import LAYERS
from vlstudy.report.paper import SOURCES, VIDEOMIND_MODELS, paper_value
from vlstudy.report.tables import format_interval

__all__ = [
    "COLUMN_LABELS",
    "PAPER_DATA",
    "TABLE2_KEYS",
    "TABLE3_KEYS",
    "intent_hardest_finding",
    "layer_recall_table",
    "layer_steps",
    "paired_comparison",
    "plot_layer_recall",
    "videomind_table",
]

TABLE2_KEYS = [f"{query}_{metric}" for query in (*(f"t2v_{layer}" for layer in LAYERS), "any2v")
               for metric in ("R@1", "R@5", "R@10", "MeanR")]
"""Table 2's columns: text → video per layer and pooled (any), R@1/5/10 and MeanR."""
TABLE3_KEYS = ["v2t_hit_any_R@1", "v2t_hit_any_R@5", "v2t_hit_any_R@10", "v2t_hit_all_R@3", "v2t_hit_all_R@5",
               "v2t_hit_all_R@10", "v2t_TopR", "v2t_LowestR", "v2t_AvgR"]
"""Table 3's columns: video → text with three ground truths."""
COLUMN_LABELS = {
    **{key: key.removeprefix("t2v_").replace("any2v", "any").replace("_", "→V ", 1) for key in TABLE2_KEYS},
    **{key: key.removeprefix("v2t_").replace("hit_any_", "hit-any ").replace("hit_all_", "hit-all ")
       for key in TABLE3_KEYS},
}
"""Readable column names: ``factual→V R@1``, ``any→V MeanR``, ``hit-all R@10``, ``TopR``..."""
PAPER_DATA = f"{SOURCES['videomind']}, VideoMind-3K: different data and models"


def videomind_table(ours: Mapping[str, Mapping[str, Mapping[str, float]]], keys: Sequence[str], paper_table: str,
                    data: str, digits: int = 1) -> pd.DataFrame:
    """Our rows (``estimate [low, high]``) and then the paper's rows, labelled with the data each comes from.

    Args:
        ours: system → ``{key: {"estimate", "low", "high"}}`` (a reference row such as a designed ceiling may have
            estimates only).
        keys: the metric keys, in column order (:data:`TABLE2_KEYS` or :data:`TABLE3_KEYS`).
        paper_table: ``"VideoMind Table 2"`` or ``"VideoMind Table 3"`` (`vlstudy.report.paper`).
        data: what our rows were measured on (e.g. "mini-Youku captioning/test, 90 videos").
        digits: decimals.

    Returns:
        Columns ``system``, ``data`` and one per key (:data:`COLUMN_LABELS`); a number the paper does not report
        shows as "—".
    """
    rows = []
    for system, metrics in ours.items():
        rows.append({"system": system, "data": data,
                     **{key: format_interval(metrics[key], digits) if key in metrics else "—" for key in keys}})
    for row, name in VIDEOMIND_MODELS.items():
        values = {key: paper_value(paper_table, row, key) for key in keys}
        rows.append({"system": f"{name} (paper)", "data": PAPER_DATA,
                     **{key: "—" if value is None else f"{value:.2f}" for key, value in values.items()}})
    return pd.DataFrame(rows).rename(columns=COLUMN_LABELS)


def layer_steps(result: MetricResult, *, rng: np.random.Generator, n_boot: int, metric: str = "R@1",
                layers: Sequence[str] = LAYERS) -> pd.DataFrame:
    """Each step down VideoMind's layer order on one model: is text → video `metric` higher from the upper layer?

    Args:
        result: one model's ``videomind_metrics`` (per-video ranks and bootstrap statistics).
        rng: the bootstrap generator.
        n_boot: resamples.
        metric: ``R@K`` (higher is better).
        layers: the layers from the easiest to the hardest by the paper.

    Returns:
        One row per neighbouring pair: ``upper``, ``lower``, ``upper_value``, ``lower_value``, ``difference``
        (upper − lower, points) with its paired 95 % interval ``low``/``high``, and ``holds`` (low > 0).
    """
    rows = []
    for upper, lower in pairwise(layers):
        a, b = f"t2v_{upper}_{metric}", f"t2v_{lower}_{metric}"
        diff = paired_bootstrap_ci(result.statistics[a], result.statistics[b], rng=rng, n_boot=n_boot)
        rows.append({"upper": upper, "lower": lower, "upper_value": result.summary[a],
                     "lower_value": result.summary[b], "difference": diff.estimate, "low": diff.low,
                     "high": diff.high, "holds": bool(diff.low > 0)})
    return pd.DataFrame(rows)


def _paper_orders(metric: str) -> str:
    parts = []
    for row, name in VIDEOMIND_MODELS.items():
        values = [paper_value("VideoMind Table 2", row, f"t2v_{layer}_{metric}") for layer in LAYERS]
        parts.append(f"{name} " + " > ".join(f"{v:.2f}" for v in values))
    return f"every model of Table 2, {metric} factual > abstract > intent: " + "; ".join(parts)


def intent_hardest_finding(model: str, steps: pd.DataFrame, metric: str = "R@1") -> dict:
    """The findings entry of one model (PIPELINE.md item 7) from its :func:`layer_steps`.

    ``ours``/``low``/``high`` are the step that decides the verdict: the one whose interval reaches lowest (both
    must exclude 0 for HOLDS); the note gives both steps with their numbers.
    """
    deciding = steps.loc[steps["low"].idxmin()]
    values = " > ".join([f"{steps['upper_value'].iloc[0]:.1f}", *(f"{v:.1f}" for v in steps["lower_value"])])
    detail = "; ".join(f"{r.upper} − {r.lower} = {r.difference:+.1f} [{r.low:+.1f}, {r.high:+.1f}] "
                       f"({'excludes 0' if r.holds else 'includes 0 or below'})" for r in steps.itertuples())
    holds = bool(steps["holds"].all())
    verdict = "HOLDS" if holds else "FAILS"
    return {"claim": f"{model}: text→video retrieval is hardest from the intent layer ({metric} factual > abstract > "
                     f"intent)",
            "paper": _paper_orders(metric),
            "ours": float(deciding["difference"]), "low": float(deciding["low"]), "high": float(deciding["high"]),
            "holds": holds,
            "note": f"{verdict}: {metric} {' > '.join(steps['upper'].tolist() + [steps['lower'].iloc[-1]])} = "
                    f"{values}; paired differences over the same videos, 95 % bootstrap: {detail}; ours/low/high: "
                    f"the {deciding['upper']} − {deciding['lower']} step"}


def paired_comparison(results: Mapping[str, MetricResult], system: str, keys: Sequence[str], *,
                      rng: np.random.Generator, n_boot: int, better: Mapping[str, str] | None = None) -> pd.DataFrame:
    """`system` against every other model on the same videos: paired-bootstrap differences of `keys`.

    Args:
        results: model → its ``videomind_metrics``, all on the same videos.
        system: the model compared with each other one (e.g. the DeME-style baseline).
        keys: the metrics compared.
        rng, n_boot: the bootstrap.
        better: key → ``"higher"`` / ``"lower"`` (default: ranks (``MeanR``, ``TopR``, ...) lower, the rest higher).

    Returns:
        One row per (other model, key): ``other``, ``metric``, ``system_value``, ``other_value``, ``difference``
        (system − other) with ``low``/``high``, and ``verdict``: which is better at 95 %, or "no difference".
    """
    rows = []
    for other, result in results.items():
        if other == system:
            continue
        table = paired_differences(results[system], result, rng=rng, n_boot=n_boot).loc[list(keys)]
        for key, r in table.iterrows():
            direction = (better or {}).get(key, "lower" if key.endswith("R") and "R@" not in key else "higher")
            sign = 1 if direction == "higher" else -1
            verdict = (f"{system} better" if sign * r["low"] > 0 and sign * r["high"] > 0 else
                       f"{other} better" if sign * r["low"] < 0 and sign * r["high"] < 0 else "no difference at 95 %")
            rows.append({"other": other, "metric": COLUMN_LABELS.get(key, key), "system_value": r["a"],
                         "other_value": r["b"], "difference": r["difference"], "low": r["low"], "high": r["high"],
                         "verdict": verdict})
    return pd.DataFrame(rows)


_QUERY_LABELS = {"factual": "事实层 (factual)", "abstract": "抽象层 (abstract)", "intent": "意图层 (intent)",
                 "any": "全部 (any)"}


def layer_recall_table(ours: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str = "R@1") -> pd.DataFrame:
    """Text → video `metric` per query layer and system, tidy: ``system``, ``query``, ``estimate``, ``low``, ``high``
    (NaN bounds for a row without intervals, e.g. a designed ceiling)."""
    rows = []
    for system, metrics in ours.items():
        for query in (*LAYERS, "any"):
            entry = metrics[("any2v" if query == "any" else f"t2v_{query}") + f"_{metric}"]
            rows.append({"system": system, "query": query, "estimate": entry["estimate"],
                         "low": entry.get("low", np.nan), "high": entry.get("high", np.nan)})
    return pd.DataFrame(rows)


def plot_layer_recall(table: pd.DataFrame, reference: str | None = None, metric: str = "R@1") -> Figure:
    """Grouped bars of :func:`layer_recall_table`: one group per query layer, one bar per system with its 95 %
    interval; the `reference` system (a designed ceiling) is drawn as a black tick over each group instead."""
    systems = [s for s in dict.fromkeys(table["system"]) if s != reference]
    queries = list(dict.fromkeys(table["query"]))
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(queries))
    for k, system in enumerate(systems):
        rows = table[table["system"] == system].set_index("query").loc[queries]
        est = rows["estimate"].to_numpy(float)
        errors = np.vstack([est - rows["low"].to_numpy(float), rows["high"].to_numpy(float) - est])
        ax.bar(x - 0.4 + width * (k + 0.5), est, width, yerr=np.nan_to_num(errors), capsize=3, label=system)
    if reference is not None and reference in set(table["system"]):
        ceiling = table[table["system"] == reference].set_index("query").loc[queries, "estimate"]
        ax.hlines(ceiling.to_numpy(float), x - 0.42, x + 0.42, colors="black", linestyles="--", label=reference)
    ax.set_xticks(x, [_QUERY_LABELS.get(q, q) for q in queries])
    ax.set_ylabel(f"文本→视频 {metric} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"各层文本检索视频 {metric}（95% 区间）— text→video {metric} per layer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
