"""Crop to the tumour mask's bounding box and resize (seed 2's "mask only" input).

Seed 2 (mask-guided 3D VGG) compares three inputs; in the "mask only" arm the network sees
the image restricted to the tumour: the bounding box of the tumour mask plus a margin, resized
to a fixed spatial size so that every lesion gives a tensor of the same shape.

The crop and resize are MONAI's ``SpatialCrop`` and ``Resize``, so the MetaTensor affine is
updated by MONAI; like MONAI's ``ResizeWithPadOrCrop`` the two steps are recorded as ONE entry
under the transform's own class in ``applied_operations`` (invertible with ``Invertd`` /
``Compose.inverse`` / ``.inverse``), and with ``lazy=True`` they become one pending operation
(one resampling for a lazy chain). Only the box computation (mask bounding box via
``monai.transforms.utils.generate_spatial_bounding_box`` + a margin in voxels or millimetres,
clipped to the image) is done here.

Reference: seed 2, mask-guided 3D VGG with CAM head (``/work/shared/seeds/004_*``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    BorderPad,
    InvertibleTransform,
    LazyTransform,
    MapTransform,
    Resize,
    SpatialCrop,
)
from monai.transforms.utils import generate_spatial_bounding_box
from monai.utils import TraceKeys, TransformBackends, ensure_tuple_rep, look_up_option

from dce_monai.transforms.utils import (
    case_label,
    check_binary_mask,
    check_same_grid,
    check_spatial_dims,
    record_as_one,
)

__all__ = ["BoundingBoxCrop", "BoundingBoxCropd", "LesionMaskd", "mask_bounding_box"]

MARGIN_UNITS = ("voxel", "mm")
INTERP_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


def _spacing(img: Any, ndim: int) -> np.ndarray:
    """Voxel spacing in mm from the MetaTensor affine (column norms); ones without an affine."""
    if isinstance(img, MetaTensor):
        aff = np.asarray(img.affine, dtype=np.float64)
        return np.linalg.norm(aff[:ndim, :ndim], axis=0)
    return np.ones(ndim)


def mask_bounding_box(
    mask: Any,
    margin: float | Sequence[float] = 0,
    margin_unit: str = "voxel",
    ref: Any | None = None,
    case: str = "input",
    name: str = "mask",
) -> tuple[list[int], list[int]]:
    """Bounding box of a binary mask, grown by a margin and clipped to the image.

    Formula: ``start_i = max(0, min_i - m_i)``, ``end_i = min(S_i, max_i + 1 + m_i)`` with
    ``m_i = ceil(margin_i / spacing_i)`` voxels when ``margin_unit="mm"`` (spacing in mm from the
    affine of ``ref`` or ``mask``), else ``m_i = ceil(margin_i)``.

    Args:
        mask: channel-first binary mask (1, X, Y, Z) (numpy, torch or MetaTensor).
        margin: margin per spatial axis (scalar broadcast), in voxels or mm, >= 0.
        margin_unit: ``"voxel"`` or ``"mm"``.
        ref: image whose affine gives the spacing (defaults to ``mask``).
        case: case label used in error messages.
        name: key name used in error messages.

    Returns:
        ``(start, end)`` voxel indices (end exclusive), one per spatial axis.

    Raises:
        ValueError: empty or non-binary mask, negative margin, unknown unit.

    Example:
        >>> m = np.zeros((1, 8, 8, 4)); m[0, 2:4, 3:5, 1] = 1
        >>> mask_bounding_box(m, margin=1)
        ([1, 2, 0], [5, 6, 3])
    """
    unit = look_up_option(margin_unit, MARGIN_UNITS)
    ndim = len(mask.shape) - 1
    margins = np.asarray(ensure_tuple_rep(margin, ndim), dtype=np.float64)
    if np.any(margins < 0) or not np.all(np.isfinite(margins)):
        raise ValueError(f"{case}: margin must be finite and >= 0, got {margin!r}.")
    check_binary_mask(mask, name=name, case=case, allow_empty=False)
    start, end = generate_spatial_bounding_box(mask, select_fn=lambda x: x > 0)
    if unit == "mm":
        margins = margins / _spacing(ref if ref is not None else mask, ndim)
    vox = np.ceil(margins - 1e-6).astype(int)
    shape = [int(s) for s in mask.shape[1:]]
    start = [max(0, int(s) - int(m)) for s, m in zip(start, vox)]
    end = [min(sz, int(e) + int(m)) for e, m, sz in zip(end, vox, shape)]
    return start, end


class BoundingBoxCrop(InvertibleTransform, LazyTransform):
    """Crop an image to a mask's bounding box plus margin, then resize to a fixed size.

    Formula: ``out = Resize(spatial_size)(img[:, start:end])`` with ``(start, end)`` from
    :func:`mask_bounding_box`. Voxel intensities are interpolated with ``mode``; the affine is
    updated by MONAI (crop = translation, resize = scaling), so world coordinates stay correct.

    Args:
        spatial_size: output spatial size, e.g. ``(64, 64, 32)`` (positive ints).
        margin: margin around the box, per axis or scalar, >= 0.
        margin_unit: ``"voxel"`` or ``"mm"`` (mm uses the affine's voxel spacing).
        mode: interpolation mode of ``monai.transforms.Resize`` (``"nearest"`` for masks).
        lazy: record one pending operation instead of cropping and resizing (MONAI lazy
            resampling; the mask is read, so pending operations are applied before the call).
            When upsampling, MONAI's lazy resampling reads voxels just outside the box at its
            border, where the eager resize repeats the box's edge voxels.

    Trace: one ``BoundingBoxCrop`` entry (the ``SpatialCrop`` and ``Resize`` entries inside it).

    Raises:
        ValueError: bad ``spatial_size``/``margin``/``margin_unit``/``mode`` (in ``__init__``);
            empty or non-binary mask, image and mask on different grids (in ``__call__``).

    Example:
        >>> img = np.random.rand(1, 16, 16, 8).astype("float32")
        >>> m = np.zeros_like(img); m[0, 4:8, 4:8, 2:4] = 1
        >>> BoundingBoxCrop((8, 8, 4), margin=2)(img, m).shape
        torch.Size([1, 8, 8, 4])

    Reference: seed 2 (mask-guided 3D VGG), "mask only" input (``/work/shared/seeds/004_*``).
    """

    backend: ClassVar[list[TransformBackends]] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        spatial_size: Sequence[int],
        margin: float | Sequence[float] = 0,
        margin_unit: str = "voxel",
        mode: str = "trilinear",
        lazy: bool = False,
    ) -> None:
        LazyTransform.__init__(self, lazy)
        if isinstance(spatial_size, (int, str)) or not isinstance(spatial_size, Sequence) or len(spatial_size) == 0:
            raise ValueError(f"spatial_size must be a non-empty sequence of positive ints, got {spatial_size!r}.")
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in spatial_size):
            raise ValueError(f"spatial_size must be a non-empty sequence of positive ints, got {spatial_size!r}.")
        self.spatial_size = tuple(int(s) for s in spatial_size)
        margins = ensure_tuple_rep(margin, len(self.spatial_size))
        try:
            ok = all(float(m) >= 0 and np.isfinite(float(m)) for m in margins)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"margin must be a finite number >= 0 (or one per axis), got {margin!r}.")
        self.margin = tuple(float(m) for m in margins)
        self.margin_unit = look_up_option(margin_unit, MARGIN_UNITS)
        self.mode = look_up_option(mode, INTERP_MODES)

    def box(self, mask: Any, ref: Any | None = None, case: str = "input", name: str = "mask") -> tuple[list[int], list[int]]:
        """Bounding box (start, end) of ``mask`` grown by the margin; see :func:`mask_bounding_box`."""
        check_spatial_dims(mask, len(self.spatial_size), name=name, case=case)
        return mask_bounding_box(mask, self.margin, self.margin_unit, ref=ref, case=case, name=name)

    @property
    def requires_current_data(self) -> bool:
        """The box is read from the mask's voxels: pending operations are applied first."""
        return True

    def crop_resize(self, img: Any, start: Sequence[int], end: Sequence[int], mode: str | None = None, lazy: bool | None = None) -> torch.Tensor:
        """Apply ``SpatialCrop(start, end)`` then ``Resize(spatial_size)`` to ``img``, recorded as one entry."""
        lazy_ = self.lazy if lazy is None else lazy
        cropped = SpatialCrop(roi_start=list(start), roi_end=list(end), lazy=lazy_)(img)
        m = self.mode if mode is None else mode
        kwargs: dict[str, Any] = {} if m in ("nearest", "nearest-exact", "area") else {"anti_aliasing": False}
        out = Resize(spatial_size=self.spatial_size, mode=m, lazy=lazy_, **kwargs)(cropped)
        return record_as_one(self, out, 2, lazy_, box_start=[int(v) for v in start], box_end=[int(v) for v in end])

    def __call__(  # type: ignore[override]
        self, img: Any, mask: Any, case: str = "input", name: str = "img", mask_name: str = "mask", lazy: bool | None = None
    ) -> torch.Tensor:
        """Crop ``img`` to ``mask``'s bounding box plus margin and resize.

        Args:
            img: channel-first image (C, X, Y, Z).
            mask: channel-first binary mask (1, X, Y, Z) on the same grid.
            case, name, mask_name: labels for error messages.
            lazy: overrides the instance's ``lazy`` flag for this call.

        Returns:
            The cropped, resized image (MetaTensor when MONAI's meta tracking is on).
        """
        check_spatial_dims(img, len(self.spatial_size), name=name, case=case)
        check_spatial_dims(mask, len(self.spatial_size), name=mask_name, case=case)
        check_same_grid({name: img, mask_name: mask}, case=case)
        start, end = self.box(mask, ref=img, case=case, name=mask_name)
        return self.crop_resize(img, start, end, lazy=lazy)

    def inverse(self, img: MetaTensor) -> torch.Tensor:
        """Undo the crop and resize recorded in ``img.applied_operations`` (MONAI trace)."""
        return self.inverse_transform(img, self.pop_transform(img))

    def inverse_transform(self, img: MetaTensor, transform: Mapping[str, Any]) -> torch.Tensor:
        """Undo the entry ``transform``: MONAI ``Resize.inverse_transform``, then a ``BorderPad`` of
        the cropped amounts (what ``SpatialCrop.inverse`` does); the voxels outside the box are 0."""
        crop_op, resize_op = transform[TraceKeys.EXTRA_INFO]["sub"]
        out = Resize(spatial_size=self.spatial_size).inverse_transform(img, resize_op)
        pad = BorderPad(crop_op[TraceKeys.EXTRA_INFO]["cropped"])
        with pad.trace_transform(False):
            return pad(out)


class BoundingBoxCropd(MapTransform, InvertibleTransform, LazyTransform):
    """Dictionary wrapper of :class:`BoundingBoxCrop`: one box from ``mask_key`` for all ``keys``.

    The box is computed once from ``d[mask_key]`` (before any key is cropped), so images and
    masks listed in ``keys`` stay aligned. ``mode`` may be one per key (``"nearest"`` for masks).

    Args:
        keys: keys to crop (images and/or masks).
        mask_key: key of the binary tumour mask defining the box.
        spatial_size, margin, margin_unit: see :class:`BoundingBoxCrop`.
        mode: interpolation mode, one or one per key.
        allow_missing_keys: skip keys missing from the dict (the mask key is still required:
            it defines the box).
        lazy: record one pending operation per key (see :class:`BoundingBoxCrop`).

    ``mask_key`` is named apart from ``keys`` because it has a role: it defines the box (and
    is cropped only if it is also listed in ``keys``). Trace: one ``BoundingBoxCropd`` entry per key.

    Example:
        >>> d = {"sub": np.random.rand(1, 16, 16, 8), "mask": np.zeros((1, 16, 16, 8))}
        >>> d["mask"][0, 4:8, 4:8, 2:4] = 1
        >>> BoundingBoxCropd(["sub", "mask"], "mask", (8, 8, 4), mode=["trilinear", "nearest"])(d)["sub"].shape
        torch.Size([1, 8, 8, 4])
    """

    backend = BoundingBoxCrop.backend

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str = "mask",
        spatial_size: Sequence[int] = (64, 64, 32),
        margin: float | Sequence[float] = 0,
        margin_unit: str = "voxel",
        mode: str | Sequence[str] = "trilinear",
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        LazyTransform.__init__(self, lazy)
        if not isinstance(mask_key, str) or not mask_key:
            raise ValueError(f"mask_key must be a non-empty string, got {mask_key!r}.")
        self.mask_key = mask_key
        self.cropper = BoundingBoxCrop(spatial_size, margin, margin_unit)
        self.modes = [look_up_option(m, INTERP_MODES) for m in ensure_tuple_rep(mode, len(self.keys))]

    @property
    def requires_current_data(self) -> bool:
        """The box is read from the mask's voxels: pending operations are applied first."""
        return True

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:  # type: ignore[override]
        """Crop every key in ``keys`` to the box of ``d[mask_key]`` and resize."""
        d = dict(data)
        case = case_label(d)
        if self.mask_key not in d:
            raise ValueError(f"{case}: mask key {self.mask_key!r} not found; available keys {sorted(map(str, d))}.")
        mask = d[self.mask_key]
        present = list(self.key_iterator(d))
        nd = len(self.cropper.spatial_size)
        for k in present:
            check_spatial_dims(d[k], nd, name=str(k), case=case)
        check_spatial_dims(mask, nd, name=self.mask_key, case=case)
        check_same_grid({self.mask_key: mask, **{str(k): d[k] for k in present}}, case=case)
        ref = d[present[0]] if present else None
        start, end = self.cropper.box(mask, ref=ref, case=case, name=self.mask_key)
        lazy_ = self.lazy if lazy is None else lazy
        for key, mode in self.key_iterator(d, self.modes):
            d[key] = record_as_one(self, self.cropper.crop_resize(d[key], start, end, mode=mode, lazy=lazy_), 1, lazy_)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Invert the crop + resize of every key in ``keys`` (see :meth:`BoundingBoxCrop.inverse`)."""
        d = dict(data)
        for key in self.key_iterator(d):
            entry = self.pop_transform(d[key])
            d[key] = self.cropper.inverse_transform(d[key], entry[TraceKeys.EXTRA_INFO]["sub"][0])
        return d


class LesionMaskd(MapTransform):
    """Binary mask of one lesion from the lesion label map: ``out = (label_map == label_value)``.

    The lesion's value is read per record from ``d[label_value_key]`` (manifest lesion records
    carry ``label_value``), which a fixed-label MONAI transform (``LabelToMaskd``) cannot do.
    Optionally intersected with a computed tumour mask (``intersect_key``, e.g. the FCM mask);
    an empty intersection is an error unless ``on_empty="lesion"`` keeps the lesion region.

    Args:
        label_map_key: key of the integer lesion label map (1, X, Y, Z).
        label_value_key: key of this lesion's value in the label map.
        output_key: key receiving the float {0, 1} mask (same meta/affine as the label map).
        intersect_key: optional key of a binary mask to intersect with.
        on_empty: ``"error"`` or ``"lesion"`` (what to do when the intersection is empty).
        allow_missing_keys: return the dict unchanged when the label map, the label value or
            the intersect key is missing (instead of raising).

    The keys are named by role (label map, this lesion's value, optional restriction, output)
    rather than passed as MONAI ``keys``: each plays a different part in the formula.

    Raises:
        ValueError: missing keys, lesion value absent from the label map, empty intersection.

    Example:
        >>> lm = np.zeros((1, 4, 4, 2)); lm[0, 1, 1, 0] = 2
        >>> LesionMaskd()({"label_map": lm, "label_value": 2})["mask"].sum().item()
        1.0
    """

    backend: ClassVar[list[TransformBackends]] = [TransformBackends.TORCH]

    def __init__(
        self,
        label_map_key: str = "label_map",
        label_value_key: str = "label_value",
        output_key: str = "mask",
        intersect_key: str | None = None,
        on_empty: str = "error",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__([label_map_key], allow_missing_keys)
        self.label_map_key, self.label_value_key, self.output_key = label_map_key, label_value_key, output_key
        self.intersect_key = intersect_key
        self.on_empty = look_up_option(on_empty, ("error", "lesion"))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add ``d[output_key]`` = mask of lesion ``d[label_value_key]``."""
        d = dict(data)
        case = case_label(d)
        for k in (self.label_map_key, self.label_value_key) + ((self.intersect_key,) if self.intersect_key else ()):
            if k not in d:
                if self.allow_missing_keys:
                    return d
                raise ValueError(f"{case}: key {k!r} not found; available keys {sorted(map(str, d))}.")
        lm = d[self.label_map_key]
        value = d[self.label_value_key]
        t = torch.as_tensor(np.asarray(lm)) if isinstance(lm, np.ndarray) else lm
        lesion = (t == int(value)).float() if isinstance(t, torch.Tensor) else torch.as_tensor(t == int(value)).float()
        if not bool(lesion.any()):
            raise ValueError(f"{case}: {self.label_value_key}={value!r} does not occur in {self.label_map_key!r}.")
        out = lesion
        if self.intersect_key:
            other = d[self.intersect_key]
            check_same_grid({self.label_map_key: lm, self.intersect_key: other}, case=case)
            other_t = torch.as_tensor(np.asarray(other)) if isinstance(other, np.ndarray) else torch.as_tensor(other)
            inter = lesion * (other_t > 0).float()
            if bool(inter.any()):
                out = inter
            elif self.on_empty == "error":
                raise ValueError(
                    f"{case}: {self.intersect_key!r} has no voxel inside lesion {value!r} of {self.label_map_key!r}."
                )
        d[self.output_key] = out
        return d
