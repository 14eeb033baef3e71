from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.importers import breastdcedl_manifest, generic_manifest, mama_mia_manifest, read_breastdcedl
from dce_monai.data.manifest import check_manifest, load_manifest

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference" / "BreastDCEDL_metadata.csv"


def _nii(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 3), value, np.uint16), np.eye(4)), str(path))


@pytest.mark.skipif(not REFERENCE.is_file(), reason="shared/reference/BreastDCEDL_metadata.csv not present beside the repository")
def test_real_breastdcedl_csv_read_as_is():
    records, report = read_breastdcedl(REFERENCE)
    assert report["rows"] == len(records) == 2070 and report["skipped"] == []
    assert report["partial"]["HER2"] == 5 and report["partial"]["HR_HER2_STATUS"] == 5  # blank subtype flags
    r = records[0]
    assert r["pid"] == "ACRIN-6698-102212" and r["n_xy"] == 256 and isinstance(r["n_xy"], int) and r["xy_spacing"] == 0.6055
    assert {x["dataset"] for x in records} == {"spy1", "spy2", "duke"}


def test_breastdcedl_fixture_odd_rows(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "pid,pCR,n_xy,n_z,n_times,pre,post_early,post_late,slice_thick,xy_spacing,tum_vol,HER2,HR_HER2_STATUS,dataset\n"
        "A,1.0,256.0,80.0,4.0,0.0,1.0,3.0,2.0,0.7,1000.5,1.0,HER2pos,spy2\n"
        "B,,256.0,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,,,duke\n"
        "C,0.0,,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,0.0,,duke\n"
        "D,0.0,256.0,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,2.0,,duke\n"
    )
    records, report = read_breastdcedl(csv)
    assert [r["pid"] for r in records] == ["A", "B"]
    assert report["skipped"] == [
        (4, "C", "blank required column(s) ['n_xy']"),
        (5, "D", "column 'HER2' must be 0/1 or blank, got '2.0'"),
    ]
    assert records[1]["pCR"] is None and report["partial"]["HER2"] == 1
    for k in range(4):
        _nii(tmp_path / "img" / "A" / f"A_vis1_acq{k}.nii.gz")
    data, skipped = breastdcedl_manifest(records, tmp_path / "img")
    check_manifest(data)
    assert list(data["patients"][0]["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2", "T1post3"]
    assert skipped == [("B", "3 image file(s) missing, e.g. B/B_vis1_acq0.nii.gz")]


def test_breastdcedl_missing_column(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("pid,n_xy\nA,1\n")
    with pytest.raises(ValueError, match=r"not a BreastDCEDL metadata CSV: missing column\(s\) \['n_z'"):
        read_breastdcedl(p)


def test_mama_mia_case_insensitive_and_variable_phases(tmp_path):
    root = tmp_path / "mm"
    for k in range(4):
        _nii(root / "images" / "DUKE_001" / f"duke_001_{k:04d}.nii.gz")
    for k in range(3):
        _nii(root / "images" / "ISPY2_7" / f"ISPY2_7_{k:04d}.NII.GZ")
    _nii(root / "images" / "BAD_1" / "BAD_1_0000.nii.gz")
    _nii(root / "segmentations" / "expert" / "duke_001.nii.gz")
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("patient_id,pcr,her2\nDUKE_001,1,0\nISPY2_7,,1\n")
    data, skipped = mama_mia_manifest(root, clinical)
    check_manifest(data)
    pts = {p["patient_id"]: p for p in data["patients"]}
    assert list(pts["DUKE_001"]["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2", "T1post3"]
    assert list(pts["ISPY2_7"]["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2"]
    assert pts["DUKE_001"]["labels"] == {"pcr": 1, "her2": 0} and pts["ISPY2_7"]["labels"] == {"pcr": None, "her2": 1}
    assert pts["DUKE_001"]["lesions"][0]["mask"] == "segmentations/expert/duke_001.nii.gz"
    assert skipped == [("BAD_1", "needs <ID>_0000 and at least one post phase, found [0]")]


def test_mama_mia_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'images' folder"):
        mama_mia_manifest(tmp_path)
    _nii(tmp_path / "images" / "A" / "A_0000.nii.gz")
    _nii(tmp_path / "images" / "A" / "A_0001.nii.gz")
    c = tmp_path / "c.csv"
    c.write_text("id,pcr\nA,1\n")
    with pytest.raises(ValueError, match=r"no column 'patient_id'"):
        mama_mia_manifest(tmp_path, c)
    c.write_text("patient_id,pcr\nA,yes\n")
    with pytest.raises(ValueError, match=r"patient 'A' column 'pcr'"):
        mama_mia_manifest(tmp_path, c)


def test_generic_mapping_and_cli(tmp_path, capsys):
    for name in ("pre", "p1", "lm"):
        _nii(tmp_path / f"P1_{name}.nii.gz")
    m = tmp_path / "map.csv"
    m.write_text(
        "patient_id,sequence,path,time_s,lesion_id,label_value,malignant\n"
        "P1,T1pre,P1_pre.nii.gz,0,,,\nP1,T1post1,P1_p1.nii.gz,90,,,\nP1,label_map,P1_lm.nii.gz,,,,\nP1,lesion,,,P1-L1,1,1\n"
    )
    data = generic_manifest(m)
    check_manifest(data)
    assert data["patients"][0]["exam"]["acquisition_times_s"] == {"T1pre": 0.0, "T1post1": 90.0}
    out = tmp_path / "elsewhere" / "manifest.json"
    assert main(["import", "generic", str(m), "--out", str(out)]) == 0
    dl = load_manifest(out).to_datalist()
    assert Path(dl[0]["T1pre"]).is_file() and dl[0]["label_value"] == 1  # paths rebased to stay valid


@pytest.mark.parametrize(
    "csv, match",
    [
        ("patient_id,path\nP1,x\n", r"missing column\(s\) \['sequence'\]"),
        ("patient_id,sequence,path\nP1,T1pre,nope.nii.gz\n", r"row 2 \(patient 'P1'\): file not found: nope.nii.gz"),
    ],
)
def test_generic_errors(tmp_path, csv, match):
    m = tmp_path / "map.csv"
    m.write_text(csv)
    with pytest.raises(ValueError, match=match):
        generic_manifest(m)


def test_generic_duplicate_sequence(tmp_path):
    _nii(tmp_path / "a.nii.gz")
    m = tmp_path / "map.csv"
    m.write_text("patient_id,sequence,path\nP1,T1pre,a.nii.gz\nP1,T1pre,a.nii.gz\n")
    with pytest.raises(ValueError, match=r"row 3 \(patient 'P1'\): sequence 'T1pre' given twice"):
        generic_manifest(m)
