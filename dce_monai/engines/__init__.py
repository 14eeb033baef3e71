"""Ignite/MONAI engines."""

from .mask_guided import MaskGuidedTrainer
from .prepare_batch import PatchBatch, augment_resize
from .tta import TTA34Inferer

__all__ = ["MaskGuidedTrainer", "PatchBatch", "augment_resize", "TTA34Inferer"]
