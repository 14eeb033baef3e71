from __future__ import annotations

import gzip
import re
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data.validate import _affine_problem, read_nifti, validate_cohort


@pytest.fixture()
def cohort(tiny_cohort, tmp_path):
    """A private copy of the tiny cohort that a test may damage."""
    dst = tmp_path / "c"
    shutil.copytree(tiny_cohort.parent, dst)
    return dst / "manifest.json"


def _patient(manifest, i=0):
    return json.loads(manifest.read_text())["patients"][i]


def _path(manifest, rel):
    return manifest.parent / rel


def test_clean_cohort_passes(tiny_cohort):
    r = validate_cohort(tiny_cohort)
    assert r.ok and len(r.valid_patients) == 4


def _zero_byte(p):
    p.write_bytes(b"")


def _truncate(p):
    p.write_bytes(p.read_bytes()[:300])


def _wrong_header(p):
    p.write_bytes(gzip.compress(b"this is not a nifti header" * 20))


@pytest.mark.parametrize(
    "damage, match",
    [(_zero_byte, r"file is empty \(0 bytes\)"), (_truncate, r"cannot read NIfTI file"), (_wrong_header, r"cannot read NIfTI file")],
)
def test_corrupt_files_named(cohort, damage, match):
    rel = _patient(cohort)["exam"]["sequences"]["T1post2"]
    damage(_path(cohort, rel))
    r = validate_cohort(cohort)
    assert not r.ok and r.invalid_patients == ["PH0000"]
    (prob,) = r.problems
    assert prob.field == "exam.sequences.T1post2" and rel.split("/")[-1] in prob.message
    with pytest.raises(ValueError, match=match):
        read_nifti(_path(cohort, rel))


def _rewrite(p, fn):
    img = nib.load(str(p))
    data, aff = fn(np.asanyarray(img.dataobj), img.affine.copy())
    nib.save(nib.Nifti1Image(data, aff), str(p))


@pytest.mark.parametrize(
    "key, fn, match",
    [
        ("T1post1", lambda d, a: (d[:-1], a), r"not on the grid of exam.sequences.T2: shape"),
        ("T1post1", lambda d, a: (d, a + np.diag([0, 0, 0.5, 0])), r"affines differ by up to 0.5 mm"),
        ("T1post1", lambda d, a: (np.where(d > 3000, np.nan, d.astype(np.float32)), a), r"NaN/Inf voxels"),
        ("label_map", lambda d, a: (np.zeros_like(d), a), r"value 1 not found in the label map"),
        ("breast_mask", lambda d, a: (d * 3, a), r"mask must be binary \(0/1\), found values \[3\]"),
    ],
)
def test_content_problems(cohort, key, fn, match):
    exam = _patient(cohort)["exam"]
    rel = exam["sequences"][key] if key in exam["sequences"] else exam[key]
    _rewrite(_path(cohort, rel), fn)
    r = validate_cohort(cohort)
    assert any(re.search(match, str(p)) for p in r.problems), r.problems


def test_cli_exit_codes_and_skip_invalid(cohort, tmp_path, capsys):
    assert main(["validate", str(cohort)]) == 0
    _zero_byte(_path(cohort, _patient(cohort, 1)["exam"]["sequences"]["T1pre"]))
    assert main(["validate", str(cohort)]) == 1
    assert "patient 'PH0001' field 'exam.sequences.T1pre': file is empty" in capsys.readouterr().out
    out = tmp_path / "valid" / "manifest.json"
    assert main(["validate", str(cohort), "--skip-invalid", "--out", str(out)]) == 0
    assert "3 valid patient(s) written" in capsys.readouterr().out
    assert validate_cohort(out).ok and len(validate_cohort(out).valid_patients) == 3
    assert main(["validate", str(cohort), "--skip-invalid"]) == 2


def test_schema_problems_become_report(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"schema_version": "1.0", "dataset": {"name": "x"}, "patients": [{"patient_id": "A"}]}))
    r = validate_cohort(p)
    assert not r.ok and "'exam' is a required property" in str(r)


@pytest.mark.parametrize(
    "affine, match",
    [
        (np.diag([1.0, 1.0, 0.0, 1.0]), r"affine is singular"),
        (np.full((4, 4), np.nan), r"affine has non-finite values"),
    ],
)
def test_affine_sanity(affine, match):
    assert re.search(match, _affine_problem(affine))
    assert _affine_problem(np.diag([0.7, 0.7, 2.0, 1.0])) is None
