"""Ignite handlers (thin wrappers over dce_monai.metrics)."""

from .attention import AttentionInMask
from .cam_images import CamImageHandler, cam_overlay, save_cam_overlay_png
from .lesion_auc import LesionAUC

__all__ = ["AttentionInMask", "CamImageHandler", "LesionAUC", "cam_overlay", "save_cam_overlay_png"]
