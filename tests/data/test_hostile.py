"""Hostile and careless input to the data layer: gzip bombs and other oversized NIfTI headers,
symlink loops, malformed manifest JSON (deep nesting, huge integers, duplicate keys,
NaN/Infinity), one file in two roles, constant phases. Each must be refused with a problem
naming the case and the field (or the file), in bounded time and memory."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dce_monai.cli import main
from dce_monai.data import manifest as manifest_mod
from dce_monai.data.manifest import Manifest, ManifestError, check_manifest, load_manifest
from dce_monai.data.validate import DEFAULT_MAX_BYTES, read_nifti, require_valid, validate_cohort

SHAPE = (6, 5, 4)
AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])
MiB = 2**20


def _save(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    return path


def _ramp(offset: float = 0.0) -> np.ndarray:
    return (offset + np.arange(np.prod(SHAPE), dtype=np.float32)).reshape(SHAPE)


def gzip_bomb(path: Path, shape: tuple[int, ...], dtype: type = np.float32) -> Path:
    """A valid ``.nii.gz`` of zeros whose header declares ``shape``: ~1 kB per MiB declared.

    The deflate stream is assembled from one compressed 1 MiB block of zeros repeated (each
    block ends on a full flush, so copies are independent), so making a 512 MiB bomb takes
    milliseconds and never holds 512 MiB in memory.
    """
    img = nib.Nifti1Image(np.zeros((1, 1, 1), dtype), AFFINE)
    hdr = img.header
    hdr.set_data_shape(shape)
    hdr.set_data_offset(352)
    head = hdr.binaryblock + b"\0" * 4
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    assert n_bytes % MiB == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    chunk = bytes(MiB)
    cz = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = cz.compress(chunk) + cz.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(n_bytes // MiB):
        crc = zlib.crc32(chunk, crc)
    total = len(head) + n_bytes
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip member header
        f.write(first)
        for _ in range(n_bytes // MiB):
            f.write(block)
        f.write(last)
        f.write(struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF))
    return path


@pytest.fixture()
def cohort(tmp_path: Path) -> Path:
    """One patient, three phases on one grid, a label map."""
    seqs = {}
    for k, name in enumerate(("T1pre", "T1post1", "T1post2")):
        _save(tmp_path / "P1" / f"{name}.nii.gz", _ramp(100.0 * k))
        seqs[name] = f"P1/{name}.nii.gz"
    lm = np.zeros(SHAPE, np.uint8)
    lm[1:3, 1:3, 1:3] = 1
    _save(tmp_path / "P1" / "lm.nii.gz", lm)
    data = {
        "schema_version": "1.0",
        "dataset": {"name": "hostile"},
        "patients": [{"patient_id": "P1", "exam": {"sequences": seqs, "label_map": "P1/lm.nii.gz"}, "lesions": [{"lesion_id": "L1", "label_value": 1}]}],
    }
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps(data))
    return m


def _problems(report, field: str) -> list[str]:
    return [p.message for p in report.problems if p.field == field]


# ------------------------------------------------------------------------------ gzip bombs


def test_gzip_bomb_is_a_valid_file_that_really_inflates(tmp_path: Path) -> None:
    """The bomb used below is genuine: nibabel reads its header and streams its zeros."""
    p = gzip_bomb(tmp_path / "b.nii.gz", (64, 64, 64))  # 1 MiB declared
    assert p.stat().st_size < 4096
    img = nib.load(str(p))
    assert img.shape == (64, 64, 64) and not np.asanyarray(img.dataobj).any()


def test_gzip_bomb_off_the_grid_refused_from_its_header(cohort: Path) -> None:
    """512 MiB declared in ~0.5 MB, under the size limit but off the patient's grid: the
    problem comes from the header, the voxels are never inflated (memory and time bounded)."""
    bomb = gzip_bomb(cohort.parent / "P1" / "T1post1.nii.gz", (512, 512, 512))
    assert bomb.stat().st_size < MiB and 512 * MiB < DEFAULT_MAX_BYTES
    tracemalloc.start()
    t0 = time.perf_counter()
    r = validate_cohort(cohort)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert _problems(r, "exam.sequences.T1post1") == ["not on the grid of exam.sequences.T1pre: shape (512, 512, 512) vs (6, 5, 4)"]
    assert r.invalid_patients == ["P1"]
    assert peak < 16 * MiB, peak
    assert seconds < 10, seconds


@pytest.mark.parametrize("role", ["T1pre", "T1post1"])
def test_gzip_bomb_over_the_size_limit_refused(cohort: Path, role: str) -> None:
    """Over ``max_bytes``: refused before reading, whether it is the first sequence or not."""
    gzip_bomb(cohort.parent / "P1" / f"{role}.nii.gz", (256, 256, 256))  # 64 MiB declared
    tracemalloc.start()
    r = validate_cohort(cohort, max_bytes=8 * MiB)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    (msg,) = _problems(r, f"exam.sequences.{role}")
    assert "declares (256, 256, 256) voxels of float32 (67109216 bytes to read), over the limit of 8388608 bytes" in msg
    assert f"{role}.nii.gz" in msg and peak < 16 * MiB
    with pytest.raises(ValueError, match=rf"cannot read NIfTI file .*{role}\.nii\.gz: ValueError: header declares .* over the limit of 8388608 bytes; refused before reading the voxels"):
        read_nifti(cohort.parent / "P1" / f"{role}.nii.gz", max_bytes=8 * MiB)


def test_first_sequence_off_the_majority_grid_is_the_one_reported(cohort: Path) -> None:
    """The patient's grid is the one most sequences share: a bad first file does not make the
    good ones look wrong (and the good ones are read, not the bad one)."""
    _save(cohort.parent / "P1" / "T1pre.nii.gz", np.ones((3, 3, 3), np.float32))
    r = validate_cohort(cohort)
    assert _problems(r, "exam.sequences.T1pre") == ["not on the grid of exam.sequences.T1post1: shape (3, 3, 3) vs (6, 5, 4)"]
    assert not _problems(r, "exam.sequences.T1post2") and not _problems(r, "exam.label_map")


def _with_extension(path: Path, esize: int, vox_offset: int = 368) -> Path:
    """A NIfTI file with the extension flag set and one extension header of ``esize`` bytes."""
    img = nib.Nifti1Image(np.ones(SHAPE, np.float32), AFFINE)
    hdr = img.header
    hdr.set_data_offset(vox_offset)
    block = hdr.binaryblock + b"\x01\0\0\0" + struct.pack("<ii", esize, 0) + b"\0" * (vox_offset - 360)
    path.write_bytes(gzip.compress(block + np.ones(SHAPE, np.float32).tobytes() + bytes(4 * MiB)))
    return path


@pytest.mark.parametrize("esize", [0, 8, 2**31 - 16])
def test_header_extension_outside_the_header_refused(tmp_path: Path, esize: int) -> None:
    """nibabel reads an extension of whatever size it declares (0 means: the whole stream);
    the raw header check refuses it first."""
    p = _with_extension(tmp_path / "ext.nii.gz", esize)
    with pytest.raises(ValueError, match=rf"cannot read NIfTI file .*ext\.nii\.gz: ValueError: header extension at byte 352 declares {esize} bytes, outside the header \(voxels start at byte 368\); refused"):
        read_nifti(p)


def test_extension_flag_with_voxels_inside_the_header_refused(tmp_path: Path) -> None:
    """vox_offset 0 with the extension flag set: nibabel would read extensions to the end of
    the stream (a bomb of any size)."""
    p = _with_extension(tmp_path / "ext0.nii.gz", 0, vox_offset=0)
    with pytest.raises(ValueError, match=r"ext0\.nii\.gz: ValueError: header extension flag set but the voxels start at byte 0, inside the header; refused"):
        read_nifti(p)


def test_valid_header_extension_is_read(tmp_path: Path) -> None:
    p = _with_extension(tmp_path / "ok.nii.gz", 16)
    data, _ = read_nifti(p)
    assert data.shape == SHAPE


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_max_bytes_must_be_a_positive_integer(cohort: Path, bad: object) -> None:
    with pytest.raises(ValueError, match=r"max_bytes must be a positive integer \(bytes\), got"):
        validate_cohort(cohort, max_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_bytes must be a positive integer \(bytes\), got"):
        read_nifti(cohort.parent / "P1" / "T1pre.nii.gz", max_bytes=bad)  # type: ignore[arg-type]


def test_validate_cli_max_file_mb(cohort: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gzip_bomb(cohort.parent / "P1" / "T1post2.nii.gz", (256, 256, 128))  # 32 MiB declared
    assert main(["validate", str(cohort), "--max-file-mb", "4"]) == 1
    out = capsys.readouterr().out
    assert "patient 'P1' field 'exam.sequences.T1post2'" in out and "over the limit of 4194304 bytes" in out
    assert main(["validate", str(cohort), "--max-file-mb", "0"]) == 2
    assert "--max-file-mb must be > 0, got 0.0" in capsys.readouterr().out


# ------------------------------------------------------------------------------ files: loops, devices, constant phases


def test_symlink_loop_in_an_image_path(cohort: Path) -> None:
    d = cohort.parent / "P1"
    (d / "T1post1.nii.gz").unlink()
    os.symlink("loop_b", d / "loop_a")
    os.symlink("loop_a", d / "loop_b")
    os.symlink("loop_a", d / "T1post1.nii.gz")
    r = validate_cohort(cohort)
    (msg,) = _problems(r, "exam.sequences.T1post1")
    assert msg.startswith("symlink loop: ") and "T1post1.nii.gz never reaches a file" in msg
    with pytest.raises(ValueError, match=r"symlink loop: .*T1post1\.nii\.gz never reaches a file"):
        read_nifti(d / "T1post1.nii.gz")


def test_folder_or_device_instead_of_a_file(cohort: Path) -> None:
    d = cohort.parent / "P1"
    (d / "T1post1.nii.gz").unlink()
    (d / "T1post1.nii.gz").mkdir()
    (d / "T1post2.nii.gz").unlink()
    os.symlink("/dev/zero", d / "T1post2.nii.gz")
    r = validate_cohort(cohort)
    for name in ("T1post1", "T1post2"):
        (msg,) = _problems(r, f"exam.sequences.{name}")
        assert re.match(r"not a regular file \(a folder, device or pipe\): .*(T1post1\.nii\.gz|/dev/zero)$", msg), msg


@pytest.mark.parametrize("value", [0, 7])
def test_constant_phase_is_a_problem(cohort: Path, value: int) -> None:
    _save(cohort.parent / "P1" / "T1post1.nii.gz", np.full(SHAPE, value, np.int16))
    r = validate_cohort(cohort)
    assert _problems(r, "exam.sequences.T1post1") == [f"every voxel is {value}: a constant image (a phase never acquired, or a blank export)"]


# ------------------------------------------------------------------------------ malformed manifests


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.json"
    p.write_text(text)
    return p


def _valid_text(**exam_extra: str) -> str:
    extra = "".join(f', "{k}": {v}' for k, v in exam_extra.items())
    return (
        '{"schema_version": "1.0", "dataset": {"name": "x"}, "patients": [{"patient_id": "A", '
        f'"exam": {{"sequences": {{"T1pre": "A/pre.nii.gz", "T1post1": "A/p1.nii.gz"}}{extra}}}, "lesions": []}}]}}'
    )


def test_valid_text_loads(tmp_path: Path) -> None:
    assert load_manifest(_write(tmp_path, _valid_text(spacing_mm="[0.8, 0.8, 2.0]"))).patients[0]["patient_id"] == "A"


@pytest.mark.parametrize(
    "extra, field, match",
    [
        ({"spacing_mm": "[0.8, NaN, 2.0]"}, "exam.spacing_mm.1", r"NaN is not a number \(NaN and Infinity are not valid JSON\)"),
        ({"field_strength_t": "Infinity"}, "exam.field_strength_t", r"Infinity is not a number"),
        ({"field_strength_t": "-Infinity"}, "exam.field_strength_t", r"-Infinity is not a number"),
        ({"field_strength_t": "1e400"}, "exam.field_strength_t", r"number 1e400 overflows to inf; a finite number is needed"),
        ({"field_strength_t": "1" * 5000}, "exam.field_strength_t", r"integer with 5000 digits; numbers in a manifest have at most 30"),
    ],
)
def test_refused_numbers_name_case_and_field(tmp_path: Path, extra: dict[str, str], field: str, match: str) -> None:
    p = _write(tmp_path, _valid_text(**extra))
    with pytest.raises(ManifestError, match=rf"m\.json: 1 problem\(s\):\n  - patient 'A' field '{re.escape(field)}': {match}") as e:
        load_manifest(p)
    assert e.value.__cause__ is None
    r = validate_cohort(p)
    assert [(q.case, q.field) for q in r.problems] == [("patient 'A'", field)]


def test_duplicate_keys_refused(tmp_path: Path) -> None:
    """A repeated key would silently let patient A read another patient's file."""
    text = _valid_text().replace('"T1pre": "A/pre.nii.gz"', '"T1pre": "A/pre.nii.gz", "T1pre": "B/pre.nii.gz"')
    with pytest.raises(ManifestError, match=r"patient 'A' field 'exam.sequences': key 'T1pre' given more than once in one object \(JSON would keep only the last\)"):
        load_manifest(_write(tmp_path, text))
    top = '{"schema_version": "1.0", "schema_version": "1.0", ' + _valid_text()[len('{"schema_version": "1.0", '):]
    with pytest.raises(ManifestError, match=r"manifest field '\(root\)': key 'schema_version' given more than once"):
        load_manifest(_write(tmp_path, top))


def test_deep_nesting_recursion_error_becomes_a_problem(tmp_path: Path) -> None:
    p = _write(tmp_path, "[" * 200_000 + "]" * 200_000)
    with pytest.raises(ManifestError, match=r"manifest field '\(file\)': JSON nested too deeply to parse \(RecursionError\)"):
        load_manifest(p)
    r = validate_cohort(p)
    assert not r.ok and r.problems[0].case == "manifest"


def test_nesting_deeper_than_the_limit_named(tmp_path: Path) -> None:
    """Deep enough for the schema validator to recurse without end, shallow enough to parse."""
    deep = "[" * 300 + "]" * 300
    text = _valid_text().replace('"name": "x"', f'"name": "x", "generator": {{"k": {deep}}}')
    with pytest.raises(ManifestError, match=r"manifest field 'dataset\.generator\.k(\.0)+': nested more than 64 levels deep"):
        load_manifest(_write(tmp_path, text))


def test_symlink_loop_as_manifest(tmp_path: Path) -> None:
    os.symlink("b.json", tmp_path / "a.json")
    os.symlink("a.json", tmp_path / "b.json")
    with pytest.raises(ManifestError, match=r"manifest field '\(file\)': symlink loop: .*a\.json never reaches a file"):
        load_manifest(tmp_path / "a.json")
    r = validate_cohort(tmp_path / "a.json")
    assert "symlink loop" in r.problems[0].message


def test_manifest_not_a_regular_file_or_too_big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest not found: .* is not a regular file"):
        load_manifest(tmp_path)
    p = _write(tmp_path, _valid_text())
    monkeypatch.setattr(manifest_mod, "_MAX_MANIFEST_BYTES", 100)
    with pytest.raises(ManifestError, match=r"file is \d+ bytes, over the 100 byte limit for a manifest"):
        load_manifest(p)


def _data() -> dict:
    return json.loads(_valid_text())


def test_same_file_for_two_sequences() -> None:
    d = _data()
    d["patients"][0]["exam"]["sequences"]["T1post1"] = "A/./pre.nii.gz"
    with pytest.raises(ManifestError, match=r"patient 'A' field 'exam.sequences.T1post1': same file as exam.sequences.T1pre \('A/./pre.nii.gz'\); each sequence needs its own file"):
        check_manifest(d)
    d = _data()
    d["patients"][0]["exam"]["label_map"] = "A/p1.nii.gz"
    with pytest.raises(ManifestError, match=r"patient 'A' field 'exam.label_map': same file as exam.sequences.T1post1"):
        check_manifest(d)


def test_same_file_for_two_patients() -> None:
    d = _data()
    b = json.loads(json.dumps(d["patients"][0]))
    b["patient_id"] = "B"
    b["exam"]["sequences"]["T1pre"] = "B/pre.nii.gz"
    d["patients"].append(b)
    with pytest.raises(ManifestError, match=r"patient 'B' field 'exam.sequences.T1post1': file 'A/p1.nii.gz' is also used by patient 'A' \(exam.sequences.T1post1\); each patient needs its own files"):
        check_manifest(d)


def test_label_map_shared_with_a_lesion_mask_is_allowed() -> None:
    """A single-lesion export may name one segmentation both as label map and lesion mask."""
    d = _data()
    d["patients"][0]["exam"]["label_map"] = "A/seg.nii.gz"
    d["patients"][0]["lesions"] = [{"lesion_id": "A1", "label_value": 1, "mask": "A/seg.nii.gz"}]
    check_manifest(d)


@pytest.mark.parametrize(
    "where, value, field",
    [
        (("exam", "spacing_mm"), [0.8, float("nan"), 2.0], "exam.spacing_mm.1"),
        (("exam", "field_strength_t"), float("inf"), "exam.field_strength_t"),
        (("exam", "acquisition_times_s"), {"T1pre": 0.0, "T1post1": float("nan")}, "exam.acquisition_times_s.T1post1"),
    ],
)
def test_non_finite_numbers_from_code_refused(where: tuple[str, str], value: object, field: str) -> None:
    """Data built in Python (importers) never passes through the JSON parser: same rule."""
    d = _data()
    d["patients"][0][where[0]][where[1]] = value
    with pytest.raises(ManifestError, match=rf"patient 'A' field '{re.escape(field)}': value (nan|inf) is not a finite number"):
        Manifest.from_dict(d)


# ------------------------------------------------------------------------------ what the user sees


def test_validate_prints_the_manifest_problem_not_zero_patients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _write(tmp_path, _valid_text(field_strength_t="NaN"))
    assert main(["validate", str(p)]) == 1
    out = capsys.readouterr().out
    assert "0 valid, 0 invalid" not in out
    assert out.startswith(f"{p}: the manifest itself is invalid (1 problem(s)); no patient was checked")
    assert "patient 'A' field 'exam.field_strength_t': NaN is not a number" in out
    assert main(["validate", str(p), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["manifest_invalid"] is True and rep["problems"][0]["field"] == "exam.field_strength_t"


def test_other_commands_stop_with_exit_2_and_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _valid_text().replace('"T1pre": "A/pre.nii.gz"', '"T1pre": "A/pre.nii.gz", "T1pre": "B/pre.nii.gz"')
    p = _write(tmp_path, text)
    assert main(["folds", str(p), "--out", str(tmp_path / "folds.json")]) == 2
    err = capsys.readouterr().err
    assert "dce-monai folds: error:" in err and "key 'T1pre' given more than once" in err and "Traceback" not in err
    with pytest.raises(ManifestError, match=r"key 'T1pre' given more than once"):
        require_valid(p)

