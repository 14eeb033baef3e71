"""Ignite handlers (thin wrappers over dce_monai.metrics) and crash-safe checkpointing."""

from .attention import AttentionInMask
from .cam_images import CamImageHandler, cam_overlay, save_cam_overlay_png
from .checkpoint import (
    AtomicCheckpointSaver,
    RandomStates,
    ResumeFromLatest,
    checkpoints,
    latest_checkpoint,
    load_state_file,
)
from .lesion_auc import LesionAUC
from .pr_curve import LesionPRCurve
from .precise_bn import PreciseBatchNorm

__all__ = [
    "AtomicCheckpointSaver",
    "AttentionInMask",
    "CamImageHandler",
    "LesionAUC",
    "LesionPRCurve",
    "PreciseBatchNorm",
    "RandomStates",
    "ResumeFromLatest",
    "cam_overlay",
    "checkpoints",
    "latest_checkpoint",
    "load_state_file",
    "save_cam_overlay_png",
]
