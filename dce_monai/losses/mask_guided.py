"""Mask-guided loss of seed 2: cross-entropy plus a Dice term between the CAM and the tumour mask.

``loss = CE(logits, label) + lambda * (1 - softDice(CAM, mask))``, which equals the paper's
``CE - lambda * Dice`` up to the constant ``lambda``; lambda = 10 as in the paper.

The CAM is taken for the TRUE class by default: the term asks the network to look at the
tumour when it explains the class the case belongs to, which is the paper's intent; the
predicted class is offered (``cam_class="predicted"``). A mask at another resolution than
the CAM is resampled to it (area interpolation, then treated as soft targets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import look_up_option
from torch import nn

__all__ = ["MaskGuidedLoss", "soft_dice"]


def soft_dice(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Per-sample soft Dice ``(2 sum(p t) + s)/(sum p + sum t + s)``, shape (B,)."""
    p, t = pred.flatten(1), target.flatten(1)
    return (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)


class MaskGuidedLoss(nn.Module):
    """Cross-entropy + lambda * (1 - soft Dice(CAM, mask)).

    Args:
        lambda_dice: weight of the Dice term (0 gives plain CE).
        smooth: Dice smoothing.
        cam_class: ``"target"`` (default) or ``"predicted"``: which class's CAM a trainer
            should compute (read by the training step).
        ce_weight: optional class weights for CE.
    """

    def __init__(self, lambda_dice: float = 10.0, smooth: float = 1e-5, cam_class: str = "target", ce_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if lambda_dice < 0:
            raise ValueError(f"lambda_dice must be >= 0, got {lambda_dice!r}.")
        self.lambda_dice, self.smooth = float(lambda_dice), smooth
        self.cam_class = look_up_option(cam_class, ("target", "predicted"))
        self.ce = nn.CrossEntropyLoss(weight=ce_weight)

    def compute(self, logits: torch.Tensor, label: torch.Tensor, cam: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"loss", "ce", "dice", "dice_term"}`` (dice = mean soft Dice)."""
        if cam.shape[0] != mask.shape[0] or cam.shape[0] != logits.shape[0]:
            raise ValueError(f"batch sizes differ: logits {tuple(logits.shape)}, cam {tuple(cam.shape)}, mask {tuple(mask.shape)}.")
        if cam.ndim != mask.ndim:
            raise ValueError(f"cam and mask must have the same number of dims, got cam {tuple(cam.shape)} and mask {tuple(mask.shape)}.")
        mask = mask.float()
        if mask.shape[2:] != cam.shape[2:]:
            mask = F.interpolate(mask, size=cam.shape[2:], mode="area")
        y = label.long().flatten()
        ce = self.ce(logits, y)
        dice = soft_dice(cam, mask, self.smooth).mean()
        term = 1.0 - dice
        return {"loss": ce + self.lambda_dice * term, "ce": ce, "dice": dice, "dice_term": term}

    def forward(self, logits: torch.Tensor, label: torch.Tensor, cam: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.compute(logits, label, cam, mask)["loss"]
