"""Importer for the MAMA-MIA dataset as published.

Layout of the release (Garrucho et al., MAMA-MIA, Sci Data 2025)::

    ROOT/images/<ID>/<id>_0000.nii.gz ... <id>_000K.nii.gz   pre-contrast, then K post phases
    ROOT/segmentations/expert/<id>.nii.gz                    expert tumour segmentation
    ROOT/clinical_and_imaging_info.xlsx                      sheet ``dataset_info`` (or a CSV export)
    ROOT/train_test_splits.csv                               optional: columns train_split, test_split

File names are lower case while folder names follow the clinical table (``DUKE_001``), and
the case differs between sites, so every name is matched case-insensitively. Images are
referenced in place.

What the manifest keeps:

- the target (``--target``: ``her2``, ``pcr``, ``hr``, ``er``, ``pr`` or a derived
  ``recurrence_5y``...; see :mod:`dce_monai.data.importers.clinical`) as a patient label
  and as ``dataset.target``; patients whose target is missing are listed and left out;
- the other 0/1 endpoint columns that hold clean values as further patient labels;
- acquisition times (the ``acquisition_times`` text ``[0, 165, 288, 411]``, seconds),
  field strength, fat suppression, manufacturer and view in the exam, the source
  ``dataset`` as ``collection``, the published split as ``cohort``, and every other
  column (subtype, days to events, age, spacing text, ...) under ``clinical``;
- the expert segmentation as one lesion (``mask_source`` expert, ``malignant`` 1: every
  MAMA-MIA tumour is a cancer); the label map is derived from it on the fly.

``dataset.register_phases`` is true: the phases are not co-registered in the release.
"""

from __future__ import annotations

import ast
import csv
import logging
import re
from pathlib import Path
from typing import Any

from dce_monai.sequences import PRE, post_name

from .clinical import binary_cell, clinical_value, column_key, rows_by_id, target_values

__all__ = ["ENDPOINTS", "find_clinical_table", "mama_mia_manifest"]

logger = logging.getLogger(__name__)

_PHASE = re.compile(r"^(?P<id>.+)_(?P<k>\d{4})\.nii(\.gz)?$", re.IGNORECASE)
#: 0/1 endpoint columns of the clinical table kept as patient labels.
ENDPOINTS = ("pcr", "her2", "hr", "er", "pr")
#: Clinical columns that become exam fields (column -> exam key); kept under ``clinical`` when unusable.
_EXAM_COLUMNS = {"acquisition_times": "acquisition_times_s", "field_strength": "field_strength_t", "fat_suppressed": "fat_suppression", "manufacturer": "manufacturer", "view": "view"}
_VIEWS = {"axial": "axial", "ax": "axial", "transverse": "axial", "sagittal": "sagittal", "sag": "sagittal", "coronal": "coronal", "cor": "coronal"}


def find_clinical_table(root: str | Path) -> Path | None:
    """The clinical table in a MAMA-MIA root: ``clinical_and_imaging_info.xlsx`` or a ``.csv`` of that name (any case)."""
    for p in sorted(Path(root).iterdir()):
        if p.is_file() and p.name.lower() in ("clinical_and_imaging_info.xlsx", "clinical_and_imaging_info.csv"):
            return p
    return None


def _splits(root: Path) -> dict[str, str]:
    """``{patient id (lower case): "train" | "test"}`` from ``train_test_splits.csv`` (absent: empty)."""
    path = next((p for p in root.iterdir() if p.is_file() and p.name.lower() == "train_test_splits.csv"), None)
    if path is None:
        return {}
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {column_key(c): c for c in reader.fieldnames or []}
        if not {"train_split", "test_split"} & set(cols):
            raise ValueError(f"{path}: expected columns train_split and/or test_split, got {reader.fieldnames}.")
        for row in reader:
            for key, cohort in (("train_split", "train"), ("test_split", "test")):
                pid = (row.get(cols.get(key, ""), "") or "").strip().lower()
                if pid:
                    if out.get(pid, cohort) != cohort:
                        raise ValueError(f"{path}: patient {pid!r} is in both train_split and test_split.")
                    out[pid] = cohort
    return out


def _times(text: Any, n_phases: int, where: str) -> tuple[dict[str, float] | None, str | None]:
    """Acquisition times from ``"[0, 165, 288, 411]"``; (None, reason) when they cannot be used."""
    if text is None or str(text).strip() == "":
        return None, None
    try:
        values = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError):
        return None, f"{where}: acquisition_times {text!r} is not a list of numbers"
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None, f"{where}: acquisition_times {text!r} is not a list of numbers"
    if len(values) != n_phases:
        return None, f"{where}: acquisition_times has {len(values)} value(s) for {n_phases} image file(s)"
    if any(b <= a for a, b in zip(values, values[1:])):
        return None, f"{where}: acquisition_times {list(values)} do not increase"
    names = [PRE] + [post_name(k) for k in range(1, n_phases)]
    return {n: float(v) for n, v in zip(names, values)}, None


def mama_mia_manifest(
    root: str | Path,
    target: str,
    clinical: str | Path | None = None,
    id_column: str = "patient_id",
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Scan a MAMA-MIA root and return ``(manifest_data, skipped)``.

    Phase ``_0000`` becomes ``T1pre`` and ``_000k`` becomes ``T1post<k>``; a patient needs
    ``_0000`` and at least one post phase, numbered without gaps.

    Args:
        root: the dataset root (holding ``images/``).
        target: the endpoint to train on (a 0/1 column or a derived ``<event>_<N>y``).
        clinical: the clinical table (``.xlsx`` or ``.csv``); default: found in ``root``.
        id_column: patient id column of the clinical table (matched case-insensitively).

    Returns:
        ``(manifest_data, skipped)``: paths relative to ``root`` (write the manifest there, or
        rebase); ``skipped`` = [(patient, reason)] for patients left out (no usable images,
        no clinical row, missing target). Notes on kept patients (e.g. acquisition times
        that do not match the files) are logged as warnings and written into
        ``dataset["description"]``; the raw cell stays under the patient's ``clinical``.

    Raises:
        FileNotFoundError: ``root/images`` or the clinical table does not exist.
        ValueError: ``target`` is ``malignant`` (one class in MAMA-MIA) or not in the table,
            a target value is not 0/1 (patient, column, value named), or the table lacks
            ``id_column``.

    Example:
        >>> data, skipped = mama_mia_manifest("MAMA-MIA", target="her2")  # doctest: +SKIP
        >>> save_manifest(data, "MAMA-MIA/manifest.json")                 # doctest: +SKIP
    """
    root = Path(root)
    images = root / "images"
    if not images.is_dir():
        raise FileNotFoundError(f"{root}: no 'images' folder (expected images/<ID>/<id>_0000.nii.gz).")
    if target == "malignant":
        raise ValueError(
            "target 'malignant' has one class in MAMA-MIA (every tumour is a cancer); choose a patient endpoint "
            f"such as {', '.join(ENDPOINTS)} or recurrence_5y."
        )
    table = Path(clinical) if clinical is not None else find_clinical_table(root)
    if table is None:
        raise FileNotFoundError(f"{root}: no clinical_and_imaging_info.xlsx (or .csv); pass --clinical.")
    id_key = column_key(id_column)
    rows = {pid.lower(): row for pid, row in rows_by_id(table, id_column).items()}
    y = target_values(rows, target, str(table))
    splits = _splits(root)
    segs = {p.name.lower().split(".nii")[0]: p for p in (root / "segmentations" / "expert").glob("*") if ".nii" in p.name.lower()}
    patients: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    for d in sorted((p for p in images.iterdir() if p.is_dir()), key=lambda p: p.name.lower()):
        phases: dict[int, Path] = {}
        for fp in d.iterdir():
            m = _PHASE.match(fp.name)
            if m and m.group("id").lower() == d.name.lower():
                phases[int(m.group("k"))] = fp
        if 0 not in phases or len(phases) < 2:
            skipped.append((d.name, f"needs <id>_0000 and at least one post phase, found {sorted(phases)}"))
            continue
        if sorted(phases) != list(range(len(phases))):
            skipped.append((d.name, f"phase numbers have gaps: {sorted(phases)}"))
            continue
        row = rows.get(d.name.lower())
        if row is None:
            skipped.append((d.name, f"no row in {table.name}"))
            continue
        if y[d.name.lower()] is None:
            skipped.append((d.name, f"target {target!r} is missing"))
            continue
        pid = str(row[id_key]).strip()
        exam: dict[str, Any] = {"sequences": {PRE if k == 0 else post_name(k): str(phases[k].relative_to(root)) for k in sorted(phases)}}
        times, why = _times(row.get("acquisition_times"), len(phases), f"patient {pid!r}")
        if times is not None:
            exam["acquisition_times_s"] = times
        if why:
            notes.append(why + "; times not imported")
        if row.get("field_strength") is not None:
            try:
                exam["field_strength_t"] = float(row["field_strength"])
            except (TypeError, ValueError):
                notes.append(f"patient {pid!r}: field_strength {row['field_strength']!r} is not a number; kept under clinical")
        if row.get("fat_suppressed") is not None:
            try:
                fs = binary_cell(row["fat_suppressed"], f"patient {pid!r} column 'fat_suppressed'")
                if fs is not None:
                    exam["fat_suppression"] = bool(fs)
            except ValueError as e:
                notes.append(f"{e}; kept under clinical")
        if row.get("manufacturer") is not None:
            exam["manufacturer"] = str(row["manufacturer"]).strip()
        if row.get("view") is not None:
            view = _VIEWS.get(str(row["view"]).strip().lower())
            if view is None:
                notes.append(f"patient {pid!r}: view {row['view']!r} is not axial/sagittal/coronal; kept under clinical")
            else:
                exam["view"] = view
        labels: dict[str, Any] = {target: y[d.name.lower()]}
        for col in ENDPOINTS:
            if col != target and col in row:
                try:
                    labels[col] = binary_cell(row[col], f"patient {pid!r} column {col!r}")
                except ValueError as e:
                    notes.append(f"{e}; not a label, kept under clinical")
        used = {id_key, "dataset", *labels} | {col for col, key in _EXAM_COLUMNS.items() if key in exam}
        patient: dict[str, Any] = {"patient_id": pid, "exam": exam, "labels": labels}
        if row.get("dataset") is not None:
            patient["collection"] = str(row["dataset"]).strip()
        if d.name.lower() in splits:
            patient["cohort"] = splits[d.name.lower()]
        patient["clinical"] = {k: clinical_value(v) for k, v in row.items() if k not in used}
        seg = segs.get(d.name.lower())
        patient["lesions"] = (
            [{"lesion_id": f"{pid}-L1", "mask": str(seg.relative_to(root)), "mask_source": "expert", "malignant": 1}] if seg is not None else []
        )
        if seg is None:
            notes.append(f"patient {pid!r}: no expert segmentation, so no lesion (lesion-level workflows leave it out)")
        patients.append(patient)
    for n in notes:
        logger.warning("%s", n)
    data = {
        "schema_version": "1.0",
        "dataset": {
            "name": f"MAMA-MIA import of {root.name}",
            "source": "MAMA-MIA (doi:10.7303/syn60868042)",
            "license": "CC BY-NC 4.0 (collection licences differ; see the MAMA-MIA release)",
            "target": target,
            "register_phases": True,
        },
        "patients": patients,
    }
    if notes:
        data["dataset"]["description"] = "Import notes: " + " | ".join(notes)
    return data, skipped
