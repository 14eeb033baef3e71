from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.importers import generic_manifest
from dce_monai.data.manifest import check_manifest, load_manifest

HEADER = "patient_id,sequence,path,time_s,lesion_id,label_value,malignant\n"


def _nii(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 3), value, np.uint16), np.eye(4)), str(path))


def test_generic_mapping_and_cli(tmp_path, capsys):
    for name in ("pre", "p1", "lm", "breast", "m2"):
        _nii(tmp_path / f"P1_{name}.nii.gz")
    m = tmp_path / "map.csv"
    m.write_text(
        HEADER + "P1,T1pre,P1_pre.nii.gz,0,,,\nP1,T1post1,P1_p1.nii.gz,90,,,\nP1,label_map,P1_lm.nii.gz,,,,\n"
        "P1,breast_mask,P1_breast.nii.gz,,,,\nP1,lesion,,,P1-L1,1,1\nP1,lesion,P1_m2.nii.gz,,,,0.0\n"
    )
    data = generic_manifest(m)
    check_manifest(data)
    (p,) = data["patients"]
    assert p["exam"]["acquisition_times_s"] == {"T1pre": 0.0, "T1post1": 90.0}
    assert p["exam"]["breast_mask"] == "P1_breast.nii.gz" and p["exam"]["label_map"] == "P1_lm.nii.gz"
    assert p["lesions"] == [
        {"lesion_id": "P1-L1", "label_value": 1, "malignant": 1},
        {"lesion_id": "P1-L2", "malignant": 0, "mask": "P1_m2.nii.gz"},
    ]
    out = tmp_path / "elsewhere" / "manifest.json"
    assert main(["import", "generic", str(m), "--out", str(out)]) == 0
    assert "1 patient(s) written" in capsys.readouterr().out
    dl = load_manifest(out).to_datalist()
    assert Path(dl[0]["T1pre"]).is_file() and dl[0]["label_value"] == 1  # paths rebased to stay valid
    assert Path(dl[1]["mask"]).is_file()
    inplace = tmp_path / "manifest.json"
    assert main(["import", "generic", str(m), "--out", str(inplace)]) == 0
    assert load_manifest(inplace).patients[0]["exam"]["sequences"]["T1pre"] == "P1_pre.nii.gz"  # kept relative


@pytest.mark.parametrize(
    "csv, match",
    [
        ("patient_id,path\nP1,x\n", r"missing column\(s\) \['sequence'\]"),
        ("patient_id,sequence,path\nP1,T1pre,nope.nii.gz\n", r"row 2 \(patient 'P1'\): file not found: nope.nii.gz"),
        (HEADER + "P1,T1pre,a.nii.gz,,,,\nP1,T1pre,a.nii.gz,,,,\n", r"row 3 \(patient 'P1'\): sequence 'T1pre' given twice"),
        (HEADER + "P1,lesion,,,L1,one,\n", r"row 2 \(patient 'P1'\): column 'label_value' must be an integer, got 'one'"),
        (HEADER + "P1,lesion,,,L1,1.5,\n", r"row 2 \(patient 'P1'\): column 'label_value' must be an integer, got '1.5'"),
        (HEADER + "P1,lesion,,,L1,1,inf\n", r"column 'malignant' must be an integer, got 'inf'"),
        (HEADER + "P1,lesion,m.nii.gz,,L1,,1\n", r"row 2 \(patient 'P1'\): lesion mask not found: m.nii.gz"),
    ],
)
def test_generic_errors(tmp_path, csv, match):
    _nii(tmp_path / "a.nii.gz")
    m = tmp_path / "map.csv"
    m.write_text(csv)
    with pytest.raises(ValueError, match=match):
        generic_manifest(m)


def test_generic_unknown_sequence_caught_on_save(tmp_path, capsys):
    _nii(tmp_path / "a.nii.gz")
    m = tmp_path / "map.csv"
    m.write_text("patient_id,sequence,path\nP1,DWI,a.nii.gz\n")
    assert generic_manifest(m)["patients"][0]["exam"]["sequences"] == {"DWI": "a.nii.gz"}
    assert main(["import", "generic", str(m), "--out", str(tmp_path / "m.json")]) == 2
    assert "patient 'P1' field 'exam.sequences': unknown sequence name 'DWI'" in capsys.readouterr().err
    assert generic_manifest(tmp_path / "map.csv", check_files=False)["patients"][0]["patient_id"] == "P1"


def test_generic_patient_target_from_clinical_table(tmp_path, capsys):
    rows = []
    for pid in ("P1", "P2", "P3"):
        for name in ("pre", "p1", "m"):
            _nii(tmp_path / f"{pid}_{name}.nii.gz")
        rows.append(f"{pid},T1pre,{pid}_pre.nii.gz,0,,,\n{pid},T1post1,{pid}_p1.nii.gz,90,,,\n{pid},lesion,{pid}_m.nii.gz,,,,1\n")
    m = tmp_path / "map.csv"
    m.write_text(HEADER + "".join(rows))
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("Patient ID,HER2\nP1,1\nP2,0\nP3,\n")
    out = tmp_path / "manifest.json"
    assert main(["import", "generic", str(m), "--target", "her2", "--out", str(out)]) == 2
    assert "target 'her2' is a patient endpoint; pass --clinical TABLE" in capsys.readouterr().err
    args = ["import", "generic", str(m), "--target", "her2", "--clinical", str(clinical), "--id-column", "Patient ID", "--out", str(out)]
    assert main(args) == 0
    assert "skipped P3: target 'her2' is missing" in capsys.readouterr().out
    man = load_manifest(out)
    assert man.target == "her2" and [(d["patient_id"], d["label"]) for d in man.to_datalist(level="lesion")] == [("P1", 1), ("P2", 0)]
    clinical.write_text("Patient ID,HER2\nP1,1\nP2,positive-ish\n")
    assert main(args) == 2
    assert "patient 'P2' column 'her2': expected 0 or 1 (or blank for missing), got 'positive-ish'" in capsys.readouterr().err
