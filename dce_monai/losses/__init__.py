"""dce_monai losses."""

from .mask_guided import MaskGuidedLoss, soft_dice

__all__ = ["MaskGuidedLoss", "soft_dice"]
