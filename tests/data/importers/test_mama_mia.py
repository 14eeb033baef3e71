from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.importers import mama_mia_manifest
from dce_monai.data.manifest import check_manifest, load_manifest


def _nii(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 3), value, np.uint16), np.eye(4)), str(path))


def _layout(root: Path) -> Path:
    for k in range(4):
        _nii(root / "images" / "DUKE_001" / f"duke_001_{k:04d}.nii.gz")
    for k in range(3):
        _nii(root / "images" / "ISPY2_7" / f"ISPY2_7_{k:04d}.NII.GZ")
    for k in (0, 1, 3):
        _nii(root / "images" / "GAP_2" / f"GAP_2_{k:04d}.nii.gz")
    _nii(root / "images" / "BAD_1" / "BAD_1_0000.nii.gz")
    (root / "images" / "BAD_1" / "notes.txt").write_text("not an image")
    _nii(root / "segmentations" / "expert" / "duke_001.nii.gz")
    clinical = root / "clinical.csv"
    clinical.write_text("Patient_ID,PCR,her2,hr,age\nDUKE_001,1,0,1,51\nispy2_7,,1.0,0,40\n")
    return clinical


def test_mama_mia_case_insensitive_and_variable_phases(tmp_path):
    clinical = _layout(tmp_path)
    data, skipped = mama_mia_manifest(tmp_path, clinical)
    check_manifest(data)
    pts = {p["patient_id"]: p for p in data["patients"]}
    assert sorted(pts) == ["DUKE_001", "ISPY2_7"]
    assert list(pts["DUKE_001"]["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2", "T1post3"]
    assert pts["DUKE_001"]["exam"]["sequences"]["T1post3"] == "images/DUKE_001/duke_001_0003.nii.gz"
    assert list(pts["ISPY2_7"]["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2"]
    assert pts["DUKE_001"]["labels"] == {"pcr": 1, "her2": 0} and pts["ISPY2_7"]["labels"] == {"pcr": None, "her2": 1}
    assert pts["DUKE_001"]["lesions"] == [
        {"lesion_id": "DUKE_001-L1", "mask": "segmentations/expert/duke_001.nii.gz", "mask_source": "expert", "malignant": 1}
    ]
    assert pts["ISPY2_7"]["lesions"] == []
    assert skipped == [
        ("BAD_1", "needs <ID>_0000 and at least one post phase, found [0]"),
        ("GAP_2", "phase numbers have gaps: [0, 1, 3]"),
    ]


def test_mama_mia_without_clinical(tmp_path):
    _layout(tmp_path)
    data, _ = mama_mia_manifest(tmp_path)
    assert all(p["labels"] == {} for p in data["patients"])


def test_mama_mia_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no 'images' folder \(expected images/<ID>/<ID>_0000.nii.gz\)"):
        mama_mia_manifest(tmp_path)
    _nii(tmp_path / "images" / "A" / "A_0000.nii.gz")
    _nii(tmp_path / "images" / "A" / "A_0001.nii.gz")
    c = tmp_path / "c.csv"
    c.write_text("id,pcr\nA,1\n")
    with pytest.raises(ValueError, match=r"c.csv: no column 'patient_id'; columns are \['id', 'pcr'\]"):
        mama_mia_manifest(tmp_path, c)
    assert mama_mia_manifest(tmp_path, c, id_column="ID")[0]["patients"][0]["labels"] == {"pcr": 1}
    c.write_text("patient_id,pcr\nA,yes\n")
    with pytest.raises(ValueError, match=r"c.csv: patient 'A' column 'pcr'"):
        mama_mia_manifest(tmp_path, c)
    c.write_text("patient_id,pcr\nA,2\n")
    with pytest.raises(ValueError, match=r"patient 'A' column 'pcr': expected 0/1, got '2'"):
        mama_mia_manifest(tmp_path, c)


def test_mama_mia_cli(tmp_path, capsys):
    clinical = _layout(tmp_path / "mm")
    out = tmp_path / "mm" / "manifest.json"
    assert main(["import", "mama-mia", str(tmp_path / "mm"), "--clinical", str(clinical), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 patient(s) written" in text and "2 skipped" in text and "skipped GAP_2: phase numbers have gaps" in text
    m = load_manifest(out)
    assert m.patients[0]["exam"]["sequences"]["T1pre"] == "images/DUKE_001/duke_001_0000.nii.gz"  # in place, relative
    dl = m.to_datalist(level="patient", label="her2")
    assert [d["label"] for d in dl] == [0, 1] and all(Path(d["T1pre"]).is_file() for d in dl)
    assert main(["import", "mama-mia", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "no 'images' folder" in capsys.readouterr().err
