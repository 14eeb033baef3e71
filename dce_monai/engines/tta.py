"""Test-time augmentation inferer of the ``breast_dce_maskguided_vgg3d`` bundle.

``TTA34Inferer`` runs the network on the 34 fixed augmentation variants of each input volume
(``dce_monai.transforms.Augment34``; shape restored with MONAI ``ResizeWithPadOrCrop`` after the
cube rotations) and returns ``log(mean_v softmax(net(aug_v(x))))``, so that a downstream softmax
gives the mean of the 34 class probabilities. MONAI's ``TestTimeAugmentation`` targets
segmentation outputs that are inverted back to the input grid; for class logits no inversion is
needed, hence this small inferer. Voxel-wise outputs (class activation maps) map back through
MONAI's own inversion instead: every variant is an ``InvertibleTransform`` recording one trace
entry, so ``Augment34(v).inverse(cam)`` (a CAM carrying the augmented input's trace) or
``Invertd(keys="cam", transform=preprocessing, orig_keys="image")`` after a whole preprocessing
pipeline return it on the input grid (see ``docs/transforms.md``).

Reference: seed 2 (mask-guided 3D VGG), ``/work/shared/seeds/004_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.inferers import Inferer
from monai.transforms import ResizeWithPadOrCrop

from dce_monai.transforms.augmentation import N_VARIANTS, Augment34

__all__ = ["TTA34Inferer"]


class TTA34Inferer(Inferer):
    """Mean softmax over the 34 augmentation variants (or a subset), returned as log-probabilities.

    Formula: ``out = log(1/V * sum_v softmax(net(A_v(x))))``, ``V = len(variants)``.

    Args:
        enabled: ``False`` gives plain inference ``net(x)`` (the bundle's ``--tta false``);
            the strings ``"true"``/``"false"`` are accepted.
        variants: variant indices in ``[0, 33]`` (default: all 34).

    Raises:
        ValueError: empty ``variants``, an index outside ``[0, 33]``, or ``enabled`` text other than true/false.

    Example:
        >>> inf = TTA34Inferer(variants=[0, 1])  # doctest: +SKIP
        >>> logp = inf(x, network)  # doctest: +SKIP
    """

    def __init__(self, enabled: bool | str = True, variants: Sequence[int] | None = None) -> None:
        super().__init__()
        if isinstance(enabled, str):  # command-line overrides arrive as text: --tta true / --tta false
            if enabled.strip().lower() not in ("true", "false"):
                raise ValueError(f"enabled (--tta) must be true or false, got {enabled!r}.")
            enabled = enabled.strip().lower() == "true"
        self.enabled = bool(enabled)
        self.variants = list(range(N_VARIANTS)) if variants is None else [int(v) for v in variants]
        if not self.variants or any(not 0 <= v < N_VARIANTS for v in self.variants):
            raise ValueError(f"variants must be a non-empty subset of 0..{N_VARIANTS - 1}, got {variants!r}.")
        self.ops = [Augment34(v) for v in self.variants]

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Run ``network`` on ``inputs`` (B, C, X, Y, Z), averaging class probabilities over variants."""
        if not self.enabled:
            return network(inputs, *args, **kwargs)
        size = tuple(inputs.shape[2:])
        restore = ResizeWithPadOrCrop(spatial_size=size)
        probs = None
        for op in self.ops:
            batch = torch.stack([torch.as_tensor(restore(op(x))) for x in inputs]).to(inputs.device)
            p = torch.softmax(network(batch, *args, **kwargs).float(), dim=1)
            probs = p if probs is None else probs + p
        return torch.log(probs / len(self.ops) + 1e-12)
