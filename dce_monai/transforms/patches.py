"""Seed 1's 2D axial lesion patches.

Seed 1 (Haarburger et al. 2018) cuts, on every axial slice that contains a lesion, a 50x50
region centred at the lesion's centre, and drops patches that contain part of another
lesion. :class:`LesionPatchesd` does exactly that and counts what it drops.

The crop is direct tensor slicing with constant padding at the image border rather than a
MONAI ``SpatialCrop`` per slice: one lesion yields up to ~100 slices, and building a crop
transform per slice would dominate the cost of a cached pipeline; the output still carries
a correct 2D affine and the source slice in its meta.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import TransformBackends, look_up_option

from dce_monai.sequences import CHANNEL_NAMES_KEY
from dce_monai.transforms.utils import (
    case_label,
    check_binary_mask,
    check_same_grid,
    check_spatial_dims,
)

__all__ = ["LesionPatchesd", "lesion_centre"]


def lesion_centre(mask: np.ndarray) -> tuple[int, int]:
    """In-plane (x, y) centre of mass of a 3D boolean mask, rounded to voxels."""
    idx = np.nonzero(mask)
    return int(round(float(np.mean(idx[0])))), int(round(float(np.mean(idx[1]))))


class LesionPatchesd(MapTransform):
    """Cut one 2D patch per axial slice of a lesion; returns a list of dicts (one per patch).

    Args:
        image_key: multi-channel image (C, X, Y, Z); axial slices along the last axis.
        label_map_key: integer lesion label map (1, X, Y, Z) on the image grid.
        mask_key: alternatively, a binary mask of this lesion (used when ``label_value`` is
            absent from the dict).
        size: patch size (x, y) in voxels (default 50x50, seed 1).
        size_mm: patch size in mm instead (converted with the image's in-plane spacing;
            needs a MetaTensor).
        drop_other_lesions: drop patches containing voxels of another lesion (seed 1).
        on_empty: ``"raise"`` or ``"empty"`` (return ``[]``) when the lesion has no voxel.
        allow_missing_keys: when ``image_key`` is missing, return ``[data]`` (the dict
            unchanged, as the one "patch") instead of raising.

    The keys are named by role (image cut, lesion label map or mask) rather than given as
    MONAI ``keys``: the label map and mask locate the patches and are not cut themselves.

    Each output dict copies the input's non-image entries (``label``, ids, ...) and holds:
    ``image`` (C, sx, sy) MetaTensor with a 3x3 in-plane affine, ``slice_index``,
    ``patch_center`` (x, y), ``n_patches_kept`` and ``n_patches_dropped_other_lesion``.

    Raises:
        ValueError: non-3D image, grids differ, label value missing from the label map,
            non-binary mask, bad sizes.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        image_key: str = "image",
        label_map_key: str = "label_map",
        mask_key: str = "mask",
        size: tuple[int, int] = (50, 50),
        size_mm: tuple[float, float] | None = None,
        drop_other_lesions: bool = True,
        on_empty: str = "raise",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__([image_key], allow_missing_keys=allow_missing_keys)
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise ValueError(f"size must be two positive integers (x, y), got {size!r}.")
        if size_mm is not None and (len(size_mm) != 2 or any(s <= 0 for s in size_mm)):
            raise ValueError(f"size_mm must be two positive numbers (x, y), got {size_mm!r}.")
        self.image_key, self.label_map_key, self.mask_key = image_key, label_map_key, mask_key
        self.size, self.size_mm = (int(size[0]), int(size[1])), size_mm
        self.drop_other_lesions = drop_other_lesions
        self.on_empty = look_up_option(on_empty, ("raise", "empty"))

    def _lesion(self, d: Mapping[Hashable, Any], case: str) -> tuple[np.ndarray, np.ndarray | None]:
        if "label_value" in d and self.label_map_key in d:
            lm = np.asarray(d[self.label_map_key])[0]
            v = int(d["label_value"])
            return lm == v, (lm != 0) & (lm != v)
        if self.mask_key in d:
            check_binary_mask(d[self.mask_key], self.mask_key, case, allow_empty=True)
            m = np.asarray(d[self.mask_key])[0] > 0
            other = None
            if self.label_map_key in d:
                lm = np.asarray(d[self.label_map_key])[0]
                other = (lm != 0) & ~m
            return m, other
        raise KeyError(f"{case}: LesionPatchesd needs 'label_value' with {self.label_map_key!r}, or {self.mask_key!r}; available: {sorted(map(str, d))}.")

    def _patch_size(self, img: Any) -> tuple[int, int]:
        if self.size_mm is None:
            return self.size
        if not isinstance(img, MetaTensor):
            raise ValueError("size_mm needs a MetaTensor image (its affine gives the spacing); got a bare tensor.")
        sp = np.linalg.norm(np.asarray(img.affine)[:3, :3], axis=0)
        return tuple(max(1, int(round(mm / s))) for mm, s in zip(self.size_mm, sp[:2]))  # type: ignore[return-value]

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:  # type: ignore[override]
        d = dict(data)
        case = case_label(d)
        if self.image_key not in d:
            if self.allow_missing_keys:
                return [d]
            raise KeyError(f"{case}: missing image key {self.image_key!r}; available: {sorted(map(str, d))}.")
        img = d[self.image_key]
        check_spatial_dims(img, 3, self.image_key, case)
        grid = {self.image_key: img}
        for k in (self.label_map_key, self.mask_key):
            if k in d:
                grid[k] = d[k]
        check_same_grid(grid, case)
        mask, other = self._lesion(d, case)
        if not mask.any():
            if self.on_empty == "empty":
                return []
            what = f"label value {d['label_value']!r} not found in {self.label_map_key!r}" if "label_value" in d else f"{self.mask_key!r} is empty"
            raise ValueError(f"{case}: lesion is empty: {what}.")
        sx, sy = self._patch_size(img)
        cx, cy = lesion_centre(mask)
        x0, y0 = cx - sx // 2, cy - sy // 2
        t = torch.as_tensor(img.as_tensor() if isinstance(img, MetaTensor) else np.asarray(img))
        X, Y = t.shape[1], t.shape[2]
        pad = (max(0, -y0), max(0, y0 + sy - Y), max(0, -x0), max(0, x0 + sx - X))
        xs, ys = slice(max(0, x0), min(X, x0 + sx)), slice(max(0, y0), min(Y, y0 + sy))
        slices = np.flatnonzero(mask.any(axis=(0, 1)))
        kept, dropped = [], 0
        for z in slices:
            if self.drop_other_lesions and other is not None and other[xs, ys, z].any():
                dropped += 1
                continue
            kept.append(int(z))
        aff = np.asarray(img.affine, dtype=np.float64) if isinstance(img, MetaTensor) else np.eye(4)
        names = img.meta.get(CHANNEL_NAMES_KEY) if isinstance(img, MetaTensor) else None
        rest = {k: v for k, v in d.items() if k not in (self.image_key, self.label_map_key, self.mask_key) and not _is_volume(v)}
        out = []
        for z in kept:
            p = t[:, xs, ys, z].float()
            if any(pad):
                p = F.pad(p, pad)
            origin = aff @ np.array([x0, y0, z, 1.0])
            a2 = np.eye(3)
            a2[:2, :2] = aff[:2, :2]
            a2[:2, 2] = origin[:2]
            patch = MetaTensor(p, affine=torch.as_tensor(a2))
            patch.meta.update({"slice_index": z, "patch_origin_vox": [x0, y0, z]})
            if names is not None:
                patch.meta[CHANNEL_NAMES_KEY] = list(names)
            for k in ("patient_id", "lesion_id"):
                if k in d:
                    patch.meta[k] = d[k]
            out.append({**rest, self.image_key: patch, "slice_index": z, "patch_center": [cx, cy], "n_patches_kept": len(kept), "n_patches_dropped_other_lesion": dropped})
        return out


def _is_volume(v: Any) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 3
