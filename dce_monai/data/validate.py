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

import argparse
import gzip
import json
import logging
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
    rebase,
    save_manifest,
)
from dce_monai.sequences import sort_sequences

__all__ = ["ValidationReport", "add_cli_arguments", "cli_main", "read_nifti", "require_valid", "validate_cohort"]

logger = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """Result of :func:`validate_cohort`: problems by case, and which patients passed."""

    problems: list[Problem] = field(default_factory=list)
    valid_patients: list[str] = field(default_factory=list)
    invalid_patients: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"ok", "valid", "invalid", "problems": [{case, field, message}]}``."""
        return {
            "ok": self.ok,
            "valid": list(self.valid_patients),
            "invalid": list(self.invalid_patients),
            "problems": [{"case": p.case, "field": p.field, "message": p.message} for p in self.problems],
        }

    def __str__(self) -> str:
        head = f"{len(self.valid_patients)} valid, {len(self.invalid_patients)} invalid patient(s)"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


def read_nifti(path: str | Path, header_only: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
    """Read a NIfTI file with nibabel; return ``(data or None, affine)``.

    The header is parsed first (``nibabel.load``), then the voxels; every failure of a
    missing, empty, truncated (gzip stream cut short) or non-NIfTI file becomes one
    ``ValueError`` naming the file instead of a library traceback.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        header_only: return ``(None, affine)`` without reading the voxels.

    Returns:
        ``(voxels as a numpy array, 4x4 float64 affine in mm)``.

    Raises:
        ValueError: naming the file, for a missing, empty, truncated or non-NIfTI file.

    Example:
        >>> data, affine = read_nifti("P001/pre.nii.gz")  # doctest: +SKIP
    """
    import nibabel as nib

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"file not found: {p}")
    if p.stat().st_size == 0:
        raise ValueError(f"file is empty (0 bytes): {p}")
    try:
        img: Any = nib.load(str(p))
        affine = np.asarray(img.affine, dtype=np.float64)
        if header_only:
            return None, affine
        _check_claimed_size(img, p)
        data = np.asanyarray(img.dataobj)
    except (
        OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, OverflowError, MemoryError,
        nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
    ) as e:
        raise ValueError(f"cannot read NIfTI file {p}: {type(e).__name__}: {e}") from None
    return data, affine


# deflate cannot compress better than about 1032:1, so a gzip file claiming more than this
# many times its own size of voxels is corrupt whatever the voxels are
_MAX_GZIP_RATIO = 1100


def _check_claimed_size(img: Any, p: Path) -> None:
    """Refuse a header that claims more voxel bytes than the file can hold.

    Checked before the voxels are read, so a corrupt ``dim[]`` gives an error naming the
    file instead of numpy trying to allocate terabytes.
    """
    hdr = img.header
    shape = tuple(int(n) for n in hdr.get_data_shape())
    n_bytes = int(np.prod(shape, dtype=object)) * np.dtype(hdr.get_data_dtype()).itemsize
    offset = int(hdr.get_data_offset()) if hasattr(hdr, "get_data_offset") else 0
    size = p.stat().st_size
    limit = size * _MAX_GZIP_RATIO if p.name.endswith(".gz") else size
    if offset + n_bytes > limit:
        raise ValueError(
            f"header claims {shape} voxels ({n_bytes} bytes) but the file holds {size} bytes"
            + (" (compressed)" if p.name.endswith(".gz") else "")
        )


def _affine_problem(aff: np.ndarray) -> str | None:
    if not np.all(np.isfinite(aff)):
        return "affine has non-finite values"
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        return f"affine is singular (voxel spacing {spacing.round(4).tolist()})"
    return None


def _check_patient(m: Manifest, p: dict[str, Any], tol_mm: float) -> list[Problem]:
    pid = p["patient_id"]
    case = f"patient {pid!r}"
    exam = p["exam"]
    probs: list[Problem] = []
    grid: tuple[str, tuple[int, ...], np.ndarray] | None = None

    def load(key: str, rel: str) -> np.ndarray | None:
        nonlocal grid
        try:
            data, aff = read_nifti(m.resolve(rel))
        except ValueError as e:
            probs.append(Problem(case, key, str(e)))
            return None
        if data is None:  # read_nifti returns data unless header_only
            return None
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            probs.append(Problem(case, key, f"expected a 3D volume, got shape {data.shape}"))
            return None
        bad = _affine_problem(aff)
        if bad:
            probs.append(Problem(case, key, bad))
        if grid is None:
            grid = (key, data.shape, aff)
        else:
            gkey, gshape, gaff = grid
            if data.shape != gshape:
                probs.append(Problem(case, key, f"not on the grid of {gkey}: shape {data.shape} vs {gshape}"))
            elif not np.allclose(aff, gaff, atol=tol_mm):
                probs.append(
                    Problem(case, key, f"not on the grid of {gkey}: affines differ by up to {np.abs(aff - gaff).max():.4g} mm")
                )
        if np.issubdtype(data.dtype, np.floating):
            n_bad = int((~np.isfinite(data)).sum())
            if n_bad:
                probs.append(Problem(case, key, f"{n_bad} NaN/Inf voxels"))
        return data

    for name in sort_sequences(list(exam["sequences"])):
        load(f"exam.sequences.{name}", exam["sequences"][name])
    if "label_map" in exam:
        lm = load("exam.label_map", exam["label_map"])
        if lm is not None:
            if not np.issubdtype(lm.dtype, np.integer) and not np.all(lm == np.round(lm)):
                probs.append(Problem(case, "exam.label_map", "label map has non-integer values"))
            present = set(np.unique(lm).astype(int).tolist())
            for les in p["lesions"]:
                v = les.get("label_value")
                if v is not None and v not in present:
                    probs.append(
                        Problem(f"{case} lesion {les['lesion_id']!r}", "label_value", f"value {v} not found in the label map (lesion mask is empty)")
                    )
    for key in ("breast_mask",):
        if key in exam:
            mk = load(f"exam.{key}", exam[key])
            if mk is not None:
                _binary(mk, case, f"exam.{key}", probs)
    for j, les in enumerate(p["lesions"]):
        if "mask" in les:
            mk = load(f"lesions[{j}].mask", les["mask"])
            if mk is not None:
                _binary(mk, f"{case} lesion {les['lesion_id']!r}", "mask", probs)
    return probs


def _binary(mask: np.ndarray, case: str, key: str, probs: list[Problem]) -> None:
    vals = np.unique(mask)
    extra = [v for v in vals.tolist() if v not in (0, 1)]
    if extra:
        probs.append(Problem(case, key, f"mask must be binary (0/1), found values {extra[:5]}"))
    elif not (mask > 0).any():
        probs.append(Problem(case, key, "mask is empty"))


def validate_cohort(manifest: Manifest | str | Path, check_files: bool = True, tol_mm: float = 1e-3) -> ValidationReport:
    """Check every patient of a manifest and the files it names.

    Each file is read once. Per patient: every file exists and is a readable 3D NIfTI; all
    files share the first sequence's grid (same shape, ``max |A - A_ref| <= tol_mm``); the
    affine is finite and non-singular (column norms = voxel spacing > 0); float volumes have
    no NaN/Inf; the label map has integer values and contains every lesion's
    ``label_value``; breast and lesion masks are binary (0/1) and non-empty.

    Args:
        manifest: a :class:`Manifest` or a manifest path (its schema/semantic errors become
            problems of the report rather than an exception).
        check_files: open and check the image files (False: manifest-level checks only).
        tol_mm: tolerance on affines when comparing grids, mm.

    Returns:
        A :class:`ValidationReport` listing every problem with its case and field.

    Raises:
        ValueError: ``tol_mm`` negative or not a number.

    Example:
        >>> report = validate_cohort("cohort/manifest.json")  # doctest: +SKIP
        >>> report.ok, report.invalid_patients                  # doctest: +SKIP
    """
    if isinstance(tol_mm, bool) or not isinstance(tol_mm, (int, float)) or not tol_mm >= 0:
        raise ValueError(f"tol_mm must be a number >= 0 (mm), got {tol_mm!r}.")
    report = ValidationReport()
    if not isinstance(manifest, Manifest):
        try:
            manifest = load_manifest(manifest)
        except ManifestError as e:
            report.problems.extend(e.problems)
            return report
    for p in manifest.patients:
        probs = _check_patient(manifest, p, tol_mm) if check_files else []
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


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai validate MANIFEST [--skip-invalid --out valid.json] [--json]``."""
    parser.add_argument("manifest", help="cohort manifest (JSON)")
    parser.add_argument("--skip-invalid", action="store_true", help="write a manifest of the valid cases (needs --out)")
    parser.add_argument("--out", help="where --skip-invalid writes the manifest of valid cases")
    parser.add_argument("--tol-mm", type=float, default=1e-3, help="affine tolerance, mm (default 1e-3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai validate``; print every problem.

    Returns:
        0 when the cohort is valid (or, with ``--skip-invalid``, when at least one patient is
        valid and its manifest was written), 1 when problems were found, 2 for bad options.
    """
    if args.skip_invalid and not args.out:
        print("error: --skip-invalid needs --out PATH for the manifest of valid cases")
        return 2
    report = validate_cohort(args.manifest, tol_mm=args.tol_mm)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report)
    if args.skip_invalid and report.valid_patients:
        m = load_manifest(args.manifest)
        out = Path(args.out)
        kept = m.select(report.valid_patients)
        rebased = [json.loads(json.dumps(p)) for p in kept.patients]
        rebase({"patients": rebased}, m.root)
        save_manifest({"schema_version": "1.0", "dataset": m.dataset, "patients": rebased}, out)
        print(f"{len(rebased)} valid patient(s) written to {out}; {len(report.invalid_patients)} skipped: {report.invalid_patients}")
        return 0
    if args.skip_invalid:
        print("no valid patient: no manifest written")
    return 0 if report.ok else 1
