"""dce_monai losses."""

from .lockstep import LockstepLoss
from .mask_guided import MaskGuidedLoss, soft_dice

__all__ = ["LockstepLoss", "MaskGuidedLoss", "soft_dice"]
