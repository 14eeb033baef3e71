"""MAMA-MIA importer on the published layout (xlsx and CSV clinical tables, splits, targets)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.importers import mama_mia_manifest
from dce_monai.data.importers.clinical import target_values
from dce_monai.data.manifest import check_manifest, load_manifest

HEADER = ["patient_id", "dataset", "pcr", "her2", "hr", "age", "tumor_subtype", "days_to_follow_up", "days_to_recurrence",
          "view", "fat_suppressed", "field_strength", "manufacturer", "acquisition_times"]
ROWS = [
    ["DUKE_001", "DUKE", 1, 0, 1, 51, "luminal_a", 2000, None, "axial", 1, 1.5, "GE", "[0, 165, 288, 411]"],
    ["ISPY2_7", "ISPY2", None, 1, 0, 40, "her2_enriched", 900, 700, "Sagittal", 0, 3.0, "SIEMENS", "[0, 100]"],
    ["NACT_3", "NACT", 0, None, 1, 60, None, 3000, None, "axial", None, 1.5, "GE", None],
]


def _nii(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 3), value, np.uint16), np.eye(4)), str(path))


def _table(path: Path, rows: list[list[object]]) -> Path:
    if path.suffix == ".xlsx":
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "dataset_info"
        for r in [HEADER, *rows]:
            ws.append(r)
        wb.save(path)
    else:
        path.write_text("\n".join(",".join("" if c is None else f'"{c}"' if "," in str(c) else str(c) for c in r) for r in [HEADER, *rows]) + "\n")
    return path


def _layout(root: Path, kind: str = "xlsx", rows: list[list[object]] = ROWS) -> Path:
    for k in range(4):
        _nii(root / "images" / "DUKE_001" / f"duke_001_{k:04d}.nii.gz")
    for k in range(3):
        _nii(root / "images" / "ISPY2_7" / f"ispy2_7_{k:04d}.NII.GZ")
    for k in range(2):
        _nii(root / "images" / "NACT_3" / f"nact_3_{k:04d}.nii.gz")
    for k in (0, 1, 3):
        _nii(root / "images" / "GAP_2" / f"gap_2_{k:04d}.nii.gz")
    _nii(root / "images" / "BAD_1" / "bad_1_0000.nii.gz")
    (root / "images" / "BAD_1" / "notes.txt").write_text("not an image")
    _nii(root / "segmentations" / "expert" / "duke_001.nii.gz")
    _nii(root / "segmentations" / "expert" / "ISPY2_7.nii.gz")
    (root / "train_test_splits.csv").write_text("train_split,test_split\nDUKE_001,ISPY2_7\nNACT_3,\n")
    return _table(root / f"clinical_and_imaging_info.{kind}", rows)


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_published_layout_with_target(tmp_path, kind):
    _layout(tmp_path, kind)
    data, skipped = mama_mia_manifest(tmp_path, target="her2")
    check_manifest(data)
    pts = {p["patient_id"]: p for p in data["patients"]}
    assert sorted(pts) == ["DUKE_001", "ISPY2_7"]  # NACT_3 has no her2
    assert data["dataset"]["target"] == "her2" and data["dataset"]["register_phases"] is True
    duke, ispy = pts["DUKE_001"], pts["ISPY2_7"]
    assert duke["exam"]["sequences"]["T1post3"] == "images/DUKE_001/duke_001_0003.nii.gz"
    assert list(ispy["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2"]
    assert duke["exam"]["acquisition_times_s"] == {"T1pre": 0.0, "T1post1": 165.0, "T1post2": 288.0, "T1post3": 411.0}
    assert "acquisition_times_s" not in ispy["exam"] and ispy["clinical"]["acquisition_times"] == "[0, 100]"  # 2 times, 3 files
    assert "acquisition_times has 2 value(s) for 3 image file(s)" in data["dataset"]["description"]
    assert duke["exam"]["field_strength_t"] == 1.5 and duke["exam"]["fat_suppression"] is True
    assert duke["exam"]["manufacturer"] == "GE" and duke["exam"]["view"] == "axial" and ispy["exam"]["view"] == "sagittal"
    assert duke["labels"] == {"her2": 0, "pcr": 1, "hr": 1} and ispy["labels"] == {"her2": 1, "pcr": None, "hr": 0}
    assert duke["collection"] == "DUKE" and duke["cohort"] == "train" and ispy["cohort"] == "test"
    assert duke["clinical"]["tumor_subtype"] == "luminal_a" and float(ispy["clinical"]["days_to_recurrence"]) == 700
    assert duke["lesions"] == [{"lesion_id": "DUKE_001-L1", "mask": "segmentations/expert/duke_001.nii.gz", "mask_source": "expert", "malignant": 1}]
    assert ispy["lesions"][0]["mask"] == "segmentations/expert/ISPY2_7.nii.gz"  # case differs between sites
    assert skipped == [
        ("BAD_1", "needs <id>_0000 and at least one post phase, found [0]"),
        ("GAP_2", "phase numbers have gaps: [0, 1, 3]"),
        ("NACT_3", "target 'her2' is missing"),
    ]


def test_derived_recurrence_target():
    rows = {
        "a": {"days_to_recurrence": 700, "days_to_follow_up": 900},  # event within 5 years
        "b": {"days_to_recurrence": None, "days_to_follow_up": 2000},  # followed past 5 years, no event
        "c": {"days_to_recurrence": None, "days_to_follow_up": 1000},  # censored before 5 years
        "d": {"days_to_recurrence": 2500, "days_to_follow_up": 2600},  # event after 5 years
    }
    assert target_values(rows, "recurrence_5y") == {"a": 1, "b": 0, "c": None, "d": 0}
    with pytest.raises(ValueError, match=r"target 'metastasis_3y' is derived from columns \['days_to_metastasis', 'days_to_follow_up'\]; missing \['days_to_metastasis'\]"):
        target_values(rows, "metastasis_3y")
    with pytest.raises(ValueError, match=r"patient 'x' column 'days_to_follow_up': expected a number of days \(or blank\), got 'soon'"):
        target_values({"x": {"days_to_recurrence": None, "days_to_follow_up": "soon"}}, "recurrence_5y")


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no 'images' folder \(expected images/<ID>/<id>_0000.nii.gz\)"):
        mama_mia_manifest(tmp_path, "her2")
    _nii(tmp_path / "images" / "A" / "a_0000.nii.gz")
    _nii(tmp_path / "images" / "A" / "a_0001.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"no clinical_and_imaging_info.xlsx \(or .csv\); pass --clinical"):
        mama_mia_manifest(tmp_path, "her2")
    with pytest.raises(ValueError, match=r"target 'malignant' has one class in MAMA-MIA"):
        mama_mia_manifest(tmp_path, "malignant")
    c = tmp_path / "c.csv"
    c.write_text("id,pcr\nA,1\n")
    with pytest.raises(ValueError, match=r"c.csv: no column 'patient_id'; columns: \['id', 'pcr'\]"):
        mama_mia_manifest(tmp_path, "pcr", c)
    assert mama_mia_manifest(tmp_path, "pcr", c, id_column="ID")[0]["patients"][0]["labels"] == {"pcr": 1}
    with pytest.raises(ValueError, match=r"c.csv: no column 'her2' for the target; columns: \['id', 'pcr'\]"):
        mama_mia_manifest(tmp_path, "her2", c, id_column="id")
    c.write_text("patient_id,pcr\nA,2\n")
    with pytest.raises(ValueError, match=r"c.csv: patient 'a' column 'pcr': expected 0 or 1 \(or blank for missing\), got '2'"):
        mama_mia_manifest(tmp_path, "pcr", c)
    c.write_text("patient_id,pcr\nA,1\na,0\n")
    with pytest.raises(ValueError, match=r"c.csv: patient 'a' appears in two rows"):
        mama_mia_manifest(tmp_path, "pcr", c)
    c.write_text("patient_id,PCR,pcr\nA,1,0\n")
    with pytest.raises(ValueError, match=r"c.csv: columns 'PCR' and 'pcr' both read as 'pcr'"):
        mama_mia_manifest(tmp_path, "pcr", c)
    c2 = tmp_path / "c.txt"
    c2.write_text("x")
    with pytest.raises(ValueError, match=r"clinical tables must be .csv or .xlsx, got '.txt'"):
        mama_mia_manifest(tmp_path, "pcr", c2)


def test_cli(tmp_path, capsys):
    _layout(tmp_path / "mm")
    out = tmp_path / "mm" / "manifest.json"
    assert main(["import", "mama-mia", str(tmp_path / "mm"), "--out", str(out)]) == 2
    assert "--target is required" in capsys.readouterr().err
    assert main(["import", "mama-mia", str(tmp_path / "mm"), "--target", "her2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 patient(s) written" in text and "(target 'her2'); 3 skipped" in text and "skipped NACT_3: target 'her2' is missing" in text
    m = load_manifest(out)
    assert m.target == "her2" and m.patients[0]["exam"]["sequences"]["T1pre"] == "images/DUKE_001/duke_001_0000.nii.gz"
    dl = m.to_datalist(level="lesion")  # the manifest's target; label map from the expert mask
    assert [d["label"] for d in dl] == [0, 1] and all(d["label_value"] == 1 and d["label_map"].endswith(".nii.gz") and "mask" not in d for d in dl)
    assert main(["import", "mama-mia", str(tmp_path / "none"), "--target", "her2", "--out", str(out)]) == 2
    assert "no 'images' folder" in capsys.readouterr().err
