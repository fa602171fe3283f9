"""Video category classification: top-1 / top-5 accuracy, per-class accuracy and the confusion matrix.

Follows the Youku-mPLUG evaluation (X-PLUG/Youku-mPLUG, ``downstream/run_cls_distributed_gpt3.py``,
``cal_metric``): a model scores all 45 classes of ``vlstudy.data.classes`` (the generation head's summed
log-likelihoods, softmaxed, or the MLP head's logits; softmax keeps the order, so either works) and top-K
accuracy is the share of items whose true class is among the K best, in percent.

Ties. The official code takes ``torch.topk``, whose order among equal scores is unspecified. Here ranks are
pessimistic and deterministic: the true class's rank is 1 + the number of *other* classes scoring at least as
high, so a tie never counts in the model's favour, and the predicted class (for the confusion matrix) is the
true class only when its rank is 1, else the best-scoring other class (lowest index among equals).

Written with numpy rather than scikit-learn (not a dependency of this kit): the confusion matrix is one
``bincount`` and the ranks one comparison.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from vlstudy.data.classes import CLASS_NAMES, UnknownClassError, class_index
from vlstudy.metrics.base import ID_COLUMN, Mean, MetricError, MetricResult, as_array

__all__ = ["classification_metrics", "per_class_accuracy", "confusion_matrix"]


def _label_indices(labels: Sequence[Any], ids: list[str], class_names: Sequence[str]) -> np.ndarray:
    """Labels (class indices or class names) -> (N,) int indices; an invalid one raises naming its item."""
    names = tuple(class_names)
    out = np.empty(len(labels), dtype=np.int64)
    for i, (item, label) in enumerate(zip(ids, labels)):
        if isinstance(label, str):
            if names == CLASS_NAMES:
                try:
                    out[i] = class_index(label, where=f"item {item!r}")
                except UnknownClassError as err:
                    raise MetricError(str(err)) from None
            elif label in names:
                out[i] = names.index(label)
            else:
                raise MetricError(f"item {item!r}: unknown class {label!r}: not one of the {len(names)} classes")
        elif isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
            if not 0 <= int(label) < len(names):
                raise MetricError(f"item {item!r}: label {int(label)} is outside 0..{len(names) - 1}")
            out[i] = int(label)
        else:
            raise MetricError(f"item {item!r}: label {label!r} is neither a class index nor a class name")
    return out


def classification_metrics(scores: Any, labels: Sequence[Any], *, ids: Sequence[str] | None = None,
                           class_names: Sequence[str] = CLASS_NAMES, ks: tuple[int, ...] = (1, 5)) -> MetricResult:
    """Top-K accuracy of class scores.

    Args:
        scores: (N, C) class scores, probabilities or logits (numpy or torch); higher is better. C must equal
            ``len(class_names)``; -inf is allowed, NaN is not.
        labels: N true classes, each a class index 0..C-1 or a class name.
        ids: N item ids (default "0".."N-1").
        class_names: the C class names in index order (default: the 45 Youku-mPLUG classes).
        ks: the K of each top-K accuracy.

    Returns:
        MetricResult with summary ``top{K}`` (percent) and ``n_items``; per_item columns ``item_id``, ``label``,
        ``pred`` (class index), ``rank`` (1-based rank of the true class) and ``correct@K``.

    Raises:
        MetricError: wrong shape, NaN scores, or a label that is not a class (naming the item).
    """
    scores = as_array(scores, "scores")
    n_classes = len(class_names)
    if scores.ndim != 2 or scores.shape[1] != n_classes:
        raise MetricError(f"scores must have shape (N, {n_classes}), got {scores.shape}")
    n = scores.shape[0]
    if len(labels) != n:
        raise MetricError(f"scores has {n} rows but there are {len(labels)} labels")
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    if len(ids) != n:
        raise MetricError(f"scores has {n} rows but there are {len(ids)} ids")
    if n == 0:
        raise MetricError("no items to evaluate")
    bad = np.isnan(scores).any(axis=1)
    if bad.any():
        raise MetricError(f"item {ids[int(np.argmax(bad))]!r}: NaN class scores ({int(bad.sum())} items have NaN)")
    y = _label_indices(labels, ids, class_names)

    rows = np.arange(n)
    true_score = scores[rows, y]
    rank = (scores >= true_score[:, None]).sum(axis=1)  # counts the true class itself: 1 + others >= it
    others = scores.copy()
    others[rows, y] = -np.inf
    pred = np.where(rank == 1, y, others.argmax(axis=1))

    per_item = pd.DataFrame({ID_COLUMN: ids, "label": y, "pred": pred, "rank": rank})
    summary: dict[str, float] = {}
    statistics = {}
    for k in ks:
        correct = rank <= k
        per_item[f"correct@{k}"] = correct
        statistics[f"top{k}"] = Mean(correct, scale=100.0)
        summary[f"top{k}"] = 100.0 * float(correct.mean())
    summary["n_items"] = n
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)


def per_class_accuracy(result: MetricResult, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """Top-1 accuracy of each class, from a :func:`classification_metrics` result.

    Returns:
        One row per class (all of them, in index order): ``class_index``, ``class_name``, ``n_items``,
        ``top1`` (percent; NaN for a class with no item).
    """
    items = result.per_item
    n_classes = len(class_names)
    counts = np.bincount(items["label"], minlength=n_classes)
    hits = np.bincount(items["label"], weights=(items["rank"] == 1).astype(float), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, 100.0 * hits / counts, np.nan)
    return pd.DataFrame({"class_index": np.arange(n_classes), "class_name": list(class_names),
                         "n_items": counts, "top1": accuracy})


def confusion_matrix(result: MetricResult, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """Counts of (true class, predicted class) from a :func:`classification_metrics` result.

    Returns:
        (C, C) DataFrame of ints: rows = true class, columns = predicted class, both labelled by class name.
    """
    n_classes = len(class_names)
    flat = result.per_item["label"].to_numpy() * n_classes + result.per_item["pred"].to_numpy()
    counts = np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    index = pd.Index(list(class_names), name="true")
    return pd.DataFrame(counts, index=index, columns=pd.Index(list(class_names), name="predicted"))
