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

Every transform here is a MONAI ``InvertibleTransform`` and ``LazyTransform``: it records ONE
entry under its own class in ``applied_operations`` (the MONAI sub-steps it is built from are
kept inside that entry), so ``Compose.inverse`` and ``Invertd`` undo it in its place in any
pipeline; with ``lazy=True`` (or inside ``Compose(..., lazy=True)``) it only adds a pending
operation and MONAI resamples once for the whole chain. Spatial outputs follow MONAI's spatial
transforms: a MetaTensor (a plain tensor under ``set_track_meta(False)``) whatever the input type.

Note: rotations that move the slice axis change the shape of a non-cubic volume (X, Y, Z are
permuted); this is what seed 2 does with its cubic crops. Use ``axial_only`` variants (the 8
rotations that keep the axial axis) for non-cubic inputs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import (
    BorderPad,
    InvertibleTransform,
    LazyTransform,
    MapTransform,
    RandomizableTransform,
    Rotate,
    Rotate90,
    SpatialCrop,
)
from monai.utils import TraceKeys, TransformBackends

from dce_monai.transforms.utils import case_label, check_spatial_dims, fresh_tensor, record_as_one

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
#: Variant recorded under ``augmentation_variant`` when :class:`RandAugment34d` applies none.
NO_VARIANT = -1
# first step: where axis 0 goes (plane, k) ; second: k quarter turns in the (1, 2) plane
_FIRST: tuple[tuple[tuple[int, int], int], ...] = (((0, 1), 0), ((0, 1), 1), ((0, 1), 2), ((0, 1), 3), ((0, 2), 1), ((0, 2), 3))
#: Indices of the 8 cube rotations that keep the axial (last) axis on itself.
AXIAL_ONLY_ROTATIONS = (0, 2, 4, 6, 8, 10, 12, 14)
_ROTATIONS = (32, 33)


def _check(img: Any, case: str = "input") -> None:
    check_spatial_dims(img, 3, "img", case)


def _lazy(xform: LazyTransform, lazy: bool | None) -> bool:
    return bool(xform.lazy if lazy is None else lazy)


class CubeSymmetry(InvertibleTransform, LazyTransform):
    """One of the 24 proper rotations of a cube, exact (MONAI ``Rotate90`` compositions).

    Args:
        index: 0-23 (0 = identity); see the module docstring for the order.
        lazy: record a pending operation instead of moving voxels (MONAI lazy resampling).

    One trace entry ``CubeSymmetry`` (the ``Rotate90`` steps inside it); ``inverse(img)`` undoes
    it, affine included, as does ``Compose.inverse``.

    Example:
        >>> x = MetaTensor(torch.rand(1, 4, 3, 2))
        >>> y = CubeSymmetry(5)(x); tuple(y.shape), y.applied_operations[-1]["class"]
        ((1, 3, 2, 4), 'CubeSymmetry')
    """

    backend = Rotate90.backend

    def __init__(self, index: int, lazy: bool = False) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 24:
            raise ValueError(f"cube rotation index must be an integer in [0, 23], got {index!r}.")
        LazyTransform.__init__(self, lazy)
        self.index = index
        (plane, k1), k2 = _FIRST[index // 4], index % 4
        self.steps = [step for step in ((k1, plane), (k2, (1, 2))) if step[0]]

    def __call__(self, img: Any, lazy: bool | None = None) -> torch.Tensor:
        """Rotate ``img`` (C, X, Y, Z); ``lazy`` overrides the instance flag for this call."""
        _check(img)
        lazy_ = _lazy(self, lazy)
        out = fresh_tensor(img) if not self.steps else img
        for k, plane in self.steps:
            out = Rotate90(k, plane, lazy=lazy_)(out)
        return record_as_one(self, out, len(self.steps), lazy_, index=self.index)

    def inverse(self, img: MetaTensor) -> MetaTensor:
        return self.inverse_transform(img, self.pop_transform(img))

    def inverse_transform(self, img: MetaTensor, transform: Mapping[str, Any]) -> MetaTensor:
        """Undo the rotation recorded in ``transform`` (an entry this class pushed)."""
        for sub in reversed(transform[TraceKeys.EXTRA_INFO]["sub"]):
            img = Rotate90().inverse_transform(img, sub)
        return img


class CornerShift(InvertibleTransform, LazyTransform):
    """Shift the content by (+-s, +-s, +-s) voxels towards one of the 8 cube corners.

    Exact: voxels move by whole indices; the uncovered border is filled with ``fill``
    (default 0, the background of subtraction images and masks). Built as MONAI
    ``BorderPad`` (``s`` voxels on the side the content moves away from) + ``SpatialCrop`` back
    to the input shape, so the affine is updated like MONAI's: the content keeps its place in
    the scanner frame and the field of view moves by ``-s`` voxels along each axis
    (``affine_out = affine_in @ T(-offsets)``). ``inverse`` shifts back (the border that left
    the field of view is lost, filled with ``fill``) and restores the affine.

    Args:
        index: 0-7, signs of (x, y, z) in binary order: 0 = (+, +, +), 7 = (-, -, -).
        shift: s in voxels (default 10, seed 2).
        fill: value of the uncovered border.
        lazy: record a pending operation instead of moving voxels. MONAI's lazy resampling
            pads with zeros, so lazy execution needs ``fill=0``.

    Raises:
        ValueError: bad ``index``/``shift`` (in ``__init__``); lazy execution with ``fill != 0``.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, index: int, shift: int = 10, fill: float = 0.0, lazy: bool = False) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 8:
            raise ValueError(f"corner shift index must be an integer in [0, 7], got {index!r}.")
        if isinstance(shift, bool) or not isinstance(shift, int) or shift < 1:
            raise ValueError(f"shift must be a positive integer number of voxels, got {shift!r}.")
        LazyTransform.__init__(self, lazy)
        self.index, self.shift, self.fill = index, shift, fill
        self.offsets = tuple(-shift if (index >> (2 - i)) & 1 else shift for i in range(3))

    def _shift(self, img: Any, offsets: Sequence[int], lazy: bool, trace: bool = True) -> torch.Tensor:
        shape = img.peek_pending_shape() if isinstance(img, MetaTensor) else img.shape[1:]
        border = [b for o in offsets for b in (max(o, 0), max(-o, 0))]
        start = [max(-o, 0) for o in offsets]
        pad = BorderPad(border, mode="constant", lazy=lazy, value=self.fill)
        crop = SpatialCrop(roi_start=start, roi_end=[s + int(n) for s, n in zip(start, shape)], lazy=lazy)
        pad.tracing = crop.tracing = trace
        return crop(pad(img))

    def __call__(self, img: Any, lazy: bool | None = None) -> torch.Tensor:
        """Shift ``img`` (C, X, Y, Z); ``lazy`` overrides the instance flag for this call."""
        _check(img)
        lazy_ = _lazy(self, lazy)
        if lazy_ and self.fill != 0:
            raise ValueError(f"CornerShift: lazy execution pads with zeros (MONAI lazy resampling); fill must be 0, got fill={self.fill!r}.")
        return record_as_one(self, self._shift(img, self.offsets, lazy_), 2, lazy_, offsets=list(self.offsets))

    def inverse(self, img: MetaTensor) -> MetaTensor:
        return self.inverse_transform(img, self.pop_transform(img))

    def inverse_transform(self, img: MetaTensor, transform: Mapping[str, Any]) -> MetaTensor:
        """Shift back by the offsets recorded in ``transform`` (affine restored)."""
        return self._shift(img, [-int(o) for o in transform[TraceKeys.EXTRA_INFO]["offsets"]], lazy=False, trace=False)


class AxialRotation(InvertibleTransform, LazyTransform):
    """In-plane rotation of every axial slice by ``angle_deg`` (MONAI ``Rotate`` about Z).

    Args:
        angle_deg: rotation angle in degrees (seed 2: +-10).
        mode: ``"bilinear"`` for images, ``"nearest"`` for masks.
        lazy: record a pending operation instead of resampling.

    One trace entry ``AxialRotation`` (MONAI's ``Rotate`` entry inside it); output float32.
    """

    backend = Rotate.backend

    def __init__(self, angle_deg: float, mode: str = "bilinear", lazy: bool = False) -> None:
        LazyTransform.__init__(self, lazy)
        self.angle_deg = float(angle_deg)
        self.mode = mode
        self.op = Rotate(angle=(0.0, 0.0, math.radians(self.angle_deg)), keep_size=True, mode=mode, padding_mode="zeros")

    def __call__(self, img: Any, lazy: bool | None = None) -> torch.Tensor:
        """Rotate every axial slice of ``img`` (C, X, Y, Z)."""
        _check(img)
        lazy_ = _lazy(self, lazy)
        return record_as_one(self, self.op(img, lazy=lazy_), 1, lazy_, angle_deg=self.angle_deg)

    def inverse(self, img: MetaTensor) -> MetaTensor:
        return self.inverse_transform(img, self.pop_transform(img))

    def inverse_transform(self, img: MetaTensor, transform: Mapping[str, Any]) -> MetaTensor:
        """Rotate back (MONAI ``Rotate.inverse_transform`` on the recorded entry)."""
        return self.op.inverse_transform(img, transform[TraceKeys.EXTRA_INFO]["sub"][0])


def variant_names(shift: int = 10, angle_deg: float = 10.0) -> list[str]:
    """Names of the 34 variants in order, e.g. ``cube_00`` ... ``shift_+10-10+10`` ... ``rot_-10``."""
    names = [f"cube_{i:02d}" for i in range(24)]
    for i in range(8):
        offs = CornerShift(i, shift).offsets
        names.append("shift_" + "".join(f"{o:+d}" for o in offs))
    return names + [f"rot_{angle_deg:+g}", f"rot_{-angle_deg:+g}"]


class Augment34(InvertibleTransform, LazyTransform):
    """Fixed variant ``index`` (0-33) of the 34-fold augmentation, for images or masks.

    Args:
        index: variant index (see the module docstring).
        shift: corner-shift size in voxels.
        angle_deg: axial rotation angle.
        mode: interpolation of the two axial rotations (``"nearest"`` for masks).
        fill: fill value of corner shifts.
        lazy: record a pending operation instead of moving voxels.

    One trace entry ``Augment34`` (the variant's own entry inside it).
    """

    backend = Rotate.backend

    def __init__(self, index: int, shift: int = 10, angle_deg: float = 10.0, mode: str = "bilinear", fill: float = 0.0, lazy: bool = False) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < N_VARIANTS:
            raise ValueError(f"augmentation variant index must be an integer in [0, 33], got {index!r}.")
        LazyTransform.__init__(self, lazy)
        self.index, self.shift, self.angle_deg, self.mode, self.fill = index, shift, angle_deg, mode, fill
        i = index
        if i < 24:
            self.op: CubeSymmetry | CornerShift | AxialRotation = CubeSymmetry(i)
        elif i < 32:
            self.op = CornerShift(i - 24, shift, fill)
        else:
            self.op = AxialRotation(angle_deg if i == 32 else -angle_deg, mode)

    def __repr__(self) -> str:
        return f"Augment34(index={self.index}, shift={self.shift}, angle_deg={self.angle_deg}, mode={self.mode!r}, fill={self.fill})"

    def __call__(self, img: Any, lazy: bool | None = None) -> torch.Tensor:
        lazy_ = _lazy(self, lazy)
        return record_as_one(self, self.op(img, lazy=lazy_), 1, lazy_, variant=self.index)

    def inverse(self, img: MetaTensor) -> MetaTensor:
        return self.inverse_transform(img, self.pop_transform(img))

    def inverse_transform(self, img: MetaTensor, transform: Mapping[str, Any]) -> MetaTensor:
        """Undo the variant recorded in ``transform``."""
        return self.op.inverse_transform(img, transform[TraceKeys.EXTRA_INFO]["sub"][0])


def _modes(keys: Sequence[Hashable], mode: str | Sequence[str]) -> list[str]:
    modes = [mode] * len(keys) if isinstance(mode, str) else list(mode)
    if len(modes) != len(keys):
        raise ValueError(f"mode must be one string or one per key ({len(keys)}), got {mode!r}.")
    return modes


class Augment34d(MapTransform, InvertibleTransform, LazyTransform):
    """Dictionary form of :class:`Augment34`: the same variant for every key.

    Args:
        keys: image and mask keys.
        index: variant 0-33.
        mode: interpolation per key (str or sequence), e.g. ``("bilinear", "nearest")``.
        shift, angle_deg: see :class:`Augment34`.
        allow_missing_keys: skip keys missing from the dict.
        lazy: record pending operations instead of moving voxels.

    Writes ``d["augmentation_variant"] = index``; one trace entry ``Augment34d`` per key.
    """

    backend = Rotate.backend

    def __init__(self, keys: Any, index: int, mode: str | Sequence[str] = "bilinear", shift: int = 10, angle_deg: float = 10.0, allow_missing_keys: bool = False, lazy: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        LazyTransform.__init__(self, lazy)
        modes = _modes(self.keys, mode)
        self.index = index
        self.ops = {k: Augment34(index, shift, angle_deg, m) for k, m in zip(self.keys, modes)}

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:
        d = dict(data)
        lazy_ = _lazy(self, lazy)
        for k in self.key_iterator(d):
            check_spatial_dims(d[k], 3, str(k), case_label(d))
            out = self.ops[k](d[k], lazy=lazy_)
            if self.ops[k].mode == "nearest" and self.index in _ROTATIONS and not lazy_:
                out = out.round()
            d[k] = record_as_one(self, out, 1, lazy_, variant=self.index)
        d["augmentation_variant"] = self.index
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for k in self.key_iterator(d):
            entry = self.pop_transform(d[k])
            d[k] = self.ops[k].inverse_transform(d[k], entry[TraceKeys.EXTRA_INFO]["sub"][0])
        return d


class RandAugment34d(RandomizableTransform, MapTransform, InvertibleTransform, LazyTransform):
    """Draw one of the 34 variants per call (one draw shared by all keys).

    For on-line training and test-time augmentation. Uses the instance RNG
    (``set_random_state``), never the global one. Like MONAI's ``RandRotate90d``, every call
    records one trace entry ``RandAugment34d`` per key, also when no variant is applied, so
    ``Compose.inverse`` / ``Invertd`` work for every draw, and the output has the same keys and
    types either way (batches collate): ``d["augmentation_variant"]`` is the variant, or
    ``-1`` when none was applied; images are tensors (MetaTensors when meta tracking is on), and
    float32 when ``variants`` includes the interpolating axial rotations (32, 33), as MONAI's
    ``RandRotate`` outputs float32 whether or not it rotates.

    Args:
        keys: image and mask keys.
        prob: probability of augmenting at all (else the data pass through unchanged).
        variants: subset of variant indices to draw from (default all 34; for non-cubic
            volumes e.g. ``AXIAL_ONLY_ROTATIONS + tuple(range(24, 34))``).
        mode: interpolation per key, as in :class:`Augment34d`.
        shift, angle_deg: see :class:`Augment34`.
        allow_missing_keys: skip keys missing from the dict.
        lazy: record pending operations instead of moving voxels.

    Raises:
        ValueError: ``prob`` outside [0, 1], bad ``variants`` or ``mode``.
    """

    backend = Rotate.backend

    def __init__(self, keys: Any, prob: float = 1.0, variants: Sequence[int] | None = None, mode: str | Sequence[str] = "bilinear", shift: int = 10, angle_deg: float = 10.0, allow_missing_keys: bool = False, lazy: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}.")
        RandomizableTransform.__init__(self, prob)
        LazyTransform.__init__(self, lazy)
        self.variants = tuple(range(N_VARIANTS)) if variants is None else tuple(variants)
        bad = [v for v in self.variants if isinstance(v, bool) or not (isinstance(v, int) and 0 <= v < N_VARIANTS)]
        if bad or not self.variants:
            raise ValueError(f"variants must be a non-empty subset of 0..33, got {list(variants or [])!r}.")
        self.mode, self.shift, self.angle_deg = mode, shift, angle_deg
        self.modes = _modes(self.keys, mode)
        self.float_output = bool(set(_ROTATIONS) & set(self.variants))
        self._index: int | None = None
        self._ops: dict[int, Augment34d] = {}

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._index = int(self.R.choice(self.variants)) if self._do_transform else None

    def _variant(self, index: int) -> Augment34d:
        if index not in self._ops:
            self._ops[index] = Augment34d(self.keys, index, self.modes, self.shift, self.angle_deg, self.allow_missing_keys)
        return self._ops[index]

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:
        self.randomize()
        lazy_ = _lazy(self, lazy)
        d = dict(data)
        if self._index is not None:
            op = self._variant(self._index)
            d = op(d, lazy=lazy_)
            n = 1
        else:
            n = 0
        for k in self.key_iterator(d):
            if n == 0:
                check_spatial_dims(d[k], 3, str(k), case_label(d))
                d[k] = fresh_tensor(d[k])
            if self.float_output and not lazy_ and d[k].dtype != torch.float32:
                d[k] = d[k].to(torch.float32)
            d[k] = record_as_one(self, d[k], n, lazy_, variant=NO_VARIANT if self._index is None else self._index)
        d["augmentation_variant"] = NO_VARIANT if self._index is None else self._index
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for k in self.key_iterator(d):
            entry = self.pop_transform(d[k])
            info = entry[TraceKeys.EXTRA_INFO]
            if entry[TraceKeys.DO_TRANSFORM]:
                inner = info["sub"][0]
                d[k] = self._variant(int(info["variant"])).ops[k].inverse_transform(d[k], inner[TraceKeys.EXTRA_INFO]["sub"][0])
        return d


def expand_34(data: Mapping[Hashable, Any], keys: Sequence[str], mode: str | Sequence[str] = "bilinear", variants: Sequence[int] | None = None) -> list[dict[Hashable, Any]]:
    """All variants of one data dict (seed 2's offline expansion; test-time augmentation)."""
    return [Augment34d(list(keys), i, mode)(data) for i in (variants if variants is not None else range(N_VARIANTS))]
