"""Metrics: per-lesion aggregation, attention-inside-mask, and classification statistics."""

from .aggregation import aggregate_by_lesion
from .attention import attention_fraction
from .stats import (
    ConfidenceInterval,
    as_id_list,
    auc_ci,
    binary_metrics,
    bootstrap_ci,
    delong_ci,
    delong_test,
    roc_auc,
    youden_threshold,
)

__all__ = [
    "ConfidenceInterval",
    "aggregate_by_lesion",
    "as_id_list",
    "attention_fraction",
    "auc_ci",
    "binary_metrics",
    "bootstrap_ci",
    "delong_ci",
    "delong_test",
    "roc_auc",
    "youden_threshold",
]
