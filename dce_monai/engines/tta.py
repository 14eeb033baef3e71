"""Test-time augmentation inferer of the ``breast_dce_maskguided_vgg3d`` bundle.

``TTA34Inferer`` runs the network on the 34 fixed augmentation variants of each input volume
(``dce_monai.transforms.Augment34``; shape restored with MONAI ``ResizeWithPadOrCrop`` after the
cube rotations) and returns ``log(mean_v softmax(net(aug_v(x))))``, so that a downstream softmax
gives the mean of the 34 class probabilities. MONAI's ``TestTimeAugmentation`` targets
segmentation outputs that are inverted back to the input grid; for class logits no inversion is
needed, hence this small inferer. Voxel-wise outputs (class activation maps) map back through
MONAI's own inversion instead: every variant is an ``InvertibleTransform`` recording one trace
entry, so :meth:`TTA34Inferer.cam` averages CAMs over the variants with ``Compose.inverse``, and
``Invertd(keys="cam", transform=preprocessing, orig_keys="image")`` maps a CAM back through a
whole preprocessing pipeline (see ``docs/transforms.md``).

Reference: seed 2 (mask-guided 3D VGG), ``/work/shared/seeds/004_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from monai.data import MetaTensor, get_track_meta
from monai.inferers import Inferer
from monai.transforms import Compose, ResizeWithPadOrCrop

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

    def cam(self, inputs: torch.Tensor, cam_fn: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Test-time-augmented class activation map on the input grid.

        Formula: ``cam = 1/V * sum_v A_v^-1(cam_fn(A_v(x)))``: each variant's CAM is mapped back
        with MONAI's inversion (``Compose.inverse`` of the variant and the shape restoration, on
        the augmented input's trace). Cube rotations come back exactly; after a corner shift the
        border that left the field of view is 0; the +-10 deg rotations interpolate.

        Args:
            inputs: (B, C, X, Y, Z) batch.
            cam_fn: maps a batch to voxel-wise maps (B, K, X, Y, Z) on the same grid, e.g.
                ``network.cam`` of :class:`~dce_monai.networks.nets.VGG3DCAM` (``upsample=True``).
            args, kwargs: passed to ``cam_fn``.

        Returns:
            (B, K, X, Y, Z) float tensor; ``cam_fn(inputs)`` when TTA is disabled.

        Raises:
            ValueError: ``cam_fn`` output not on the input grid; meta tracking switched off
                (``set_track_meta(False)``: no trace to invert).
        """
        if not self.enabled:
            return cam_fn(inputs, *args, **kwargs)
        if not get_track_meta():
            raise ValueError("TTA34Inferer.cam maps each CAM back with MONAI's inversion, which needs the transform trace: call monai.data.set_track_meta(True).")
        size = tuple(int(s) for s in inputs.shape[2:])
        total: torch.Tensor | None = None
        for op in self.ops:
            pipe = Compose([op, ResizeWithPadOrCrop(spatial_size=size)])
            augmented = [pipe(x) for x in inputs.detach().cpu()]
            maps = cam_fn(torch.stack([a.as_tensor() for a in augmented]).to(inputs.device), *args, **kwargs)
            if tuple(maps.shape[2:]) != size or maps.shape[0] != inputs.shape[0]:
                raise ValueError(f"cam_fn must return (B, K, {', '.join(map(str, size))}) maps on the input grid, got shape {tuple(maps.shape)}.")
            back = []
            for m, a in zip(maps.detach().float().cpu(), augmented):
                traced = MetaTensor(m, affine=a.affine, applied_operations=list(a.applied_operations))
                back.append(pipe.inverse(traced).as_tensor())
            mean = torch.stack(back)
            total = mean if total is None else total + mean
        return cast(torch.Tensor, total).div(len(self.ops)).to(inputs.device)
