"""Ignite/MONAI engines."""

from .mask_guided import MaskGuidedTrainer

__all__ = ["MaskGuidedTrainer"]
