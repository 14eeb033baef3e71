"""Ignite handlers (thin wrappers over dce_monai.metrics)."""

from .cam_images import CamImageHandler, cam_overlay, save_cam_overlay_png
from .lesion_auc import LesionAUC

__all__ = ["LesionAUC", "CamImageHandler", "cam_overlay", "save_cam_overlay_png"]
