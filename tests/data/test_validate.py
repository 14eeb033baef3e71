from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.manifest import ManifestError, load_manifest, save_manifest
from dce_monai.data.validate import (
    _affine_problem,
    read_nifti,
    require_valid,
    validate_cohort,
)

SHAPE = (6, 5, 4)
AFFINE = np.diag([0.7, 0.7, 2.0, 1.0])


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


@pytest.fixture()
def cohort(tmp_path) -> Path:
    """A 3-patient cohort of tiny NIfTIs: P0/P1 locate the lesion by label map, P2 by its own mask."""
    rng = np.random.default_rng(0)
    patients = []
    for i in range(3):
        pid = f"P{i}"
        seqs = {}
        for name in ("T1pre", "T1post1", "T1post2"):
            _save(tmp_path / pid / f"{name}.nii.gz", rng.uniform(0, 100, SHAPE).astype(np.float32))
            seqs[name] = f"{pid}/{name}.nii.gz"
        lesion_mask = np.zeros(SHAPE, np.uint8)
        lesion_mask[2:4, 2:4, 1:3] = 1
        _save(tmp_path / pid / "breast.nii.gz", np.ones(SHAPE, np.uint8))
        exam = {"sequences": seqs, "breast_mask": f"{pid}/breast.nii.gz"}
        if i < 2:
            _save(tmp_path / pid / "lm.nii.gz", lesion_mask)
            exam["label_map"] = f"{pid}/lm.nii.gz"
            lesion = {"lesion_id": f"{pid}-L1", "label_value": 1, "malignant": i % 2}
        else:
            _save(tmp_path / pid / "mask.nii.gz", lesion_mask)
            lesion = {"lesion_id": f"{pid}-L1", "mask": f"{pid}/mask.nii.gz", "malignant": 1}
        patients.append({"patient_id": pid, "exam": exam, "lesions": [lesion]})
    data = {"schema_version": "1.0", "dataset": {"name": "unit"}, "patients": patients}
    return save_manifest(data, tmp_path / "manifest.json")


def _file(manifest: Path, pid: str, name: str) -> Path:
    return manifest.parent / pid / name


def test_clean_cohort_passes(cohort):
    r = validate_cohort(cohort)
    assert r.ok and r.valid_patients == ["P0", "P1", "P2"] and r.invalid_patients == []
    assert str(r).startswith("3 valid, 0 invalid")


def _zero_byte(p: Path) -> None:
    p.write_bytes(b"")


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:300])


def _wrong_header(p: Path) -> None:
    p.write_bytes(gzip.compress(b"this is not a nifti header" * 20))


def _delete(p: Path) -> None:
    p.unlink()


@pytest.mark.parametrize(
    "damage, match",
    [
        (_zero_byte, r"file is empty \(0 bytes\)"),
        (_truncate, r"cannot read NIfTI file"),
        (_wrong_header, r"cannot read NIfTI file"),
        (_delete, r"file not found"),
    ],
)
def test_corrupt_files_named(cohort, damage, match):
    path = _file(cohort, "P0", "T1post2.nii.gz")
    damage(path)
    r = validate_cohort(cohort)
    assert not r.ok and r.invalid_patients == ["P0"] and r.valid_patients == ["P1", "P2"]
    (prob,) = r.problems
    assert prob.case == "patient 'P0'" and prob.field == "exam.sequences.T1post2"
    assert re.search(match, prob.message) and "T1post2.nii.gz" in prob.message
    with pytest.raises(ValueError, match=match + r".*T1post2\.nii\.gz"):
        read_nifti(path)


def test_read_nifti_header_only(cohort):
    data, aff = read_nifti(_file(cohort, "P0", "T1pre.nii.gz"), header_only=True)
    assert data is None and np.allclose(aff, AFFINE)
    data, _ = read_nifti(_file(cohort, "P0", "T1pre.nii.gz"))
    assert data.shape == SHAPE


def _rewrite(p: Path, fn) -> None:
    img = nib.load(str(p))
    data, aff = fn(np.asanyarray(img.dataobj), img.affine.copy())
    _save(p, data, aff)


@pytest.mark.parametrize(
    "pid, name, fn, field, match",
    [
        ("P0", "T1post1", lambda d, a: (d[:-1], a), "exam.sequences.T1post1", r"not on the grid of exam.sequences.T1pre: shape \(5, 5, 4\) vs \(6, 5, 4\)"),
        ("P0", "T1post1", lambda d, a: (d, a + np.diag([0, 0, 0.5, 0])), "exam.sequences.T1post1", r"affines differ by up to 0.5 mm"),
        ("P0", "T1post1", lambda d, a: (np.where(d > 50, np.nan, d), a), "exam.sequences.T1post1", r"\d+ NaN/Inf voxels"),
        ("P0", "T1post1", lambda d, a: (np.stack([d, d], -1), a), "exam.sequences.T1post1", r"expected a 3D volume, got shape \(6, 5, 4, 2\)"),
        ("P0", "lm", lambda d, a: (np.zeros_like(d), a), "label_value", r"value 1 not found in the label map \(lesion mask is empty\)"),
        ("P0", "lm", lambda d, a: (d.astype(np.float32) * 1.5, a), "exam.label_map", r"label map has non-integer values"),
        ("P0", "lm", lambda d, a: (d[:, :-1], a), "exam.label_map", r"not on the grid of exam.sequences.T1pre"),
        ("P1", "breast", lambda d, a: (d * 3, a), "exam.breast_mask", r"mask must be binary \(0/1\), found values \[3\]"),
        ("P2", "mask", lambda d, a: (np.zeros_like(d), a), "mask", r"mask is empty"),
    ],
)
def test_content_problems(cohort, pid, name, fn, field, match):
    _rewrite(_file(cohort, pid, f"{name}.nii.gz"), fn)
    r = validate_cohort(cohort)
    hits = [p for p in r.problems if p.field == field and re.search(match, p.message)]
    assert hits and hits[0].case.startswith(f"patient {pid!r}"), r.problems
    assert r.invalid_patients == [pid]


def test_singular_affine_in_file(cohort):
    """nibabel refuses to write a singular affine: zero the stored srow_z (bytes 312-327) of a written file."""
    path = _file(cohort, "P0", "T1pre.nii.gz")
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[312:328] = np.zeros(4, "<f4").tobytes()
    raw[252:254] = np.zeros(1, "<i2").tobytes()  # qform_code 0: the sform is the affine
    path.write_bytes(gzip.compress(bytes(raw)))
    r = validate_cohort(cohort)
    assert any(p.field == "exam.sequences.T1pre" and "affine is singular" in p.message for p in r.problems), r.problems


def test_check_files_false_skips_file_checks(cohort):
    _zero_byte(_file(cohort, "P0", "T1pre.nii.gz"))
    assert validate_cohort(cohort, check_files=False).ok
    assert not validate_cohort(cohort).ok


@pytest.mark.parametrize("tol", [-1.0, "1", float("nan")])
def test_bad_tolerance(cohort, tol):
    with pytest.raises(ValueError, match=r"tol_mm must be a number >= 0 \(mm\), got"):
        validate_cohort(cohort, tol_mm=tol)


def test_tolerance_accepts_small_offsets(cohort):
    _rewrite(_file(cohort, "P1", "T1post2.nii.gz"), lambda d, a: (d, a + np.diag([0, 0, 1e-4, 0])))
    assert validate_cohort(cohort).ok
    assert not validate_cohort(cohort, tol_mm=1e-5).ok


def test_cli_exit_codes_and_skip_invalid(cohort, tmp_path, capsys):
    assert main(["validate", str(cohort)]) == 0
    assert "3 valid, 0 invalid" in capsys.readouterr().out
    _zero_byte(_file(cohort, "P1", "T1pre.nii.gz"))
    assert main(["validate", str(cohort)]) == 1
    assert "patient 'P1' field 'exam.sequences.T1pre': file is empty" in capsys.readouterr().out
    out = tmp_path / "valid" / "manifest.json"
    assert main(["validate", str(cohort), "--skip-invalid", "--out", str(out)]) == 0
    assert "2 valid patient(s) written" in capsys.readouterr().out
    r = validate_cohort(out)
    assert r.ok and r.valid_patients == ["P0", "P2"]  # paths rebased: files still found
    assert main(["validate", str(cohort), "--skip-invalid"]) == 2
    assert "--skip-invalid needs --out" in capsys.readouterr().out


def test_cli_json_and_no_valid_patient(cohort, tmp_path, capsys):
    for pid in ("P0", "P1", "P2"):
        _zero_byte(_file(cohort, pid, "T1pre.nii.gz"))
    assert main(["validate", str(cohort), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is False and rep["invalid"] == ["P0", "P1", "P2"]
    assert rep["problems"][0] == {"case": "patient 'P0'", "field": "exam.sequences.T1pre", "message": rep["problems"][0]["message"]}
    out = tmp_path / "v.json"
    assert main(["validate", str(cohort), "--skip-invalid", "--out", str(out)]) == 1
    assert "no valid patient: no manifest written" in capsys.readouterr().out and not out.exists()


def test_schema_problems_become_report(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"schema_version": "1.0", "dataset": {"name": "x"}, "patients": [{"patient_id": "A"}]}))
    r = validate_cohort(p)
    assert not r.ok and "patient 'A' field '(root)': 'exam' is a required property" in str(r)


@pytest.mark.parametrize(
    "affine, match",
    [
        (np.diag([1.0, 1.0, 0.0, 1.0]), r"affine is singular \(voxel spacing \[1.0, 1.0, 0.0\]\)"),
        (np.full((4, 4), np.nan), r"affine has non-finite values"),
    ],
)
def test_affine_sanity(affine, match):
    assert re.search(match, _affine_problem(affine))
    assert _affine_problem(np.diag([0.7, 0.7, 2.0, 1.0])) is None


@pytest.mark.parametrize("as_path", [True, False])
def test_require_valid(cohort, as_path, caplog):
    src = cohort if as_path else load_manifest(cohort)
    assert [p["patient_id"] for p in require_valid(src).patients] == ["P0", "P1", "P2"]
    _file(cohort, "P1", "T1pre.nii.gz").write_bytes(b"")
    with pytest.raises(ManifestError, match=r"manifest.json: 1 problem\(s\):\n.*patient 'P1'.*exam.sequences.T1pre.*file is empty"):
        require_valid(src)
    kept = require_valid(src, skip_invalid=True)
    assert [p["patient_id"] for p in kept.patients] == ["P0", "P2"]
    assert "1 invalid patient(s) skipped: ['P1']" in caplog.text


def test_require_valid_nothing_left(cohort):
    for pid in ("P0", "P1", "P2"):
        _file(cohort, pid, "T1pre.nii.gz").unlink()
    with pytest.raises(ManifestError, match=r"3 problem\(s\)"):
        require_valid(cohort, skip_invalid=True)
