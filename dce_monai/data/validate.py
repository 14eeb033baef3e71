"""File-level validation of a cohort: ``dce-monai validate MANIFEST``.

:func:`validate_cohort` opens every file a manifest names, once, and checks that it is a
readable NIfTI (a truncated, zero-byte or mislabelled file gives a problem naming the file,
never a crash deep in a library), that a patient's sequences share a grid (shape and affine
within a tolerance), that affines are sane, that voxels are finite, that the label map sits
on the image grid with integer values and contains every lesion's ``label_value``, and that
masks are binary and non-empty. Problems are collected, not raised one by one, so a user
sees everything wrong with a cohort in one run.
"""

from __future__ import annotations

import errno
import gzip
import logging
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dce_monai.data.manifest import (
    Manifest,
    ManifestError,
    Problem,
    load_manifest,
)
from dce_monai.sequences import sort_sequences

__all__ = ["DEFAULT_MAX_BYTES", "ValidationReport", "read_nifti", "require_valid", "validate_cohort"]

logger = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """Result of :func:`validate_cohort`: problems by case, and which patients passed."""

    problems: list[Problem] = field(default_factory=list)
    valid_patients: list[str] = field(default_factory=list)
    invalid_patients: list[str] = field(default_factory=list)
    source: str = "manifest"

    @property
    def manifest_invalid(self) -> bool:
        """True when the manifest itself was refused, so no patient was checked."""
        return bool(self.problems) and not self.valid_patients and not self.invalid_patients

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"ok", "manifest_invalid", "valid", "invalid", "problems": [{case, field, message}]}``."""
        return {
            "ok": self.ok,
            "manifest_invalid": self.manifest_invalid,
            "valid": list(self.valid_patients),
            "invalid": list(self.invalid_patients),
            "problems": [{"case": p.case, "field": p.field, "message": p.message} for p in self.problems],
        }

    def __str__(self) -> str:
        head = f"{len(self.valid_patients)} valid, {len(self.invalid_patients)} invalid patient(s)"
        if self.manifest_invalid:
            head = f"{self.source}: the manifest itself is invalid ({len(self.problems)} problem(s)); no patient was checked"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


DEFAULT_MAX_BYTES = 2**30
"""Most bytes :func:`read_nifti` inflates for one file (header, extensions and voxels): 1 GiB.

A full-size breast exam volume is far below it (448 x 448 x 160 float64 is 257 MB); a gzip
bomb (a small ``.nii.gz`` whose header declares gigabytes) is refused from its header."""


def read_nifti(
    path: str | Path, header_only: bool = False, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[np.ndarray | None, np.ndarray]:
    """Read a NIfTI file with nibabel; return ``(data or None, affine)``.

    The header is checked before anything else is read: the bytes it declares (voxel offset
    + shape x data type size) must fit in the file (at most 1,100 x its size when gzipped,
    above deflate's best ratio) and in ``max_bytes``, and header extensions must lie inside
    the header. So a gzip bomb or a corrupt ``dim[]`` is refused without inflating it, in
    bounded time and memory. Then the header is parsed (``nibabel.load``), then the voxels;
    every failure of a missing, empty, truncated (gzip stream cut short), non-regular
    (folder, device, symlink loop) or non-NIfTI file becomes one ``ValueError`` naming the
    file instead of a library traceback.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        header_only: return ``(None, affine)`` without reading the voxels.
        max_bytes: most bytes to inflate for this file (default :data:`DEFAULT_MAX_BYTES`).

    Returns:
        ``(voxels as a numpy array, 4x4 float64 affine in mm)``.

    Raises:
        ValueError: naming the file, for a missing, empty, truncated, oversized or non-NIfTI
            file, or ``max_bytes`` not a positive integer.

    Example:
        >>> data, affine = read_nifti("P001/pre.nii.gz")  # doctest: +SKIP
    """
    p = Path(path)
    img, affine = _open_nifti(p, max_bytes)
    if header_only:
        return None, affine
    return _voxels(img, p), affine


def _read_errors() -> tuple[type[BaseException], ...]:
    import nibabel as nib

    return (
        OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, OverflowError, MemoryError,
        nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
    )


def _open_nifti(p: Path, max_bytes: int) -> tuple[Any, np.ndarray]:
    """Check and parse the header of ``p``; return ``(nibabel image, affine)`` without voxels."""
    import nibabel as nib

    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer (bytes), got {max_bytes!r}.")
    try:
        st = p.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"symlink loop: {p} never reaches a file") from None
        raise ValueError(f"file not found: {p}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"not a regular file (a folder, device or pipe): {p}")
    if st.st_size == 0:
        raise ValueError(f"file is empty (0 bytes): {p}")
    try:
        _check_raw_header(p, st.st_size, max_bytes)
        img: Any = nib.load(str(p))
        affine = np.asarray(img.affine, dtype=np.float64)
        _check_claimed_size(img, p, max_bytes)
    except _read_errors() as e:
        raise ValueError(f"cannot read NIfTI file {p}: {type(e).__name__}: {e}") from None
    return img, affine


def _voxels(img: Any, p: Path) -> np.ndarray:
    try:
        return np.asanyarray(img.dataobj)
    except _read_errors() as e:
        raise ValueError(f"cannot read NIfTI file {p}: {type(e).__name__}: {e}") from None


# deflate cannot compress better than about 1032:1, so a gzip file claiming more than this
# many times its own size of voxels is corrupt whatever the voxels are
_MAX_GZIP_RATIO = 1100


def _declared_bytes(hdr: Any) -> tuple[tuple[int, ...], Any, int, int]:
    shape = tuple(int(n) for n in hdr.get_data_shape())
    dtype = np.dtype(hdr.get_data_dtype())
    offset = int(hdr.get_data_offset()) if hasattr(hdr, "get_data_offset") else 0
    return shape, dtype, offset, int(np.prod(shape, dtype=object)) * dtype.itemsize


def _check_sizes(shape: tuple[int, ...], dtype: Any, offset: int, n_bytes: int, p: Path, size: int | None, max_bytes: int) -> None:
    """Declared bytes against what the voxel file ``p`` (``size`` bytes; None: unknown) can hold and ``max_bytes``."""
    gz = p.name.endswith(".gz")
    limit = (size * _MAX_GZIP_RATIO if gz else size) if size is not None else None
    if limit is not None and offset + n_bytes > limit:
        raise ValueError(
            f"header claims {shape} voxels ({n_bytes} bytes) but the file holds {size} bytes" + (" (compressed)" if gz else "")
        )
    if offset + n_bytes > max_bytes:
        raise ValueError(
            f"header declares {shape} voxels of {dtype} ({offset + n_bytes} bytes to read), over the limit of "
            f"{max_bytes} bytes; refused before reading the voxels (a gzip bomb, or raise the limit: --max-file-mb)"
        )


def _check_raw_header(p: Path, size: int, max_bytes: int) -> None:
    """Check a NIfTI-1/2 header from the file's first bytes, before nibabel reads anything more.

    Hand-written because ``nibabel.load`` reads header extensions of whatever size they
    declare (an extension size of 0 makes it read the whole gzip stream) before any check
    can run. Not NIfTI (no NIfTI magic): left to nibabel, whose header is then checked by
    :func:`_check_claimed_size`.
    """
    import nibabel as nib

    opener: Any = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rb") as f:
        raw = f.read(544)
        for klass in (nib.Nifti1Header, nib.Nifti2Header):
            n = klass.template_dtype.itemsize  # 348 / 540
            if len(raw) < n:
                continue
            try:
                hdr = klass(raw[:n], check=False)
            except Exception:  # noqa: BLE001 - not this header kind: try the next, or leave it to nibabel
                continue
            magic = bytes(hdr["magic"])[:3]
            if int(hdr["sizeof_hdr"]) != n or magic not in (b"n+1", b"ni1", b"n+2", b"ni2"):
                continue
            try:
                shape, dtype, offset, n_bytes = _declared_bytes(hdr)
            except Exception:  # noqa: BLE001 - e.g. an unknown datatype code: nibabel.load names it
                return
            # a header-only file (magic ni1/ni2) keeps its voxels in a separate .img file
            _check_sizes(shape, dtype, offset, n_bytes, p, size if magic in (b"n+1", b"n+2") else None, max_bytes)
            if len(raw) > n and raw[n : n + 1] != b"\x00" and magic in (b"n+1", b"n+2"):
                if offset < n + 4:  # nibabel would then read extensions to the end of the stream
                    raise ValueError(f"header extension flag set but the voxels start at byte {offset}, inside the header; refused")
                region = raw + f.read(max(0, offset - len(raw)))  # offset <= max_bytes: bounded
                pos, end = n + 4, offset
                order = "<" if hdr.endianness == "<" else ">"
                while end - pos >= 16:
                    esize = int(np.frombuffer(region[pos : pos + 4], dtype=f"{order}i4")[0]) if len(region) >= pos + 4 else 0
                    if esize < 16 or pos + esize > end:
                        raise ValueError(
                            f"header extension at byte {pos} declares {esize} bytes, outside the header "
                            f"(voxels start at byte {end}); refused"
                        )
                    pos += esize
            return


def _check_claimed_size(img: Any, p: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse a header that claims more voxel bytes than the file can hold, or than ``max_bytes``.

    Checked before the voxels are read, so a corrupt ``dim[]`` gives an error naming the
    file instead of numpy trying to allocate terabytes.
    """
    shape, dtype, offset, n_bytes = _declared_bytes(img.header)
    image = getattr(img, "file_map", {}).get("image")
    voxel_file = Path(image.filename) if image is not None and image.filename else p
    size = voxel_file.stat().st_size if voxel_file.is_file() else None
    _check_sizes(shape, dtype, offset, n_bytes, voxel_file, size, max_bytes)


def _affine_problem(aff: np.ndarray) -> str | None:
    if not np.all(np.isfinite(aff)):
        return "affine has non-finite values"
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        return f"affine is singular (voxel spacing {spacing.round(4).tolist()})"
    return None


def _file_path(m: Manifest, rel: str) -> Path:
    """The manifest path of ``rel``; unresolved when resolving fails (a symlink loop), so
    :func:`read_nifti` names the problem instead of ``Path.resolve`` raising ``RuntimeError``."""
    try:
        return Path(m.resolve(rel))
    except (RuntimeError, OSError):
        return m.root / rel


def _same_grid(a: tuple[tuple[int, ...], np.ndarray], b: tuple[tuple[int, ...], np.ndarray], tol_mm: float) -> bool:
    return a[0] == b[0] and bool(np.allclose(a[1], b[1], atol=tol_mm))


def _check_patient(m: Manifest, p: dict[str, Any], tol_mm: float, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Problem]:
    """Check one patient's files: headers first (all of them), voxels only of files on the grid.

    The patient's grid is the (shape, affine) shared by most of its image sequences (ties: the
    first in canonical order), read from the headers; a file off that grid is reported from its
    header and its voxels are never read, so a small file declaring a huge volume costs nothing.
    """
    pid = p["patient_id"]
    case = f"patient {pid!r}"
    exam = p["exam"]
    probs: list[Problem] = []
    roles: list[tuple[str, str, str]] = [(case, f"exam.sequences.{n}", exam["sequences"][n]) for n in sort_sequences(list(exam["sequences"]))]
    for key in ("label_map", "breast_mask"):
        if key in exam:
            roles.append((case, f"exam.{key}", exam[key]))
    for j, les in enumerate(p["lesions"]):
        if "mask" in les:
            roles.append((f"{case} lesion {les['lesion_id']!r}", f"lesions[{j}].mask", les["mask"]))

    headers: dict[str, tuple[Any, Path, tuple[int, ...], np.ndarray]] = {}
    for rcase, key, rel in roles:
        path = _file_path(m, rel)
        try:
            img, aff = _open_nifti(path, max_bytes)
        except ValueError as e:
            probs.append(Problem(rcase, key, str(e)))
            continue
        shape = tuple(int(n) for n in img.shape)
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            probs.append(Problem(rcase, key, f"expected a 3D volume, got shape {shape}"))
            continue
        bad = _affine_problem(aff)
        if bad:
            probs.append(Problem(rcase, key, bad))
        headers[key] = (img, path, shape, aff)

    seq_keys = [k for _, k, _ in roles if k.startswith("exam.sequences.") and k in headers] or list(headers)
    ref_key = None
    if seq_keys:
        counts = [sum(_same_grid(headers[k][2:], headers[o][2:], tol_mm) for o in seq_keys) for k in seq_keys]
        ref_key = seq_keys[counts.index(max(counts))]

    for rcase, key, _rel in roles:
        if key not in headers:
            continue
        img, path, shape, aff = headers[key]
        if key != ref_key and ref_key is not None:
            _, _, gshape, gaff = headers[ref_key]
            if shape != gshape:
                probs.append(Problem(rcase, key, f"not on the grid of {ref_key}: shape {shape} vs {gshape}"))
                continue
            if not np.allclose(aff, gaff, atol=tol_mm):
                probs.append(Problem(rcase, key, f"not on the grid of {ref_key}: affines differ by up to {np.abs(aff - gaff).max():.4g} mm"))
                continue
        try:
            data = _voxels(img, path)
        except ValueError as e:
            probs.append(Problem(rcase, key, str(e)))
            continue
        if data.ndim == 4:
            data = data[..., 0]
        n_bad = int((~np.isfinite(data)).sum()) if np.issubdtype(data.dtype, np.floating) else 0
        if n_bad:
            probs.append(Problem(rcase, key, f"{n_bad} NaN/Inf voxels"))
        if key.startswith("exam.sequences."):
            if not n_bad and data.size and data.min() == data.max():
                probs.append(Problem(rcase, key, f"every voxel is {data.flat[0].item()!r}: a constant image (a phase never acquired, or a blank export)"))
        elif key == "exam.label_map":
            if not np.issubdtype(data.dtype, np.integer) and not np.all(data == np.round(data)):
                probs.append(Problem(rcase, key, "label map has non-integer values"))
            present = set(np.unique(data).astype(int).tolist())
            for les in p["lesions"]:
                v = les.get("label_value")
                if v is not None and v not in present:
                    probs.append(
                        Problem(f"{case} lesion {les['lesion_id']!r}", "label_value", f"value {v} not found in the label map (lesion mask is empty)")
                    )
        else:
            _binary(data, rcase, key if key == "exam.breast_mask" else "mask", probs)
    return probs


def _binary(mask: np.ndarray, case: str, key: str, probs: list[Problem]) -> None:
    vals = np.unique(mask)
    extra = [v for v in vals.tolist() if v not in (0, 1)]
    if extra:
        probs.append(Problem(case, key, f"mask must be binary (0/1), found values {extra[:5]}"))
    elif not (mask > 0).any():
        probs.append(Problem(case, key, "mask is empty"))


def validate_cohort(
    manifest: Manifest | str | Path, check_files: bool = True, tol_mm: float = 1e-3, max_bytes: int = DEFAULT_MAX_BYTES
) -> ValidationReport:
    """Check every patient of a manifest and the files it names.

    Each file is read once, headers first. Per patient: every file exists and is a readable
    3D NIfTI declaring at most ``max_bytes``; all files share the patient's grid (the shape
    and affine of most of its sequences, ties to the first in canonical order; same shape,
    ``max |A - A_ref| <= tol_mm``), checked from the headers so that the voxels of a file off
    the grid are never read; the affine is finite and non-singular (column norms = voxel
    spacing > 0); float volumes have no NaN/Inf; no sequence is constant (an all-zero
    phase); the label map has integer values and contains every lesion's ``label_value``;
    breast and lesion masks are binary (0/1) and non-empty.

    Args:
        manifest: a :class:`Manifest` or a manifest path (its schema/semantic errors become
            problems of the report rather than an exception).
        check_files: open and check the image files (False: manifest-level checks only).
        tol_mm: tolerance on affines when comparing grids, mm.
        max_bytes: most bytes one file may inflate to (see :func:`read_nifti`).

    Returns:
        A :class:`ValidationReport` listing every problem with its case and field.

    Raises:
        ValueError: ``tol_mm`` negative or not a number; ``max_bytes`` not a positive integer.

    Example:
        >>> report = validate_cohort("cohort/manifest.json")  # doctest: +SKIP
        >>> report.ok, report.invalid_patients                  # doctest: +SKIP
    """
    if isinstance(tol_mm, bool) or not isinstance(tol_mm, (int, float)) or not tol_mm >= 0:
        raise ValueError(f"tol_mm must be a number >= 0 (mm), got {tol_mm!r}.")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer (bytes), got {max_bytes!r}.")
    report = ValidationReport(source=str(manifest.path or "manifest") if isinstance(manifest, Manifest) else str(manifest))
    if not isinstance(manifest, Manifest):
        try:
            manifest = load_manifest(manifest)
        except ManifestError as e:
            report.problems.extend(e.problems)
            return report
    for p in manifest.patients:
        probs = _check_patient(manifest, p, tol_mm, max_bytes) if check_files else []
        report.problems.extend(probs)
        (report.invalid_patients if probs else report.valid_patients).append(p["patient_id"])
    return report


def require_valid(manifest: Manifest | str | Path, skip_invalid: bool = False, check_files: bool = True) -> Manifest:
    """Validate a cohort before a workflow starts: every problem up front, not mid-training.

    Args:
        manifest: a :class:`Manifest` or a manifest path.
        skip_invalid: continue with the valid patients only (the others are logged with
            their problems) instead of stopping.
        check_files: also open and check the image files (see :func:`validate_cohort`).

    Returns:
        The manifest (restricted to the valid patients with ``skip_invalid``).

    Raises:
        ManifestError: problems found (without ``skip_invalid``), or no valid patient left;
            the message lists every problem with its case and field.

    Example:
        >>> manifest = require_valid("cohort/manifest.json", skip_invalid=True)  # doctest: +SKIP
    """
    source = str(manifest.path or "manifest") if isinstance(manifest, Manifest) else str(manifest)
    report = validate_cohort(manifest, check_files=check_files)
    if report.ok:
        return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    if not skip_invalid or not report.valid_patients:
        raise ManifestError(report.problems, source=source)
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    logger.warning(
        "%s: %d invalid patient(s) skipped: %s\n%s",
        source,
        len(report.invalid_patients),
        report.invalid_patients,
        "\n".join(f"  - {p}" for p in report.problems),
    )
    return m.select(report.valid_patients)
