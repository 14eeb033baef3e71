from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.importers import breastdcedl_manifest, read_breastdcedl
from dce_monai.data.manifest import check_manifest, load_manifest

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference" / "BreastDCEDL_metadata.csv"
HEADER = "pid,pCR,n_xy,n_z,n_times,pre,post_early,post_late,slice_thick,xy_spacing,tum_vol,HER2,HR_HER2_STATUS,dataset\n"


def _nii(path: Path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 3), value, np.uint16), np.eye(4)), str(path))


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"reference CSV absent: {REFERENCE} (shared/reference beside the repository)")
def test_real_breastdcedl_csv_read_as_is():
    records, report = read_breastdcedl(REFERENCE)
    assert report["rows"] == len(records) == 2070 and report["skipped"] == []
    assert report["partial"]["HER2"] == 5 and report["partial"]["HR_HER2_STATUS"] == 5  # blank subtype flags
    assert report["partial"]["pCR"] == 618 and report["partial"]["tum_vol"] == 614
    r = records[0]
    assert r["pid"] == "ACRIN-6698-102212" and r["n_xy"] == 256 and isinstance(r["n_xy"], int) and r["xy_spacing"] == 0.6055
    assert (r["n_times"], r["pre"], r["post_early"], r["post_late"]) == (8, 0, 2, 6)
    assert (r["mask_start"], r["mask_end"], r["sraw"], r["eraw"], r["scol"], r["ecol"]) == (15, 52, 104, 200, 155, 216)
    assert (r["HER2"], r["HR"], r["pCR"], r["HR_HER2_STATUS"]) == (0, 0, 0, "TripleNeg")
    assert {x["dataset"] for x in records} == {"spy1", "spy2", "duke"}
    assert all(x["n_times"] >= 3 and x["pre"] == 0 for x in records)


def _fixture_csv(tmp_path: Path) -> Path:
    csv = tmp_path / "meta.csv"
    csv.write_text(
        HEADER + "A,1.0,256.0,80.0,4.0,0.0,1.0,3.0,2.0,0.7,1000.5,1.0,HER2pos,spy2\n"
        "B,,256.0,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,,,duke\n"
        "C,0.0,,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,0.0,,duke\n"
        "D,0.0,256.0,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,2.0,,duke\n"
        "E,0.0,256.0,80.0,abc,0.0,1.0,2.0,2.0,0.7,,0.0,,duke\n"
        "F,0.0,256.0,80.0,1.0,0.0,,,2.0,0.7,,0.0,,duke\n"
        "G,0.0,256.5,80.0,3.0,0.0,1.0,2.0,2.0,0.7,,0.0,,duke\n"
        "H,0.0,256.0,80.0,3.0,0.0,1.0,2.0,2.0,nan,,0.0,,duke\n"
    )
    return csv


def test_breastdcedl_fixture_odd_rows(tmp_path):
    records, report = read_breastdcedl(_fixture_csv(tmp_path))
    assert [r["pid"] for r in records] == ["A", "B", "F"] and report["rows"] == 8
    assert report["skipped"] == [
        (4, "C", "blank required column(s) ['n_xy']"),
        (5, "D", "column 'HER2' must be 0/1 or blank, got '2.0'"),
        (6, "E", "column 'n_times' is not a number: 'abc'"),
        (8, "G", "column 'n_xy' must be an integer, got '256.5'"),
        (9, "H", "column 'xy_spacing' is not a finite number: 'nan'"),
    ]
    assert records[1]["pCR"] is None and records[1]["HR_HER2_STATUS"] is None and report["partial"]["HER2"] == 1
    assert records[0]["tum_vol"] == 1000.5 and records[0]["n_times"] == 4 and isinstance(records[0]["pre"], int)


def test_breastdcedl_manifest(tmp_path):
    records, _ = read_breastdcedl(_fixture_csv(tmp_path))
    for k in range(4):
        _nii(tmp_path / "img" / "A" / f"A_vis1_acq{k}.nii.gz")
    _nii(tmp_path / "img" / "A" / "A_vis1_mask.nii.gz")
    data, skipped = breastdcedl_manifest(records, tmp_path / "img")
    check_manifest(data)
    (a,) = data["patients"]
    assert list(a["exam"]["sequences"]) == ["T1pre", "T1post1", "T1post2", "T1post3"]
    assert a["exam"]["sequences"]["T1post3"] == "A/A_vis1_acq3.nii.gz" and a["exam"]["spacing_mm"] == [0.7, 0.7, 2.0]
    assert a["labels"] == {"pcr": 1, "her2": 1, "malignant": 1}
    assert a["lesions"] == [{"lesion_id": "A-L1", "mask": "A/A_vis1_mask.nii.gz", "mask_source": "expert", "malignant": 1}]
    assert skipped == [
        ("B", "3 image file(s) missing, e.g. B/B_vis1_acq0.nii.gz"),
        ("F", "needs a pre-contrast index below the last time point: pre=0, n_times=1"),
    ]
    data, _ = breastdcedl_manifest(records[:1], tmp_path / "img", pattern="{pid}_{k}.nii", mask_pattern=None, require_files=False)
    assert data["patients"][0]["exam"]["sequences"]["T1pre"] == "A_0.nii" and data["patients"][0]["lesions"] == []


def test_breastdcedl_errors(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("pid,n_xy\nA,1\n")
    with pytest.raises(ValueError, match=r"x.csv: not a BreastDCEDL metadata CSV: missing column\(s\) \['n_z'"):
        read_breastdcedl(p)
    with pytest.raises(FileNotFoundError, match=r"BreastDCEDL metadata CSV not found: .*none.csv"):
        read_breastdcedl(tmp_path / "none.csv")


def test_breastdcedl_cli(tmp_path, capsys):
    csv = _fixture_csv(tmp_path)
    out = tmp_path / "manifest.json"
    assert main(["import", "breastdcedl", str(csv), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "8 rows read, 3 usable, 5 skipped" in text and "skipped row 4 (C): blank required column(s) ['n_xy']" in text
    assert "no --image-root: no manifest written" in text and not out.exists()
    for k in range(4):
        _nii(tmp_path / "img" / "A" / f"A_vis1_acq{k}.nii.gz")
    assert main(["import", "breastdcedl", str(csv), "--image-root", str(tmp_path / "img"), "--out", str(out)]) == 2
    assert "import breastdcedl: --target is required" in capsys.readouterr().err
    assert main(["import", "breastdcedl", str(csv), "--image-root", str(tmp_path / "img"), "--target", "pcr", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 patient(s) written" in text and "(target 'pcr')" in text and "skipped B: 3 image file(s) missing" in text
    assert load_manifest(out).target == "pcr"
    dl = load_manifest(out).to_datalist(level="patient")
    assert Path(dl[0]["T1post3"]).is_file() and dl[0]["label"] == 1  # paths rebased to the image root
    assert json.loads(out.read_text())["dataset"]["name"] == "BreastDCEDL"
