"""Input checks shared by the dce_monai transforms.

Every check raises a ``ValueError`` whose message names the case (``patient_id`` /
``lesion_id`` when the data dict carries them), the key and the offending value, so that a
bad case in a 2,000-patient cohort is found from the message alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor, get_track_meta
from monai.utils import LazyAttr, TraceKeys, convert_to_tensor

__all__ = [
    "case_label",
    "check_binary_mask",
    "check_finite",
    "check_same_grid",
    "check_spatial_dims",
    "divide_keys",
    "fresh_tensor",
    "record_as_one",
    "spatial_shape",
    "to_float_tensor",
    "wrap_like",
]

CASE_KEYS = ("patient_id", "lesion_id")


def case_label(d: Mapping[Hashable, Any] | None) -> str:
    """Human-readable case name for error messages, e.g. ``"patient 'PH0003' lesion 'PH0003-L1'"``."""
    if not d:
        return "input"
    parts = [f"{k.split('_')[0]} {d[k]!r}" for k in CASE_KEYS if k in d]
    return " ".join(parts) if parts else "input"


def spatial_shape(img: Any) -> tuple[int, ...]:
    """Spatial shape of a channel-first image (drops the leading channel axis)."""
    return tuple(int(s) for s in img.shape[1:])


def check_spatial_dims(img: Any, ndim: int, name: str = "img", case: str = "input") -> None:
    """Require a channel-first image with ``ndim`` spatial dimensions.

    Raises:
        ValueError: e.g. ``"patient 'P1': 'T1pre' must be channel-first with 3 spatial dims
            (C, X, Y, Z), got shape (64, 64)."``
    """
    if len(img.shape) != ndim + 1:
        axes = ", ".join("XYZ"[:ndim]) if ndim <= 3 else f"{ndim} spatial"
        raise ValueError(
            f"{case}: {name!r} must be channel-first with {ndim} spatial dims (C, {axes}), "
            f"got shape {tuple(img.shape)}."
        )
    if any(int(n) == 0 for n in img.shape):
        raise ValueError(f"{case}: {name!r} is empty: shape {tuple(img.shape)} has a zero-size axis.")


def _affine(img: Any) -> np.ndarray | None:
    if isinstance(img, MetaTensor):
        return np.asarray(img.affine, dtype=np.float64)
    return None


def check_same_grid(
    images: Mapping[str, Any], case: str = "input", atol_mm: float = 1e-3
) -> None:
    """Require all images to share spatial shape and (for MetaTensors) affine.

    Raises:
        ValueError: naming both keys and their shapes or affines when they differ.
    """
    items = list(images.items())
    if not items:
        return
    ref_key, ref = items[0]
    ref_shape, ref_aff = spatial_shape(ref), _affine(ref)
    for key, img in items[1:]:
        shape = spatial_shape(img)
        if shape != ref_shape:
            raise ValueError(
                f"{case}: sequences are on different grids: {ref_key!r} has spatial shape "
                f"{ref_shape} but {key!r} has {shape}."
            )
        aff = _affine(img)
        if ref_aff is not None and aff is not None and not np.allclose(aff, ref_aff, atol=atol_mm):
            raise ValueError(
                f"{case}: sequences are on different grids: the affine of {key!r} differs from "
                f"that of {ref_key!r} by up to {np.abs(aff - ref_aff).max():.4g} mm."
            )


def check_real_dtype(img: Any, name: str = "img", case: str = "input") -> None:
    """Refuse complex or non-numeric (object, string) image data.

    A cast to float would silently drop an imaginary part, and torch fails on object arrays
    with a message that names neither the case nor the key.

    Raises:
        TypeError: e.g. ``"patient 'P1': 'T1pre': image data must be real-valued, got complex dtype complex64"``.
    """
    if isinstance(img, torch.Tensor):
        if torch.is_complex(img):
            raise TypeError(f"{case}: {name!r}: image data must be real-valued, got complex dtype {img.dtype}; take .real or .abs() first.")
        return
    dtype = img.dtype if isinstance(img, np.ndarray) else np.asarray(img).dtype
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{case}: {name!r}: image data must be real-valued, got complex dtype {dtype}; take .real or .abs() first.")
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(f"{case}: {name!r}: image data must be numeric, got dtype {dtype}.")


def check_finite(img: Any, name: str = "img", case: str = "input") -> None:
    """Refuse non-numeric data and NaN or Inf voxels, reporting how many there are."""
    check_real_dtype(img, name, case)
    t = torch.as_tensor(img) if not isinstance(img, np.ndarray) else torch.from_numpy(img)
    if t.is_floating_point():
        # counted on slabs of the largest axis (views): a full-size boolean copy would be a
        # transient 30 MiB per 448x448x160 volume, twice, in every transform that checks
        parts: Any = [t]
        if t.ndim:
            d = int(np.argmax(t.shape))
            parts = t.split(max(1, -(-t.shape[d] // 16)), dim=d)
        bad = sum(int(p.numel() - torch.isfinite(p).sum()) for p in parts)
        if bad:
            raise ValueError(f"{case}: {name!r} has {bad} NaN/Inf voxels; clean or mask them first.")


def check_binary_mask(mask: Any, name: str = "mask", case: str = "input", allow_empty: bool = False) -> None:
    """Require a mask with values in {0, 1} (bool allowed) and, unless allowed, not empty."""
    t = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask)
    if t.dtype != torch.bool:
        vals = torch.unique(t)
        extra = [v for v in vals.tolist() if v not in (0, 1)]
        if extra:
            shown = extra[:5]
            raise ValueError(
                f"{case}: {name!r} must be binary (values 0/1), found other values {shown}"
                f"{' ...' if len(extra) > 5 else ''}."
            )
    if not allow_empty and not bool(t.any()):
        raise ValueError(f"{case}: {name!r} is empty (no foreground voxel).")


def to_float_tensor(img: Any) -> torch.Tensor:
    """Return ``img`` as a float32 torch tensor (MetaTensor kept as MetaTensor).

    Integer scanner data (uint16) is converted *before* any arithmetic, which is what keeps
    subtraction and enhancement ratios free of unsigned overflow.

    Raises:
        TypeError: complex or non-numeric (object, string) data, which a cast to float would
            silently mangle (dropping the imaginary part) or fail on deep inside numpy.
    """
    check_real_dtype(img)
    if isinstance(img, np.ndarray):
        if img.dtype == np.uint16 or img.dtype == np.uint32:
            img = img.astype(np.float32)
        return torch.as_tensor(img, dtype=torch.float32)
    t = img if isinstance(img, torch.Tensor) else torch.as_tensor(img)
    return t.to(torch.float32)


def names_in(d: Mapping[Hashable, Any], keys: Sequence[Hashable]) -> list[Hashable]:
    """Keys of ``keys`` missing from ``d`` (helper for error messages)."""
    return [k for k in keys if k not in d]


def _data(t: Any) -> Any:
    """The plain tensor under a MetaTensor (its data, no meta); anything else as it is."""
    return t.as_tensor() if isinstance(t, MetaTensor) else t


def wrap_like(out: torch.Tensor, ref: Any) -> torch.Tensor:
    """``out`` typed as a MONAI intensity transform returns it, carrying ``ref``'s meta and trace.

    MONAI's own intensity transforms (e.g. ``ScaleIntensity``) convert their input with
    ``convert_to_tensor(..., track_meta=get_track_meta())`` and give the result the input's
    type with ``convert_to_dst_type``; this does the same for a result computed on plain tensors:

    - meta tracking on (the default): a MetaTensor; when ``ref`` is a MetaTensor it carries
      ``ref``'s affine, meta dict and ``applied_operations`` (so ``Invertd`` and
      ``Compose.inverse`` still see every spatial transform applied before), otherwise an
      identity affine (what MONAI gives for ndarray/Tensor input);
    - ``set_track_meta(False)``: a plain ``torch.Tensor``.

    Args:
        out: the computed values (plain tensor or MetaTensor; its own meta is discarded).
        ref: the transform's input (ndarray, Tensor or MetaTensor).
    """
    res = convert_to_tensor(_data(out), track_meta=get_track_meta())
    if isinstance(res, MetaTensor) and isinstance(ref, MetaTensor):
        res.copy_meta_from(ref)
    return res


def divide_keys(d: dict[Hashable, Any], keys: Sequence[Hashable], divisor: torch.Tensor | float, inplace: bool = False) -> None:
    """``d[k] = d[k] / divisor`` for every key, as float32 images carrying their meta and trace.

    With ``inplace``, float32 tensors are divided in their own storage (as ``torchvision``'s
    ``Normalize(inplace=True)``): the caller's tensors then hold the result too, and a tensor
    stored under two keys is divided once. Other inputs, and every input without ``inplace``,
    get a new float32 tensor. Shared by the dictionary forms of N4 and of the DCE scaling.
    """
    divided: set[int] = set()
    for k in keys:
        v = d[k]
        if inplace and isinstance(v, torch.Tensor) and v.dtype == torch.float32:
            if v.data_ptr() not in divided:
                divided.add(v.data_ptr())
                _data(v).div_(divisor)
            d[k] = v if isinstance(v, MetaTensor) else wrap_like(v, v)
        else:
            t = to_float_tensor(v)
            d[k] = wrap_like(_data(t) / divisor, v)


def fresh_tensor(img: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``img`` as a new tensor object sharing its data, with a copy of its meta and trace.

    What MONAI's skipped random spatial transforms return (``convert_to_tensor(img,
    track_meta=get_track_meta())``), except that a MetaTensor input is not mutated when a trace
    entry is then pushed onto the output.
    """
    res = convert_to_tensor(_data(img), dtype=dtype, track_meta=get_track_meta())
    if isinstance(res, MetaTensor) and isinstance(img, MetaTensor):
        res.copy_meta_from(img)
    return res


def record_as_one(xform: Any, out: Any, n: int, lazy: bool, **extra: Any) -> Any:
    """Replace the last ``n`` trace entries of ``out`` by one entry of ``xform`` (pattern of MONAI ``ResizeWithPadOrCrop``).

    A transform built from ``n`` MONAI spatial transforms records ONE entry under its own class,
    so that ``Compose.inverse`` / ``Invertd`` pop exactly what it pushed. The ``n`` sub-entries are
    kept in ``extra_info["sub"]`` (in order of application) for the inverse. When ``lazy``, the
    sub-entries are pending operations: the new pending entry carries their combined affine
    (product in order) and the last one's output shape, so that MONAI's ``apply_pending`` does
    one resampling for the whole transform. ``n = 0`` records an identity entry (a skipped
    random transform, as ``RandRotate90d`` does).

    Args:
        xform: the transform recording the entry (its class name and ``id`` are stored).
        out: the output of the ``n`` sub-transforms.
        n: number of sub-entries to fold.
        lazy: whether the sub-transforms ran lazily.
        extra: more ``extra_info`` items (e.g. the variant index).

    Returns:
        ``out`` with its trace updated (unchanged when meta tracking is off or ``out`` is not a MetaTensor).
    """
    if not (get_track_meta() and isinstance(out, MetaTensor)):
        return out
    stack = out.pending_operations if lazy else out.applied_operations
    subs = [stack.pop() for _ in range(n)][::-1]
    info = {**extra, "sub": subs}
    orig = subs[0][TraceKeys.ORIG_SIZE] if subs else out.peek_pending_shape()
    if not lazy:
        xform.push_transform(out, orig_size=orig, extra_info=info)
        return out
    affine = None
    for s in subs:
        a = torch.as_tensor(s[LazyAttr.AFFINE], dtype=torch.float64)
        affine = a if affine is None else affine @ a
    sp_size = subs[-1][LazyAttr.SHAPE] if subs else out.peek_pending_shape()
    xform.push_transform(out, orig_size=orig, sp_size=sp_size, affine=affine, extra_info=info, lazy=True)
    return out
