"""Importer for MAMA-MIA-style folders.

Layout: ``images/<ID>/<ID>_0000.nii.gz`` (pre-contrast), ``<ID>_0001.nii.gz`` ... (post
phases, 2-7 of them in real data), ``segmentations/expert/<ID>.nii.gz`` (tumour mask) and a
clinical CSV with a patient id column. File-name case differs between sites, so names are
matched case-insensitively. The manifest references the files in place.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from dce_monai.sequences import PRE, post_name

__all__ = ["mama_mia_manifest"]

_PHASE = re.compile(r"^(?P<id>.+)_(?P<k>\d{4})\.nii(\.gz)?$", re.IGNORECASE)
_CLINICAL = {"pcr": "pcr", "her2": "her2", "er": "er", "pr": "pr", "hr": None}


def _bin(v: str | None) -> int | None:
    v = (v or "").strip()
    if v == "":
        return None
    f = float(v)
    if f not in (0.0, 1.0):
        raise ValueError(f"expected 0/1, got {v!r}")
    return int(f)


def mama_mia_manifest(root: str | Path, clinical_csv: str | Path | None = None, id_column: str = "patient_id") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Scan a MAMA-MIA-style folder and return ``(manifest_data, skipped)``.

    Phase ``_0000`` becomes ``T1pre`` and ``_000k`` becomes ``T1post<k>``; a patient needs
    ``_0000`` and at least one post phase, numbered without gaps. The expert segmentation,
    when present, becomes one lesion with ``mask_source`` "expert" and ``malignant`` 1 (all
    MAMA-MIA tumours are cancers). Clinical columns ``pcr``, ``her2``, ``er``, ``pr``
    (any case, 0/1 or blank) become patient labels; other columns (``hr``, ``age``, ...) are
    not manifest fields and are not imported.

    Args:
        root: folder holding ``images/`` and ``segmentations/expert/``.
        clinical_csv: optional clinical table (CSV).
        id_column: patient id column of the clinical table (matched case-insensitively).

    Returns:
        ``(manifest_data, skipped)``: paths in the manifest are relative to ``root`` (write
        the manifest there, or rebase); ``skipped`` = [(folder name, reason)].

    Raises:
        FileNotFoundError: ``root/images`` does not exist.
        ValueError: the clinical CSV lacks ``id_column``, or a label cell is not 0/1 (named).

    Example:
        >>> data, skipped = mama_mia_manifest("MAMA-MIA", "MAMA-MIA/clinical.csv")  # doctest: +SKIP
        >>> save_manifest(data, "MAMA-MIA/manifest.json")                          # doctest: +SKIP
    """
    root = Path(root)
    images = root / "images"
    if not images.is_dir():
        raise FileNotFoundError(f"{root}: no 'images' folder (expected images/<ID>/<ID>_0000.nii.gz).")
    clinical: dict[str, dict[str, str]] = {}
    if clinical_csv is not None:
        with open(clinical_csv, newline="") as f:
            reader = csv.DictReader(f)
            if id_column.lower() not in [c.lower() for c in reader.fieldnames or []]:
                raise ValueError(f"{clinical_csv}: no column {id_column!r}; columns are {reader.fieldnames}.")
            for row in reader:
                low = {k.lower(): v for k, v in row.items() if k is not None}
                clinical[(low[id_column.lower()] or "").strip().lower()] = low
    segs = {p.name.lower().split(".nii")[0]: p for p in (root / "segmentations" / "expert").glob("*") if ".nii" in p.name.lower()}
    patients, skipped = [], []
    for d in sorted(p for p in images.iterdir() if p.is_dir()):
        phases: dict[int, Path] = {}
        for fp in d.iterdir():
            m = _PHASE.match(fp.name)
            if m and m.group("id").lower() == d.name.lower():
                phases[int(m.group("k"))] = fp
        if 0 not in phases or len(phases) < 2:
            skipped.append((d.name, f"needs <ID>_0000 and at least one post phase, found {sorted(phases)}"))
            continue
        if sorted(phases) != list(range(len(phases))):
            skipped.append((d.name, f"phase numbers have gaps: {sorted(phases)}"))
            continue
        seqs = {PRE if k == 0 else post_name(k): str(phases[k].relative_to(root)) for k in sorted(phases)}
        labels: dict[str, Any] = {}
        crow = clinical.get(d.name.lower())
        if crow is not None:
            for col, key in _CLINICAL.items():
                if key and col in crow:
                    try:
                        labels[key] = _bin(crow[col])
                    except ValueError as e:
                        raise ValueError(f"{clinical_csv}: patient {d.name!r} column {col!r}: {e}") from None
        lesions = []
        seg = segs.get(d.name.lower())
        if seg is not None:
            lesions.append({"lesion_id": f"{d.name}-L1", "mask": str(seg.relative_to(root)), "mask_source": "expert", "malignant": 1})
        patients.append({"patient_id": d.name, "exam": {"sequences": seqs}, "labels": labels, "lesions": lesions})
    data = {"schema_version": "1.0", "dataset": {"name": f"MAMA-MIA import of {root.name}"}, "patients": patients}
    return data, skipped
