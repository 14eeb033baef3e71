"""Ignite handlers (thin wrappers over dce_monai.metrics)."""

from .lesion_auc import LesionAUC

__all__ = ["LesionAUC"]
