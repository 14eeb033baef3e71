"""The one NIfTI writer of dce_monai: header conventions and an atomic write.

Every NIfTI file the toolkit writes (phantom cohorts, DICOM ingest, layout exports) goes
through :func:`write_nifti`, so they share one header convention and one way of writing:

* **Header.** The affine is stored twice, as qform and sform, both with code 1 (scanner
  coordinates, RAS mm), and the units are mm and s. Readers that use either transform
  (nibabel, ITK, MONAI's ``LoadImage``) then agree on the voxel-to-world mapping.
* **Atomic write.** The image is saved under a temporary name in the destination folder,
  unique to the process and the call (``.<name>.<pid>.<8 hex>.tmp.nii.gz``), and moved onto
  the final name with ``os.replace``, which is atomic within one file system. A reader sees
  either the previous file or the complete new one, never a half-written one; two writers
  (two ingests into one folder) never share a temporary; a failed write (full disk, bad
  array, interruption) leaves the previous file, if any, untouched and no temporary behind.

Example:
    >>> import numpy as np
    >>> write_nifti(np.zeros((4, 4, 2), np.uint16), np.eye(4), "case_T1pre.nii.gz")  # doctest: +SKIP
    PosixPath('case_T1pre.nii.gz')
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_nifti"]

_SUFFIXES = (".nii.gz", ".nii")


def write_nifti(array: Any, affine: Any, path: str | Path) -> Path:
    """Write ``array`` as a NIfTI-1 file at ``path``, atomically.

    Args:
        array: voxel data (X, Y, Z[, T]); its dtype is kept (uint8/uint16/float32 in this
            toolkit).
        affine: 4x4 voxel-to-RAS-mm matrix, stored as qform and sform with code 1.
        path: destination ending in ``.nii.gz`` (compressed) or ``.nii``; its folder must
            exist. An existing file is replaced only once the new one is complete.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if ``path`` does not end in ``.nii.gz``/``.nii``, or ``affine`` is not a
            finite 4x4 matrix.
        FileNotFoundError: if the folder of ``path`` does not exist.
    """
    import nibabel as nib

    path = Path(path)
    suffix = next((s for s in _SUFFIXES if path.name.endswith(s) and len(path.name) > len(s)), None)
    if suffix is None:
        raise ValueError(f"write_nifti: {str(path)!r} must be a file name ending in .nii.gz or .nii.")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError(f"write_nifti: the affine for {str(path)!r} must be a finite 4x4 matrix, got shape {aff.shape}.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"write_nifti: folder {str(path.parent)!r} for {path.name!r} does not exist.")
    img = nib.Nifti1Image(array, aff)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    # a name unique to this process and call, so two writers into one folder never share a temporary
    stem = path.name[: -len(suffix)]
    tmp = path.with_name(f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
