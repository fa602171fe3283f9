"""Evaluation metrics of the study, all returning one :class:`MetricResult` (see ``base.py`` for units).

classification (top-K accuracy), captioning (BLEU/METEOR/ROUGE-L/CIDEr on character-level Chinese),
retrieval (R@K, MdR, MnR both ways), videomind (multi-layer retrieval, Tables 2-3), bootstrap (confidence intervals).
"""

from vlstudy.metrics.base import ID_COLUMN, Mean, Median, MetricError, MetricResult, Statistic
from vlstudy.metrics.bootstrap import (
                                       Interval,
                                       bootstrap_ci,
                                       intervals_overlap,
                                       metric_intervals,
                                       paired_bootstrap_ci,
                                       paired_differences,
)
from vlstudy.metrics.captioning import caption_metrics, close_shared_meteor, normalize_caption, shared_meteor
from vlstudy.metrics.classification import classification_metrics, confusion_matrix, per_class_accuracy
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.metrics.videomind import videomind_metrics, videomind_tables

__all__ = ["ID_COLUMN", "Mean", "Median", "MetricError", "MetricResult", "Statistic", "Interval", "bootstrap_ci",
           "intervals_overlap", "metric_intervals", "paired_bootstrap_ci", "paired_differences", "caption_metrics",
           "close_shared_meteor", "normalize_caption", "shared_meteor", "classification_metrics",
           "confusion_matrix", "per_class_accuracy", "retrieval_metrics", "videomind_metrics", "videomind_tables"]
