"""Importer for the BreastDCEDL metadata CSV (I-SPY1, I-SPY2, Duke; Fridman et al. 2025).

The CSV is read as it is published: blank cells, floats written as ``"256.0"``, and rows
with blank subtype flags. :func:`read_breastdcedl` returns one record per patient plus a
report of what was partial or skipped and why; :func:`breastdcedl_manifest` writes a
dce_monai manifest when the images are available locally.

Image layout assumed for the manifest (one NIfTI per DCE time point, as the BreastDCEDL
release distributes them): ``<image_root>/<pid>/<pid>_vis1_acq<k>.nii.gz`` for k = 0 ..
n_times-1, where column ``pre`` indexes the pre-contrast phase, and an optional tumour mask
``<image_root>/<pid>/<pid>_vis1_mask.nii.gz``. Pass ``pattern``/``mask_pattern`` for another
layout.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from dce_monai.sequences import PRE, post_name

__all__ = ["breastdcedl_manifest", "read_breastdcedl"]

_INT = ("n_xy", "n_z", "n_times", "pre", "post_early", "post_late", "mask_start", "mask_end", "sraw", "eraw", "scol", "ecol")
_FLOAT = ("slice_thick", "xy_spacing", "tum_vol", "age")
_BIN = ("pCR", "HR", "HER2", "menopause", "TripleNeg", "HER2pos", "HRposHER2neg")
_REQUIRED = ("pid", "n_xy", "n_z", "n_times", "pre", "slice_thick", "xy_spacing")


def _num(row: dict[str, str], column: str) -> float | None:
    """A numeric cell (``"256.0"``, ``"0.6055"``); blank -> None."""
    v = (row.get(column) or "").strip()
    if not v:
        return None
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"column {column!r} is not a number: {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"column {column!r} is not a finite number: {v!r}")
    return f


def read_breastdcedl(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read the metadata CSV.

    Returns:
        ``(records, report)``: records keyed by the column names (ints/floats/0-1 parsed,
        blanks as None); ``report`` = ``{"rows": n, "skipped": [(row, pid, reason)],
        "partial": {column: count of blank cells}}``. A row is skipped only when a column
        needed to build a manifest (pid, geometry, n_times, pre) is blank or not a number.

    Args:
        path: the metadata CSV (e.g. ``BreastDCEDL_metadata.csv``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file lacks a required column (named).

    Example:
        >>> records, report = read_breastdcedl("BreastDCEDL_metadata.csv")  # doctest: +SKIP
        >>> len(records), report["skipped"]                                 # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BreastDCEDL metadata CSV not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in _REQUIRED if c not in cols]
        if missing:
            raise ValueError(f"{path}: not a BreastDCEDL metadata CSV: missing column(s) {missing}.")
        records: list[dict[str, Any]] = []
        report: dict[str, Any] = {"rows": 0, "skipped": [], "partial": {}}
        for i, row in enumerate(reader, start=2):  # row 1 is the header
            report["rows"] += 1
            rec: dict[str, Any] = {"pid": (row.get("pid") or "").strip()}
            try:
                for c in _INT:
                    v = _num(row, c)
                    if v is not None and v != int(v):
                        raise ValueError(f"column {c!r} must be an integer, got {row[c]!r}")
                    rec[c] = None if v is None else int(v)
                for c in _FLOAT:
                    rec[c] = _num(row, c)
                for c in _BIN:
                    v = _num(row, c)
                    if v is not None and v not in (0.0, 1.0):
                        raise ValueError(f"column {c!r} must be 0/1 or blank, got {row[c]!r}")
                    rec[c] = None if v is None else int(v)
            except ValueError as e:
                report["skipped"].append((i, rec["pid"], str(e)))
                continue
            for c in ("HR_HER2_STATUS", "dataset", "test"):
                rec[c] = (row.get(c) or "").strip() or None
            blank = [c for c in _REQUIRED if not rec.get(c) and rec.get(c) != 0]
            if blank:
                report["skipped"].append((i, rec["pid"], f"blank required column(s) {blank}"))
                continue
            for c, v in rec.items():
                if v is None:
                    report["partial"][c] = report["partial"].get(c, 0) + 1
            records.append(rec)
    return records, report


def breastdcedl_manifest(
    records: list[dict[str, Any]],
    image_root: str | Path,
    pattern: str = "{pid}/{pid}_vis1_acq{k}.nii.gz",
    mask_pattern: str | None = "{pid}/{pid}_vis1_mask.nii.gz",
    require_files: bool = True,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Build manifest data for records whose images exist under ``image_root``.

    Phases before ``pre`` are ignored; the phases after it become T1post1..k. Labels:
    ``pcr`` and ``her2`` at patient level; the mask (if found) is one lesion with
    ``mask_source`` "expert" and no malignancy label (all BreastDCEDL tumours are cancers:
    ``malignant`` = 1).

    Args:
        records: records from :func:`read_breastdcedl`.
        image_root: folder the image paths are relative to (write the manifest there, or
            rebase its paths).
        pattern: image path of time point ``k`` of patient ``pid`` (``str.format`` fields
            ``pid`` and ``k``).
        mask_pattern: tumour mask path (field ``pid``), or None for no lesion entries.
        require_files: skip patients whose image files are absent (a mask is listed only
            when its file exists).

    Returns:
        ``(manifest_data, skipped)`` with ``skipped`` = [(pid, reason)] for patients whose
        files are missing (when ``require_files``) or without a post-contrast time point.

    Example:
        >>> records, report = read_breastdcedl("BreastDCEDL_metadata.csv")  # doctest: +SKIP
        >>> data, skipped = breastdcedl_manifest(records, "BreastDCEDL/")     # doctest: +SKIP
    """
    root = Path(image_root)
    patients, skipped = [], []
    for r in records:
        pid = r["pid"]
        if not 0 <= r["pre"] < r["n_times"] - 1:
            skipped.append((pid, f"needs a pre-contrast index below the last time point: pre={r['pre']}, n_times={r['n_times']}"))
            continue
        seqs: dict[str, str] = {}
        for k in range(r["pre"], r["n_times"]):
            name = PRE if k == r["pre"] else post_name(k - r["pre"])
            seqs[name] = pattern.format(pid=pid, k=k)
        if require_files:
            absent = [v for v in seqs.values() if not (root / v).is_file()]
            if absent:
                skipped.append((pid, f"{len(absent)} image file(s) missing, e.g. {absent[0]}"))
                continue
        lesions = []
        if mask_pattern and (not require_files or (root / mask_pattern.format(pid=pid)).is_file()):
            lesions.append({"lesion_id": f"{pid}-L1", "mask": mask_pattern.format(pid=pid), "mask_source": "expert", "malignant": 1})
        patients.append(
            {
                "patient_id": pid,
                "exam": {"sequences": seqs, "spacing_mm": [r["xy_spacing"], r["xy_spacing"], r["slice_thick"]], "view": "axial"},
                "labels": {"pcr": r.get("pCR"), "her2": r.get("HER2"), "malignant": 1},
                "lesions": lesions,
            }
        )
    data = {
        "schema_version": "1.0",
        "dataset": {"name": "BreastDCEDL", "license": "CC BY 4.0", "source": "doi:10.5281/zenodo.15627233", "register_phases": True},
        "patients": patients,
    }
    return data, skipped
