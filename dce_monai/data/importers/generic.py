"""Importer for a folder of NIfTIs described by a mapping CSV.

Mapping columns: ``patient_id, sequence, path`` (one row per image; ``sequence`` a canonical
name, or ``label_map``/``breast_mask``), optional ``time_s``; lesion rows use
``sequence = lesion`` with ``lesion_id``, ``label_value`` and ``malignant`` columns.
Paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

__all__ = ["generic_manifest"]

_REQUIRED = ("patient_id", "sequence", "path")


def _int_cell(v: str | None, column: str, where: str) -> int | None:
    """An integer CSV cell (``"1"`` or ``"1.0"``); blank -> None."""
    v = (v or "").strip()
    if not v:
        return None
    try:
        f = float(v)
    except ValueError:
        f = math.nan
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"{where}: column {column!r} must be an integer, got {v!r}")
    return int(f)


def generic_manifest(mapping_csv: str | Path, check_files: bool = True) -> dict[str, Any]:
    """Build manifest data from a mapping CSV.

    Args:
        mapping_csv: the CSV; paths in it are relative to its folder (or absolute).
        check_files: require every image and mask file to exist.

    Returns:
        Manifest data with paths as written in the CSV (relative to the CSV's folder). It is
        not yet validated: :func:`~dce_monai.data.manifest.save_manifest` checks it (unknown
        sequence names, phase gaps, ...).

    Raises:
        ValueError: a missing column, a duplicate sequence for a patient, a missing file or a
            non-integer ``label_value``/``malignant`` cell (each naming the CSV row).

    Example:
        >>> data = generic_manifest("images/map.csv")  # doctest: +SKIP
        >>> save_manifest(data, "images/manifest.json")  # doctest: +SKIP
    """
    mapping_csv = Path(mapping_csv)
    base = mapping_csv.parent
    patients: dict[str, dict[str, Any]] = {}
    with open(mapping_csv, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{mapping_csv}: missing column(s) {missing}; expected at least {list(_REQUIRED)}.")
        for i, row in enumerate(reader, start=2):
            pid, seq, rel = row["patient_id"].strip(), row["sequence"].strip(), row["path"].strip()
            where = f"{mapping_csv} row {i} (patient {pid!r})"
            p = patients.setdefault(pid, {"patient_id": pid, "exam": {"sequences": {}}, "labels": {}, "lesions": []})
            exam = p["exam"]
            if seq == "lesion":
                les: dict[str, Any] = {"lesion_id": (row.get("lesion_id") or "").strip() or f"{pid}-L{len(p['lesions']) + 1}"}
                for col in ("label_value", "malignant"):
                    v = _int_cell(row.get(col), col, where)
                    if v is not None:
                        les[col] = v
                if rel:
                    if check_files and not (base / rel).is_file():
                        raise ValueError(f"{where}: lesion mask not found: {rel}")
                    les["mask"] = rel
                p["lesions"].append(les)
                continue
            if check_files and not (base / rel).is_file():
                raise ValueError(f"{where}: file not found: {rel}")
            if seq in ("label_map", "breast_mask"):
                exam[seq] = rel
                continue
            if seq in exam["sequences"]:
                raise ValueError(f"{where}: sequence {seq!r} given twice")
            exam["sequences"][seq] = rel
            if row.get("time_s", "").strip():
                exam.setdefault("acquisition_times_s", {})[seq] = float(row["time_s"])
    return {"schema_version": "1.0", "dataset": {"name": f"import of {mapping_csv.name}", "register_phases": True}, "patients": list(patients.values())}
