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
from monai.data import MetaTensor

__all__ = [
    "case_label",
    "check_binary_mask",
    "check_finite",
    "check_same_grid",
    "check_spatial_dims",
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
        bad = int((~torch.isfinite(t)).sum())
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


def wrap_like(out: torch.Tensor, ref: Any) -> torch.Tensor:
    """``out`` as a MetaTensor carrying ``ref``'s affine and meta when ``ref`` is one, else as is."""
    if isinstance(ref, MetaTensor):
        data = out.as_tensor() if isinstance(out, MetaTensor) else out
        return MetaTensor(data, affine=ref.affine.clone(), meta={k: v for k, v in ref.meta.items() if k != "affine"})
    return out
