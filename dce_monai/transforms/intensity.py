"""Intensity scaling suited to DCE-MRI.

Why not per-phase z-scoring: relative enhancement (S_k - S_0)/S_0 is the signal. If every
phase is standardised on its own, a lesion that doubles its signal after contrast looks the
same before and after (each phase is mapped to mean 0, std 1), and the enhancement that
separates malignant from benign lesions is erased. :class:`ScaleIntensityDCEd` divides ALL
phases of a patient by one robust scale, which keeps every ratio between phases intact.

:class:`ImageNetNormalize` maps a 3-channel patch to the statistics an ImageNet-pretrained
network expects (seed 1's transfer learning).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from dce_monai.transforms.utils import case_label, check_finite, to_float_tensor, wrap_like

__all__ = ["ScaleIntensityDCE", "ScaleIntensityDCEd", "ImageNetNormalize", "ImageNetNormalized", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _t(x: Any) -> torch.Tensor:
    t = to_float_tensor(x)
    return t.as_tensor() if isinstance(t, MetaTensor) else t


def _robust_scale(values: torch.Tensor, percentile: float) -> float:
    v = values.flatten()
    v = v[:: max(1, v.numel() // 2_000_000)]
    return float(torch.quantile(v, percentile / 100.0))


class ScaleIntensityDCE(Transform):
    """Divide every channel of a multi-phase image by ONE scale from joint statistics.

    ``out = img / q``, q = the ``percentile``-th percentile of all channels' voxels above
    ``floor`` (default: nonzero voxels). Ratios between phases are unchanged.

    Raises:
        ValueError: bad percentile, NaN/Inf voxels, or no voxel above the floor.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, percentile: float = 99.0, floor: float = 0.0) -> None:
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
        self.percentile, self.floor = percentile, floor

    def scale_of(self, values: torch.Tensor, case: str = "input") -> float:
        sel = values[values > self.floor]
        if sel.numel() == 0:
            raise ValueError(f"{case}: no voxel above the floor {self.floor}; cannot compute an intensity scale.")
        q = _robust_scale(sel, self.percentile)
        if q <= 0:
            raise ValueError(f"{case}: intensity scale is {q} (<= 0); cannot normalise.")
        return q

    def __call__(self, img: Any, case: str = "input") -> Any:
        check_finite(img, "img", case)
        x = _t(img)
        return wrap_like(x / self.scale_of(x, case), img)


class ScaleIntensityDCEd(MapTransform):
    """Dictionary form: one scale, computed over ``reference_keys`` (default: all ``keys``), for all keys.

    Args:
        keys: the phases of one patient (e.g. T1pre, T1post1..4; T2 is a different contrast
            and should be scaled separately).
        reference_keys: keys whose voxels define the scale (e.g. ``["T1pre"]``).
        percentile, floor: see :class:`ScaleIntensityDCE`.
        scale_key: if set, the scale used is stored there (to undo it or to report it).
    """

    backend = ScaleIntensityDCE.backend

    def __init__(self, keys: Any, reference_keys: Sequence[str] | None = None, percentile: float = 99.0, floor: float = 0.0, scale_key: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_keys = list(reference_keys) if reference_keys is not None else list(self.keys)
        self.op = ScaleIntensityDCE(percentile, floor)
        self.scale_key = scale_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = case_label(d)
        missing = [k for k in self.reference_keys if k not in d]
        if missing:
            raise KeyError(f"{case}: ScaleIntensityDCEd reference key(s) {missing} missing; available: {sorted(map(str, d))}.")
        for k in self.reference_keys:
            check_finite(d[k], str(k), case)
        scale = self.op.scale_of(torch.cat([_t(d[k]).flatten() for k in self.reference_keys]), case)
        for k in self.key_iterator(d):
            d[k] = wrap_like(_t(d[k]) / scale, d[k])
        if self.scale_key:
            d[self.scale_key] = scale
        return d


class ImageNetNormalize(Transform):
    """Scale a 3-channel image to [0, 1] per channel, then ``(x - mean_c)/std_c`` (ImageNet).

    The [0, 1] scaling uses the ``lower``/``upper`` percentiles of each channel (clipped),
    so a subtraction channel with negative values is handled like the others.

    Raises:
        ValueError: not exactly 3 channels; bad percentiles.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, lower: float = 0.5, upper: float = 99.5, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower!r}, upper={upper!r}.")
        self.lower, self.upper = lower, upper
        self.mean, self.std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

    def __call__(self, img: Any, case: str = "input") -> Any:
        if img.shape[0] != 3:
            raise ValueError(f"{case}: ImageNet normalisation needs exactly 3 channels, got {img.shape[0]} (shape {tuple(img.shape)}).")
        check_finite(img, "img", case)
        x = _t(img)
        flat = x.reshape(3, -1)
        lo = torch.quantile(flat, self.lower / 100, dim=1)
        hi = torch.quantile(flat, self.upper / 100, dim=1)
        shape = (3,) + (1,) * (x.ndim - 1)
        y = ((x - lo.view(shape)) / (hi - lo).clamp_min(1e-8).view(shape)).clamp(0, 1)
        return wrap_like((y - self.mean.view(shape)) / self.std.view(shape), img)


class ImageNetNormalized(MapTransform):
    """Dictionary form of :class:`ImageNetNormalize`."""

    backend = ImageNetNormalize.backend

    def __init__(self, keys: Any = "image", allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.op = ImageNetNormalize(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for k in self.key_iterator(d):
            d[k] = self.op(d[k], case_label(d))
        return d


