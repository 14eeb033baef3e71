"""A corpus of broken files, generated here, through ``validate_cohort`` and ``read_nifti``:
each must give a problem naming the file (or the case and field), never a hang and never a
library traceback."""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import validate as validate_cli
from dce_monai.data.validate import read_nifti, validate_cohort

SHAPE = (5, 4, 3)
AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """Guard: a reader that hangs fails the test after 60 s instead of blocking the suite."""
    def boom(signum: int, frame: object) -> None:
        raise TimeoutError("reader hung for 60 s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _nifti(path: Path, arr: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path


def _good(path: Path, value: float = 100.0) -> Path:
    return _nifti(path, value + np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE))  # not constant: valid


# Each writer makes the broken file at the given path (name ends in .nii.gz unless it changes it).
def truncated_gzip(p: Path) -> Path:
    b = _nifti(p, np.random.default_rng(0).random(SHAPE).astype(np.float32)).read_bytes()
    p.write_bytes(b[: len(b) // 2])
    return p


def truncated_gzip_voxels(p: Path) -> Path:
    """Header intact, gzip stream cut inside the voxel data."""
    b = _nifti(p, np.random.default_rng(0).random((20, 20, 20)).astype(np.float32)).read_bytes()
    p.write_bytes(b[: int(len(b) * 0.8)])
    return p


def truncated_nii(p: Path) -> Path:
    p = p.with_name(p.name.replace(".nii.gz", ".nii"))
    b = _nifti(p, np.ones(SHAPE, np.float32)).read_bytes()
    p.write_bytes(b[:-40])
    return p


def zero_bytes(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def not_gzip(p: Path) -> Path:
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return p


def gzip_of_garbage(p: Path) -> Path:
    p.write_bytes(gzip.compress(b"this is not a NIfTI header" * 40))
    return p


def wrong_magic(p: Path) -> Path:
    raw = p.with_name("raw.nii")
    b = bytearray(_nifti(raw, np.ones(SHAPE, np.float32)).read_bytes())
    b[344:348] = b"XXXX"  # NIfTI-1 magic "n+1\0"
    p.write_bytes(gzip.compress(bytes(b)))
    raw.unlink()
    return p


def huge_dims_header(p: Path) -> Path:
    raw = p.with_name("raw.nii")
    b = bytearray(_nifti(raw, np.ones(SHAPE, np.float32)).read_bytes())
    b[40:56] = struct.pack("<8h", 3, 32767, 32767, 32767, 1, 1, 1, 1)  # dim[] claims 140 TB of voxels
    p.write_bytes(gzip.compress(bytes(b)))
    raw.unlink()
    return p


def _patched_header(p: Path, offset: int, fmt: str, value: float) -> Path:
    raw = p.with_name("raw.nii")
    b = bytearray(_nifti(raw, np.ones(SHAPE, np.float32)).read_bytes())
    b[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    p.write_bytes(gzip.compress(bytes(b)))
    raw.unlink()
    return p


def unknown_datatype(p: Path) -> Path:
    return _patched_header(p, 70, "<h", 4096)  # datatype code 4096 does not exist


def vox_offset_in_header(p: Path) -> Path:
    return _patched_header(p, 108, "<f", 100.0)  # voxels would start inside the 348-byte header


def nan_voxels(p: Path) -> Path:
    a = np.full(SHAPE, 5.0, np.float32)
    a[1, 1, 1] = np.nan
    a[2, 2, 2] = np.inf
    return _nifti(p, a)


def two_d(p: Path) -> Path:
    return _nifti(p, np.ones(SHAPE[:2], np.float32))


def four_d(p: Path) -> Path:
    return _nifti(p, np.ones((*SHAPE, 3), np.float32))


def other_grid(p: Path) -> Path:
    return _nifti(p, np.ones((SHAPE[0] + 1, *SHAPE[1:]), np.float32))


def shifted_affine(p: Path) -> Path:
    a = AFFINE.copy()
    a[0, 3] = 5.0
    return _nifti(p, np.ones(SHAPE, np.float32), a)


def singular_affine(p: Path) -> Path:
    raw = p.with_name("raw.nii")
    b = bytearray(_nifti(raw, np.ones(SHAPE, np.float32)).read_bytes())
    b[252:256] = struct.pack("<2h", 0, 2)  # qform_code 0, sform_code 2 (aligned)
    b[312:328] = struct.pack("<4f", 0.0, 0.0, 0.0, 0.0)  # srow_z = 0: the slice axis has no extent
    p.write_bytes(gzip.compress(bytes(b)))
    raw.unlink()
    return p


CASES: list[Any] = [
    # (case name, writer, message regex of validate_cohort's problem, message regex of read_nifti or "" if it reads)
    ("truncated_gzip", truncated_gzip, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    # off the patient's grid: refused from its header, its voxels are never inflated
    ("truncated_gzip_voxels", truncated_gzip_voxels, r"not on the grid of exam\.sequences\.T1pre: shape \(20, 20, 20\)", r"cannot read NIfTI file .*T1post1\.nii\.gz: EOFError"),
    ("truncated_nii", truncated_nii, r"cannot read NIfTI file .*T1post1\.nii", r"cannot read NIfTI file .*T1post1\.nii"),
    ("zero_bytes", zero_bytes, r"file is empty \(0 bytes\): .*T1post1\.nii\.gz", r"file is empty \(0 bytes\): .*T1post1\.nii\.gz"),
    ("not_gzip", not_gzip, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    ("gzip_of_garbage", gzip_of_garbage, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    ("wrong_magic", wrong_magic, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    pytest.param("huge_dims_header", huge_dims_header, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    pytest.param("unknown_datatype", unknown_datatype, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    pytest.param("vox_offset_in_header", vox_offset_in_header, r"cannot read NIfTI file .*T1post1\.nii\.gz", r"cannot read NIfTI file .*T1post1\.nii\.gz"),
    ("nan_voxels", nan_voxels, r"^2 NaN/Inf voxels$", ""),
    ("two_d", two_d, r"expected a 3D volume, got shape \(5, 4\)", ""),
    ("four_d", four_d, r"expected a 3D volume, got shape \(5, 4, 3, 3\)", ""),
    ("other_grid", other_grid, r"not on the grid of exam\.sequences\.T1pre: shape \(6, 4, 3\) vs \(5, 4, 3\)", ""),
    ("shifted_affine", shifted_affine, r"not on the grid of exam\.sequences\.T1pre: affines differ by up to 5 mm", ""),
    ("singular_affine", singular_affine, r"affine is singular \(voxel spacing \[0\.8, 0\.8, 0\.0\]\)", ""),
]


def _cohort(tmp_path: Path, writer: Callable[[Path], Path]) -> tuple[Path, Path]:
    d = tmp_path / "P1"
    d.mkdir()
    pre = _good(d / "T1pre.nii.gz", 100.0)
    bad = writer(d / "T1post1.nii.gz")
    manifest = {
        "schema_version": "1.0",
        "dataset": {"name": "corrupt corpus"},
        "patients": [{"patient_id": "P1", "exam": {"sequences": {"T1pre": str(pre.relative_to(tmp_path)), "T1post1": str(bad.relative_to(tmp_path))}}, "lesions": []}],
    }
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps(manifest))
    return m, bad


@pytest.mark.parametrize(("name", "writer", "problem", "read_error"), CASES, ids=[getattr(c, "values", c)[0] for c in CASES])
def test_corrupt_file_is_named(tmp_path: Path, name: str, writer: Callable[[Path], Path], problem: str, read_error: str) -> None:
    manifest, bad = _cohort(tmp_path, writer)
    report = validate_cohort(manifest)
    assert not report.ok and report.invalid_patients == ["P1"]
    mine = [p for p in report.problems if p.field == "exam.sequences.T1post1"]
    assert mine, [str(p) for p in report.problems]
    assert all(p.case == "patient 'P1'" for p in mine)
    assert any(re.search(problem, p.message) for p in mine), [p.message for p in mine]
    if read_error:
        with pytest.raises(ValueError, match=read_error):
            read_nifti(bad)
    else:
        data, aff = read_nifti(bad)
        assert data is not None and aff.shape == (4, 4)


def test_missing_file_and_header_only(tmp_path: Path) -> None:
    manifest, bad = _cohort(tmp_path, lambda p: _good(p))
    bad.unlink()
    report = validate_cohort(manifest)
    (p,) = report.problems
    assert p.field == "exam.sequences.T1post1" and p.message.startswith("file not found: ") and "T1post1.nii.gz" in p.message
    with pytest.raises(ValueError, match=r"file not found: .*T1post1\.nii\.gz"):
        read_nifti(bad)
    pre = tmp_path / "P1" / "T1pre.nii.gz"
    data, aff = read_nifti(pre, header_only=True)
    assert data is None
    np.testing.assert_allclose(aff, AFFINE)


def test_bad_label_map_and_masks(tmp_path: Path) -> None:
    d = tmp_path / "P1"
    d.mkdir()
    _good(d / "T1pre.nii.gz")
    lm = np.zeros(SHAPE, np.float32)
    lm[1, 1, 1] = 1.5  # not an integer label
    _nifti(d / "lm.nii.gz", lm)
    _nifti(d / "breast.nii.gz", np.zeros(SHAPE, np.uint8))  # empty
    bm = np.zeros(SHAPE, np.uint8)
    bm[0, 0, 0] = 2
    _nifti(d / "lesion.nii.gz", bm)  # not binary
    manifest = {
        "schema_version": "1.0",
        "dataset": {"name": "x"},
        "patients": [{
            "patient_id": "P1",
            "exam": {"sequences": {"T1pre": "P1/T1pre.nii.gz"}, "label_map": "P1/lm.nii.gz", "breast_mask": "P1/breast.nii.gz"},
            "lesions": [{"lesion_id": "L1", "label_value": 3}, {"lesion_id": "L2", "mask": "P1/lesion.nii.gz"}],
        }],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    msgs = {(p.field, p.message) for p in validate_cohort(tmp_path / "m.json").problems}
    assert ("exam.label_map", "label map has non-integer values") in msgs
    assert ("label_value", "value 3 not found in the label map (lesion mask is empty)") in msgs
    assert ("exam.breast_mask", "mask is empty") in msgs
    assert ("mask", "mask must be binary (0/1), found values [2]") in msgs


@pytest.mark.parametrize("blob", [b"", b"{", b"\xff\xfe\x00", b"[]", b'{"schema_version": "2.0"}'])
def test_corrupt_manifest_becomes_problems(tmp_path: Path, blob: bytes) -> None:
    m = tmp_path / "manifest.json"
    m.write_bytes(blob)
    report = validate_cohort(m)
    assert not report.ok and report.problems
    assert all(p.case == "manifest" for p in report.problems)


def test_validate_cli_on_the_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = _cohort(tmp_path, truncated_gzip)
    parser = argparse.ArgumentParser()
    validate_cli.add_cli_arguments(parser)
    assert validate_cli.cli_main(parser.parse_args([str(manifest), "--json"])) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["invalid"] == ["P1"] and "T1post1.nii.gz" in out["problems"][0]["message"]


@pytest.fixture(scope="module")
def raw_nifti(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    p = tmp_path_factory.mktemp("raw") / "a.nii"
    return _nifti(p, np.random.default_rng(0).random(SHAPE).astype(np.float32)).read_bytes()


def test_fuzzed_nifti_bytes(raw_nifti: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Random byte changes in the header or data, truncations, .nii or .nii.gz: read_nifti
    returns or raises ValueError naming the file (2,000 mutations were run while writing this);
    no other exception type escapes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    d = tmp_path_factory.mktemp("fuzz")

    @settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: Any) -> None:
        b = bytearray(raw_nifti)
        mode = data.draw(st.sampled_from(["header", "anywhere", "truncate"]))
        if mode == "truncate":
            b = b[: data.draw(st.integers(0, len(b) - 1))]
        else:
            hi = 347 if mode == "header" else len(b) - 1
            for _ in range(data.draw(st.integers(1, 3))):
                b[data.draw(st.integers(0, hi))] = data.draw(st.integers(0, 255))
        gz = data.draw(st.booleans())
        p = d / ("x.nii.gz" if gz else "x.nii")
        p.write_bytes(gzip.compress(bytes(b)) if gz else bytes(b))
        try:
            read_nifti(p)
        except ValueError as e:
            assert str(p) in str(e) or p.name in str(e)

    run()
