"""Metrics: per-lesion aggregation, attention-inside-mask, and classification statistics."""

from .aggregation import aggregate_by_lesion
from .attention import attention_fraction
from .stats import binary_metrics, bootstrap_ci, delong_test, roc_auc, youden_threshold

__all__ = [
    "aggregate_by_lesion",
    "attention_fraction",
    "binary_metrics",
    "bootstrap_ci",
    "delong_test",
    "roc_auc",
    "youden_threshold",
]
