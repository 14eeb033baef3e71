"""Write phantom cohorts in a public dataset's published layout.

A user's first contact with dce_monai is often a public download, not our phantom. To test
the whole chain the way such a user meets it (importer, validation, folds, workflows,
bundles) without shipping patient data, :func:`export_mama_mia` writes one or more phantom
cohorts in the MAMA-MIA layout: lower-case file names in upper-case folders, no T2, no
breast mask, no label map, one expert tumour segmentation per patient, a clinical
``.xlsx`` (sheet ``dataset_info``) or ``.csv`` with the release's columns and
``train_test_splits.csv``. Cohorts made with different ``n_post``, ``post_interval`` and
``motion_mm`` give the varying phase counts, times and motion of real multi-site data.

Example:
    >>> from dce_monai.data.phantom import generate_cohort                   # doctest: +SKIP
    >>> a = generate_cohort("tmp/a", 6, seed=0, size="tiny", n_post=3)      # doctest: +SKIP
    >>> export_mama_mia({"SITEA": a}, "MAMA-MIA-like", missing_target={"SITEA_PH0001"})  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from dce_monai.data.io import write_nifti
from dce_monai.sequences import PRE, post_name

__all__ = ["MAMA_MIA_COLUMNS", "export_mama_mia"]

#: Columns of MAMA-MIA's ``dataset_info`` sheet that the export fills (a subset of its 49).
MAMA_MIA_COLUMNS = (
    "patient_id", "dataset", "age", "pcr", "hr", "er", "pr", "her2", "tumor_subtype", "days_to_follow_up",
    "days_to_recurrence", "days_to_metastasis", "days_to_death", "view", "num_phases", "fat_suppressed",
    "field_strength", "pixel_spacing", "slice_thickness", "manufacturer", "acquisition_times",
)


def _tumour_mask(label_map: np.ndarray, lesions: list[dict[str, Any]]) -> np.ndarray:
    """The largest malignant lesion (else the largest lesion) of a label map, as 0/1 uint8."""
    if not lesions:
        return np.zeros(label_map.shape, np.uint8)
    mal = [les for les in lesions if les.get("malignant")] or lesions
    best = max(mal, key=lambda les: int((label_map == les["label_value"]).sum()))
    return (label_map == best["label_value"]).astype(np.uint8)


def export_mama_mia(
    cohorts: Mapping[str, str | Path],
    root: str | Path,
    clinical_format: str = "xlsx",
    missing_target: Collection[str] = (),
    target: str = "her2",
    test_fraction: float = 0.25,
) -> Path:
    """Write phantom cohorts as one MAMA-MIA-style dataset root.

    Patient ``PH0003`` of cohort ``"SITEA"`` becomes ``SITEA_PH0003`` with files
    ``images/SITEA_PH0003/sitea_ph0003_0000.nii.gz`` (T1pre), ``..._000k`` (T1post k) and
    ``segmentations/expert/sitea_ph0003.nii.gz`` (its largest malignant lesion). The clinical
    row carries ``her2``, recurrence as ``days_to_recurrence``/``days_to_follow_up``, the
    acquisition times as text (``[0.0, 90.0, ...]``), field strength, fat suppression, view,
    spacing and ``dataset`` = the cohort name; ``pcr``, ``hr``, ``er`` and ``pr`` are blank
    (the phantom does not model them).

    Args:
        cohorts: ``{collection name: phantom manifest path}``; names must be upper-case
            letters and digits.
        root: output dataset root (created; must not hold ``images/`` already).
        clinical_format: ``"xlsx"`` (sheet ``dataset_info``) or ``"csv"``.
        missing_target: exported patient ids whose ``target`` cell is left blank.
        target: the clinical column ``missing_target`` blanks.
        test_fraction: share of each cohort's patients listed in ``test_split``.

    Returns:
        The dataset root.

    Raises:
        ValueError: a bad collection name or format, or ``root`` already holding images.
    """
    from dce_monai.data.manifest import load_manifest

    if clinical_format not in ("xlsx", "csv"):
        raise ValueError(f"clinical_format must be 'xlsx' or 'csv', got {clinical_format!r}.")
    root = Path(root)
    if (root / "images").exists():
        raise ValueError(f"{root}: already holds an images/ folder; export into an empty folder.")
    seg_dir = root / "segmentations" / "expert"
    seg_dir.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    splits: dict[str, list[str]] = {"train_split": [], "test_split": []}
    for name, manifest in cohorts.items():
        if not name.isalnum() or name.upper() != name:
            raise ValueError(f"collection names must be upper-case letters and digits, got {name!r}.")
        m = load_manifest(manifest)
        n_test = round(len(m.patients) * test_fraction)
        for i, p in enumerate(m.patients):
            pid = f"{name}_{p['patient_id']}"
            low = pid.lower()
            exam = p["exam"]
            phases = [PRE] + [post_name(k) for k in range(1, 100) if post_name(k) in exam["sequences"]]
            folder = root / "images" / pid
            folder.mkdir(parents=True)
            for k, seq in enumerate(phases):
                shutil.copyfile(m.resolve(exam["sequences"][seq]), folder / f"{low}_{k:04d}.nii.gz")
            lm_img = nib.load(m.resolve(exam["label_map"]))
            mask = _tumour_mask(np.asarray(lm_img.dataobj), p["lesions"])
            write_nifti(mask, lm_img.affine, seg_dir / f"{low}.nii.gz")
            labels = p.get("labels", {})
            times = exam.get("acquisition_times_s", {})
            event = labels.get("recurrence_event")
            days = labels.get("recurrence_days")
            spacing = exam.get("spacing_mm", [None, None, None])
            rows.append({
                "patient_id": pid, "dataset": name, "age": None,
                "pcr": None, "hr": None, "er": None, "pr": None, "her2": labels.get("her2"),
                "tumor_subtype": None,
                "days_to_follow_up": days, "days_to_recurrence": days if event == 1 else None,
                "days_to_metastasis": None, "days_to_death": None,
                "view": exam.get("view"), "num_phases": len(phases),
                "fat_suppressed": None if "fat_suppression" not in exam else int(exam["fat_suppression"]),
                "field_strength": exam.get("field_strength_t"),
                "pixel_spacing": f"[{spacing[0]}, {spacing[1]}]", "slice_thickness": spacing[2],
                "manufacturer": exam.get("scanner", "phantom"),
                "acquisition_times": "[" + ", ".join(f"{times[s]:g}" for s in phases) + "]" if all(s in times for s in phases) else None,
            })
            if pid in missing_target:
                rows[-1][target] = None
            splits["test_split" if i < n_test else "train_split"].append(pid)
    if clinical_format == "xlsx":
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "dataset_info"
        ws.append(list(MAMA_MIA_COLUMNS))
        for r in rows:
            ws.append([r[c] for c in MAMA_MIA_COLUMNS])
        wb.save(root / "clinical_and_imaging_info.xlsx")
    else:
        with open(root / "clinical_and_imaging_info.csv", "w", newline="") as f:
            w = csv.DictWriter(f, MAMA_MIA_COLUMNS)
            w.writeheader()
            w.writerows({c: ("" if r[c] is None else r[c]) for c in MAMA_MIA_COLUMNS} for r in rows)
    with open(root / "train_test_splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["train_split", "test_split"])
        n = max(len(v) for v in splits.values())
        for j in range(n):
            w.writerow([(splits[c][j] if j < len(splits[c]) else "") for c in ("train_split", "test_split")])
    return root
