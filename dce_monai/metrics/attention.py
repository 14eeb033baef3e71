"""How much of a class activation map falls inside a mask (seed 2's claim, quantified)."""

from __future__ import annotations

import torch

__all__ = ["attention_fraction"]


def attention_fraction(cam: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample fraction of (non-negative) CAM mass inside ``mask``: sum(cam*mask)/sum(cam).

    Args:
        cam: (B, 1, *spatial) activation maps (negative values clipped to 0).
        mask: (B, 1, *spatial) binary mask on the same grid.

    Returns:
        (B,) fractions in [0, 1].

    Raises:
        ValueError: shapes differ.
    """
    if cam.shape != mask.shape:
        raise ValueError(f"cam and mask must have the same shape, got {tuple(cam.shape)} and {tuple(mask.shape)}.")
    c = cam.clamp_min(0).flatten(1)
    return (c * mask.flatten(1).float()).sum(1) / (c.sum(1) + eps)
