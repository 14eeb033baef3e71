"""Ignite/MONAI engines."""

from .mask_guided import MaskGuidedTrainer
from .tta import TTA34Inferer

__all__ = ["MaskGuidedTrainer", "TTA34Inferer"]
