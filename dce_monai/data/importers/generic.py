"""Importer for a folder of NIfTIs described by a mapping CSV.

Mapping columns: ``patient_id, sequence, path`` (one row per image; ``sequence`` a canonical
name, or ``label_map``/``breast_mask``), optional ``time_s``; lesion rows use
``sequence = lesion`` with ``lesion_id``, ``label_value`` and ``malignant`` columns.
Paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

__all__ = ["generic_manifest"]

_REQUIRED = ("patient_id", "sequence", "path")


def generic_manifest(mapping_csv: str | Path, check_files: bool = True) -> dict[str, Any]:
    """Build manifest data from a mapping CSV.

    Raises:
        ValueError: a missing column, a duplicate sequence for a patient, or a missing file
            (each naming the CSV row).
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
                les: dict[str, Any] = {"lesion_id": row.get("lesion_id") or f"{pid}-L{len(p['lesions']) + 1}"}
                if row.get("label_value"):
                    les["label_value"] = int(row["label_value"])
                if rel:
                    les["mask"] = rel
                if row.get("malignant", "").strip() != "":
                    les["malignant"] = int(float(row["malignant"]))
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
    return {"schema_version": "1.0", "dataset": {"name": f"import of {mapping_csv.name}"}, "patients": list(patients.values())}
