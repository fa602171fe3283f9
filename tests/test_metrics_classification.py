"""Top-K accuracy, pessimistic ties, per-class accuracy, confusion matrix and input errors."""

import numpy as np
import pytest
import torch

from vlstudy.data.classes import CLASS_NAMES, NUM_CLASSES
from vlstudy.metrics.base import MetricError
from vlstudy.metrics.classification import classification_metrics, confusion_matrix, per_class_accuracy


def scores_with_true_rank(labels, ranks, seed=0):
    """(N, 45) scores where item i's true class is exactly at rank ranks[i] (no ties)."""
    rng = np.random.default_rng(seed)
    scores = np.empty((len(labels), NUM_CLASSES))
    for i, (label, rank) in enumerate(zip(labels, ranks)):
        others = [c for c in rng.permutation(NUM_CLASSES) if c != label]
        order = others[:rank - 1] + [label] + others[rank - 1:]  # best first
        scores[i, order] = np.arange(NUM_CLASSES, 0, -1)
    return scores


def test_top1_top5_and_ranks_on_known_scores():
    labels = [0, 7, 23, 44]
    scores = scores_with_true_rank(labels, [1, 2, 6, 45])
    result = classification_metrics(scores, labels, ids=["a", "b", "c", "d"])
    assert result.summary == {"top1": 25.0, "top5": 50.0, "n_items": 4}
    assert result.per_item["rank"].tolist() == [1, 2, 6, 45]
    assert result.per_item["correct@1"].tolist() == [True, False, False, False]
    assert result.per_item["correct@5"].tolist() == [True, True, False, False]
    assert result.per_item["item_id"].tolist() == ["a", "b", "c", "d"]
    assert result.per_item.loc[0, "pred"] == 0 and result.per_item.loc[1, "pred"] != 7


def test_class_names_as_labels_and_torch_logits_give_the_same_result():
    labels = [3, 11, 40]
    scores = scores_with_true_rank(labels, [1, 3, 1], seed=1)
    by_index = classification_metrics(scores, labels)
    by_name = classification_metrics(torch.tensor(scores).softmax(-1), [CLASS_NAMES[i] for i in labels])
    assert by_name.summary == by_index.summary
    assert by_name.per_item["rank"].tolist() == [1, 3, 1]


def test_a_tie_at_the_top_counts_against_the_model():
    scores = np.zeros((1, NUM_CLASSES))
    scores[0, [5, 9]] = 1.0  # true class 9 ties with class 5
    result = classification_metrics(scores, [9])
    assert result.per_item.loc[0, "rank"] == 2
    assert result.summary["top1"] == 0.0
    assert result.per_item.loc[0, "pred"] == 5


def test_per_class_accuracy_and_confusion_matrix():
    labels = [0, 0, 1, 2]
    scores = np.zeros((4, NUM_CLASSES))
    scores[0, 0] = scores[1, 1] = scores[2, 1] = scores[3, 2] = 1.0  # item 1 (class 0) is predicted as class 1
    result = classification_metrics(scores, labels)
    table = per_class_accuracy(result)
    assert table.loc[:2, "n_items"].tolist() == [2, 1, 1]
    assert table.loc[:2, "top1"].tolist() == [50.0, 100.0, 100.0]
    assert np.isnan(table.loc[3, "top1"]) and len(table) == NUM_CLASSES
    matrix = confusion_matrix(result)
    assert matrix.shape == (NUM_CLASSES, NUM_CLASSES)
    assert matrix.loc[CLASS_NAMES[0], CLASS_NAMES[0]] == 1 and matrix.loc[CLASS_NAMES[0], CLASS_NAMES[1]] == 1
    assert matrix.to_numpy().sum() == 4 and np.trace(matrix.to_numpy()) == 3


@pytest.mark.parametrize("labels, message", [
    ([0, 45], "item 'v1': label 45 is outside 0..44"),
    ([0, -1], "item 'v1': label -1 is outside 0..44"),
    (["翻唱", "魔术"], "item 'v1': unknown class '魔术'"),
    ([0, None], "item 'v1': label None is neither a class index nor a class name"),
])
def test_bad_labels_name_the_item(labels, message):
    with pytest.raises(MetricError, match=message):
        classification_metrics(np.zeros((2, NUM_CLASSES)), labels, ids=["v0", "v1"])


def test_bad_scores_are_rejected():
    with pytest.raises(MetricError, match=r"scores must have shape \(N, 45\), got \(2, 44\)"):
        classification_metrics(np.zeros((2, 44)), [0, 1])
    scores = np.zeros((2, NUM_CLASSES))
    scores[1, 3] = np.nan
    with pytest.raises(MetricError, match="item 'v1': NaN class scores"):
        classification_metrics(scores, [0, 1], ids=["v0", "v1"])
