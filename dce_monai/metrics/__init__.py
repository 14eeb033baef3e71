"""Metrics: per-lesion aggregation and attention-inside-mask."""

from .aggregation import aggregate_by_lesion
from .attention import attention_fraction

__all__ = ["aggregate_by_lesion", "attention_fraction"]
