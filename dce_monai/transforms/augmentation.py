"""Seed 2's 34-fold 3D augmentation: 24 cube rotations, 8 corner shifts, +-10 deg axial rotations.

Seed 2 (Liu et al. 2021) expands every training volume 34-fold: the 24 proper rotations of a
cube, 8 shifts of 10 voxels towards the cube's corners, and rotations of +-10 deg in the
axial plane. Variants 0-31 are exact (no interpolation): rotations are built from MONAI's
``Rotate90`` (invertible, affine updated) and shifts move voxels by whole indices. Only the
two axial rotations (MONAI ``Rotate``) interpolate — bilinear for images, nearest for masks.

Variant order (documented and stable): 0-23 cube rotations (0 = identity; index
``4 * a + k``: ``a`` picks where the first spatial axis goes — identity, rot90 in the (0,1)
plane k = 1, 2, 3, rot90 in the (0,2) plane k = 1, 3 — and ``k`` the number of quarter turns
about the first axis afterwards), 24-31 corner shifts (signs of (x, y, z) in binary order
+++, ++-, ..., ---), 32 = +10 deg, 33 = -10 deg axial rotation.

Note: rotations that move the slice axis change the shape of a non-cubic volume (X, Y, Z are
permuted); this is what seed 2 does with its cubic crops. Use ``axial_only`` variants (the 8
rotations that keep the axial axis) for non-cubic inputs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Rotate, Rotate90, Transform
from monai.utils import TransformBackends

from dce_monai.transforms.utils import case_label, check_spatial_dims

__all__ = [
    "AXIAL_ONLY_ROTATIONS",
    "N_VARIANTS",
    "Augment34",
    "Augment34d",
    "AxialRotation",
    "CornerShift",
    "CubeSymmetry",
    "RandAugment34d",
    "expand_34",
    "variant_names",
]

N_VARIANTS = 34
# first step: where axis 0 goes (plane, k) ; second: k quarter turns in the (1, 2) plane
_FIRST: tuple[tuple[tuple[int, int], int], ...] = (((0, 1), 0), ((0, 1), 1), ((0, 1), 2), ((0, 1), 3), ((0, 2), 1), ((0, 2), 3))
#: Indices of the 8 cube rotations that keep the axial (last) axis on itself.
AXIAL_ONLY_ROTATIONS = (0, 2, 4, 6, 8, 10, 12, 14)


def _check(img: Any, case: str = "input") -> None:
    check_spatial_dims(img, 3, "img", case)


def _as_meta(img: Any) -> MetaTensor:
    if isinstance(img, MetaTensor):
        return img
    return MetaTensor(torch.as_tensor(np.asarray(img) if isinstance(img, np.ndarray) else img))


class CubeSymmetry(Transform):
    """One of the 24 proper rotations of a cube, exact (MONAI ``Rotate90`` compositions).

    Args:
        index: 0-23 (0 = identity); see the module docstring for the order.

    ``inverse(img)`` undoes it (affine restored) using MONAI's transform trace.
    """

    backend = Rotate90.backend

    def __init__(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 24:
            raise ValueError(f"cube rotation index must be an integer in [0, 23], got {index!r}.")
        self.index = index
        (plane, k1), k2 = _FIRST[index // 4], index % 4
        self.ops = [op for op in (Rotate90(k1, plane) if k1 else None, Rotate90(k2, (1, 2)) if k2 else None) if op is not None]

    def __call__(self, img: Any) -> MetaTensor:
        _check(img)
        out = _as_meta(img)
        for op in self.ops:
            out = op(out)
        return out

    def inverse(self, img: MetaTensor) -> MetaTensor:
        for op in reversed(self.ops):
            img = op.inverse(img)
        return img


class CornerShift(Transform):
    """Shift the content by (+-s, +-s, +-s) voxels towards one of the 8 cube corners.

    Exact: voxels move by whole indices; the uncovered border is filled with ``fill``
    (default 0, the background of subtraction images and masks). Shape and affine are
    unchanged (the content moves in the scanner frame); ``inverse`` shifts back, with the
    border that left the field of view lost.

    Args:
        index: 0-7, signs of (x, y, z) in binary order: 0 = (+, +, +), 7 = (-, -, -).
        shift: s in voxels (default 10, seed 2).
        fill: value of the uncovered border.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, index: int, shift: int = 10, fill: float = 0.0) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 8:
            raise ValueError(f"corner shift index must be an integer in [0, 7], got {index!r}.")
        if isinstance(shift, bool) or not isinstance(shift, int) or shift < 1:
            raise ValueError(f"shift must be a positive integer number of voxels, got {shift!r}.")
        self.index, self.shift, self.fill = index, shift, fill
        self.offsets = tuple(-shift if (index >> (2 - i)) & 1 else shift for i in range(3))

    @staticmethod
    def _apply(img: Any, offsets: Sequence[int], fill: float) -> Any:
        t = _as_meta(img)
        out = torch.full_like(t, fill)
        src, dst = [slice(None)], [slice(None)]
        for o, n in zip(offsets, t.shape[1:]):
            if abs(o) >= n:
                return out
            src.append(slice(0, n - o) if o >= 0 else slice(-o, n))
            dst.append(slice(o, n) if o >= 0 else slice(0, n + o))
        out[tuple(dst)] = t[tuple(src)]
        return out

    def __call__(self, img: Any) -> MetaTensor:
        _check(img)
        return self._apply(img, self.offsets, self.fill)

    def inverse(self, img: Any) -> MetaTensor:
        return self._apply(img, [-o for o in self.offsets], self.fill)


class AxialRotation(Transform):
    """In-plane rotation of every axial slice by ``angle_deg`` (MONAI ``Rotate`` about Z).

    Args:
        angle_deg: rotation angle in degrees (seed 2: +-10).
        mode: ``"bilinear"`` for images, ``"nearest"`` for masks.
    """

    backend = Rotate.backend

    def __init__(self, angle_deg: float, mode: str = "bilinear") -> None:
        self.angle_deg = float(angle_deg)
        self.op = Rotate(angle=(0.0, 0.0, math.radians(self.angle_deg)), keep_size=True, mode=mode, padding_mode="zeros")

    def __call__(self, img: Any) -> MetaTensor:
        _check(img)
        out = self.op(_as_meta(img).float())
        return out

    def inverse(self, img: MetaTensor) -> MetaTensor:
        return self.op.inverse(img)


def variant_names(shift: int = 10, angle_deg: float = 10.0) -> list[str]:
    """Names of the 34 variants in order, e.g. ``cube_00`` ... ``shift_+10-10+10`` ... ``rot_-10``."""
    names = [f"cube_{i:02d}" for i in range(24)]
    for i in range(8):
        offs = CornerShift(i, shift).offsets
        names.append("shift_" + "".join(f"{o:+d}" for o in offs))
    return names + [f"rot_{angle_deg:+g}", f"rot_{-angle_deg:+g}"]


@dataclass
class Augment34(Transform):
    """Fixed variant ``index`` (0-33) of the 34-fold augmentation, for images or masks.

    Args:
        index: variant index (see the module docstring).
        shift: corner-shift size in voxels.
        angle_deg: axial rotation angle.
        mode: interpolation of the two axial rotations (``"nearest"`` for masks).
        fill: fill value of corner shifts.
    """

    index: int
    shift: int = 10
    angle_deg: float = 10.0
    mode: str = "bilinear"
    fill: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index < N_VARIANTS:
            raise ValueError(f"augmentation variant index must be an integer in [0, 33], got {self.index!r}.")
        i = self.index
        if i < 24:
            self.op: Any = CubeSymmetry(i)
        elif i < 32:
            self.op = CornerShift(i - 24, self.shift, self.fill)
        else:
            self.op = AxialRotation(self.angle_deg if i == 32 else -self.angle_deg, self.mode)

    def __call__(self, img: Any) -> MetaTensor:
        return self.op(img)

    def inverse(self, img: Any) -> MetaTensor:
        return self.op.inverse(img)


class Augment34d(MapTransform):
    """Dictionary form of :class:`Augment34`: the same variant for every key.

    Args:
        keys: image and mask keys.
        index: variant 0-33.
        mode: interpolation per key (str or sequence), e.g. ``("bilinear", "nearest")``.
    """

    backend = Rotate.backend

    def __init__(self, keys: Any, index: int, mode: str | Sequence[str] = "bilinear", shift: int = 10, angle_deg: float = 10.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        modes = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)
        if len(modes) != len(self.keys):
            raise ValueError(f"mode must be one string or one per key ({len(self.keys)}), got {mode!r}.")
        self.index = index
        self.ops = {k: Augment34(index, shift, angle_deg, m) for k, m in zip(self.keys, modes)}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for k in self.key_iterator(d):
            check_spatial_dims(d[k], 3, str(k), case_label(d))
            out = self.ops[k](d[k])
            if self.ops[k].mode == "nearest" and self.index >= 32:
                out = out.round()
            d[k] = out
        d["augmentation_variant"] = self.index
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for k in self.key_iterator(d):
            d[k] = self.ops[k].inverse(d[k])
        return d


class RandAugment34d(Randomizable, MapTransform):
    """Draw one of the 34 variants per call (one draw shared by all keys).

    For on-line training and test-time augmentation. Uses the instance RNG
    (``set_random_state``), never the global one.

    Args:
        keys: image and mask keys.
        prob: probability of augmenting at all (else the data pass through unchanged).
        variants: subset of variant indices to draw from (default all 34; for non-cubic
            volumes e.g. ``AXIAL_ONLY_ROTATIONS + tuple(range(24, 34))``).
        mode: interpolation per key, as in :class:`Augment34d`.
    """

    backend = Rotate.backend

    def __init__(self, keys: Any, prob: float = 1.0, variants: Sequence[int] | None = None, mode: str | Sequence[str] = "bilinear", shift: int = 10, angle_deg: float = 10.0, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}.")
        self.variants = tuple(range(N_VARIANTS)) if variants is None else tuple(variants)
        bad = [v for v in self.variants if not (isinstance(v, int) and 0 <= v < N_VARIANTS)]
        if bad or not self.variants:
            raise ValueError(f"variants must be a non-empty subset of 0..33, got {list(variants or [])!r}.")
        self.prob, self.mode, self.shift, self.angle_deg = prob, mode, shift, angle_deg
        self._index: int | None = None

    def randomize(self, data: Any = None) -> None:
        self._index = int(self.R.choice(self.variants)) if self.R.rand() < self.prob else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize()
        if self._index is None:
            return dict(data)
        return Augment34d(self.keys, self._index, self.mode, self.shift, self.angle_deg, self.allow_missing_keys)(data)


def expand_34(data: Mapping[Hashable, Any], keys: Sequence[str], mode: str | Sequence[str] = "bilinear", variants: Sequence[int] | None = None) -> list[dict[Hashable, Any]]:
    """All variants of one data dict (seed 2's offline expansion; test-time augmentation)."""
    return [Augment34d(list(keys), i, mode)(data) for i in (variants if variants is not None else range(N_VARIANTS))]
