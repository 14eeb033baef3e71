"""Metrics: per-lesion aggregation, attention-inside-mask, classification statistics and score collapse."""

from .aggregation import aggregate_by_lesion
from .attention import attention_fraction
from .collapse import COLLAPSE_SPAN, score_collapse
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
    "COLLAPSE_SPAN",
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
    "score_collapse",
    "youden_threshold",
]
