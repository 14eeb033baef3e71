"""Seed 1's patch batches made ready on the device: random rotation, flips and resize in one step.

The seed 1 network reads 2D lesion patches (50x50 voxels) resized to its input size (224).
Augmenting and resizing each patch on the CPU in a MONAI transform chain (``RandRotated``,
``RandFlipd``, ``Resized``) interpolates up to three times per patch and keeps the device
waiting; here the whole batch is rotated, flipped and resized by one ``grid_sample`` call on
the device the engine runs on. This is the trainer's ``prepare_batch`` (MONAI
``SupervisedTrainer``/``SupervisedEvaluator`` call it with ``(batch, device, non_blocking)``):
written here because MONAI's batch-level transforms run on the CPU per item.

Formula: output pixel p samples the input at ``R(angle) F p`` in normalised coordinates
(bilinear, ``align_corners=False``, border padding), ``F = diag(+-1, +-1)``; with no angle and
no flip it is exactly a bilinear resize (the points ``F.interpolate(mode="bilinear")`` samples).

The random draws (angle uniform in ``[-rotate_deg, rotate_deg]``, each flip with p 0.5) come
from a ``torch.Generator`` of this object seeded by ``(seed, fold)``, so two runs with the
same seed draw the same augmentation; a checkpoint restores it (``RandomStates`` finds it).

Reference: seed 1, "the dataset was augmented using random rotations and flipping".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["PatchBatch", "augment_resize", "fold_generator"]


def fold_generator(seed: int, fold: int) -> torch.Generator:
    """A CPU generator seeded from ``sha256("seed/fold")``: independent streams per fold."""
    return torch.Generator().manual_seed(int(hashlib.sha256(f"{int(seed)}/{int(fold)}".encode()).hexdigest()[:12], 16))


def augment_resize(x: torch.Tensor, size: int, angles_rad: torch.Tensor | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate, flip and resize a batch (B, C, H, W) to (B, C, size, size) in one ``grid_sample``.

    Args:
        x: patches (B, C, H, W).
        size: output size in pixels.
        angles_rad: (B,) rotation angles in radians (None: 0).
        flips: (B, 2) booleans: flip along W, flip along H (None: no flip).

    Returns:
        (B, C, size, size) float32 tensor on ``x``'s device.

    Example:
        >>> augment_resize(torch.ones(2, 3, 50, 50), 64).shape
        torch.Size([2, 3, 64, 64])
    """
    b = x.shape[0]
    dev = x.device
    theta = torch.zeros(b, 2, 3, device=dev, dtype=torch.float32)
    if angles_rad is None:
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
    else:
        a = angles_rad.to(dev, torch.float32)
        c, s = torch.cos(a), torch.sin(a)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, -s, s, c
    if flips is not None:
        sign = 1.0 - 2.0 * flips.to(dev, torch.float32)
        theta[:, :, 0] = theta[:, :, 0] * sign[:, 0:1]
        theta[:, :, 1] = theta[:, :, 1] * sign[:, 1:2]
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


class PatchBatch:
    """``prepare_batch`` for seed 1: batch to the device, augment (training) and resize.

    Args:
        image_size: network input size in pixels (seed 1: 224).
        augment: draw random rotations and flips (training); False: resize only (evaluation).
        rotate_deg: rotation range in degrees, ``[-rotate_deg, rotate_deg]`` (180: any angle).
        flip: random horizontal and vertical flips (each with probability 0.5).
        seed: seed of the augmentation draws.
        fold: fold number, mixed into the seed so folds draw differently.
        image_key: batch key of the patches.
        label_key: batch key of the class labels.

    Raises:
        ValueError: ``image_size`` < 16, ``rotate_deg`` outside [0, 180], or a batch without
            ``image_key``/``label_key`` (named).

    Example:
        >>> prep = PatchBatch(image_size=32, augment=True, seed=0)
        >>> x, y = prep({"image": torch.zeros(4, 3, 50, 50), "label": torch.tensor([0, 1, 0, 1])}, "cpu")
        >>> tuple(x.shape), y.dtype
        ((4, 3, 32, 32), torch.int64)
    """

    def __init__(self, image_size: int, augment: bool = False, rotate_deg: float = 180.0, flip: bool = True, seed: int = 0, fold: int = 0,
                 image_key: str = "image", label_key: str = "label") -> None:
        if isinstance(image_size, bool) or int(image_size) != image_size or int(image_size) < 16:
            raise ValueError(f"image_size must be an integer >= 16 pixels (ResNet34 downsamples 32x), got {image_size!r}.")
        if not 0 <= float(rotate_deg) <= 180:
            raise ValueError(f"rotate_deg must be in [0, 180] degrees, got {rotate_deg!r}.")
        self.image_size, self.augment, self.rotate_deg, self.flip = int(image_size), bool(augment), float(rotate_deg), bool(flip)
        self.image_key, self.label_key = image_key, label_key
        self.generator = fold_generator(seed, fold)

    def draw(self, b: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Angles (radians) and flips for a batch of ``b`` (None, None without augmentation)."""
        if not self.augment:
            return None, None
        angles = (torch.rand(b, generator=self.generator) * 2 - 1) * math.radians(self.rotate_deg)
        flips = torch.rand(b, 2, generator=self.generator) < 0.5 if self.flip else None
        return angles, flips

    def __call__(self, batchdata: Mapping[str, Any], device: str | torch.device | None = None, non_blocking: bool = False,
                 **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        for key in (self.image_key, self.label_key):
            if key not in batchdata:
                raise ValueError(f"PatchBatch: the batch has no {key!r} (keys: {sorted(map(str, batchdata))}).")
        x = torch.as_tensor(batchdata[self.image_key])
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        x = x.to(device=device, non_blocking=non_blocking) if device is not None else x
        angles, flips = self.draw(int(x.shape[0]))
        x = augment_resize(x, self.image_size, angles, flips)
        y = torch.as_tensor(batchdata[self.label_key]).reshape(-1).long()
        y = y.to(device=device, non_blocking=non_blocking) if device is not None else y
        return x, y
