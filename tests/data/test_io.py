from __future__ import annotations

import ast
import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import dce_monai
from dce_monai.data.io import write_nifti

AFFINE = np.array([[-0.7, 0, 0, 120.0], [0, -0.7, 0, 95.5], [0, 0, 2.0, -40.0], [0, 0, 0, 1]])


@pytest.mark.parametrize(
    "name, array",
    [
        ("a.nii.gz", np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3)),
        ("b.nii", np.linspace(-1, 1, 4 * 5 * 3 * 2, dtype=np.float32).reshape(4, 5, 3, 2)),
        ("c.nii.gz", (np.arange(60).reshape(3, 4, 5) % 2).astype(np.uint8)),
    ],
)
def test_round_trip_keeps_data_dtype_affine_and_header(tmp_path: Path, name: str, array: np.ndarray) -> None:
    out = write_nifti(array, AFFINE, tmp_path / name)
    assert out == tmp_path / name
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj), array)
    assert img.get_data_dtype() == array.dtype
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-5)
    np.testing.assert_allclose(img.header.get_qform(), AFFINE, atol=1e-5)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    assert img.header.get_xyzt_units() == ("mm", "sec")
    with open(out, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == name.endswith(".gz")  # gzip magic only for .nii.gz
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left


def test_overwrite_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    write_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), path)
    write_nifti(np.full((3, 2, 2), 7, np.uint8), np.eye(4), path)
    assert np.asarray(nib.load(path).dataobj).tolist() == np.full((3, 2, 2), 7).tolist()


def _failing_save(calls: list[str]):
    def save(img, filename):  # writes part of a file, then fails like a full disk would
        calls.append(filename)
        with gzip.open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("No space left on device")

    return save


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(nib, "save", _failing_save(calls))
    with pytest.raises(OSError, match="No space left on device"):
        write_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), tmp_path / "x.nii.gz")
    assert len(calls) == 1 and Path(calls[0]).parent == tmp_path  # the temporary was in the same folder
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.nii.gz"
    write_nifti(np.full((2, 2, 2), 3, np.uint8), np.eye(4), path)
    monkeypatch.setattr(nib, "save", _failing_save([]))
    with pytest.raises(OSError, match="No space left"):
        write_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]
    assert np.asarray(nib.load(path).dataobj).tolist() == np.full((2, 2, 2), 3).tolist()


def test_temporaries_are_unique_per_call_and_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    real_save = nib.save
    monkeypatch.setattr(nib, "save", lambda img, filename: (names.append(filename), real_save(img, filename)))
    for _ in range(2):
        write_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), tmp_path / "x.nii.gz")
    assert len(set(names)) == 2
    for n in names:
        assert Path(n).parent == tmp_path and Path(n).name.startswith(".x.") and n.endswith(".tmp.nii.gz")


@pytest.mark.parametrize("name", ["x.nii.gz.bak", "x.img", ".nii.gz", "x"])
def test_bad_file_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"must be a file name ending in \.nii\.gz or \.nii"):
        write_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("affine", [np.eye(3), np.full((4, 4), np.nan)])
def test_bad_affine_is_refused(tmp_path: Path, affine: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"x\.nii\.gz' must be a finite 4x4 matrix, got shape"):
        write_nifti(np.zeros((2, 2, 2), np.uint8), affine, tmp_path / "x.nii.gz")


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"folder '.*nowhere' for 'x\.nii\.gz' does not exist"):
        write_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), tmp_path / "nowhere" / "x.nii.gz")


def test_no_other_module_saves_nifti_itself() -> None:
    """Every NIfTI file of the toolkit goes through write_nifti (one header convention, atomic)."""
    root = Path(dce_monai.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "data" / "io.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                f = node.func
                if (f.attr == "save" and isinstance(f.value, ast.Name) and f.value.id in ("nib", "nibabel")) or f.attr == "to_filename":
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
