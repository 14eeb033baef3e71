"""Tests of dce_monai.data.dicom.ingest (step 6 and the whole chain): DICOM series written with
pydicom from volumes of known geometry (``conftest.py``), ingested back to NIfTI + manifest;
phases on different grids, the phantom round trip, the ``dce-monai ingest`` command, fuzzed files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import generate_uid

from dce_monai.cli.ingest import add_cli_arguments, cli_main
from dce_monai.data.dicom import DicomIngestError, affine_lps_to_ras, ingest_dicom, pseudonymize
from dce_monai.data.manifest import load_manifest
from dce_monai.data.validate import validate_cohort
from tests.data.dicom.conftest import AXIAL, OBLIQUE, PHI, Geometry, _rotation, dce_exam, phase_volume, write_slices


def _voxel_to_world(aff: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return (aff[:3, :3] @ ijk.T).T + aff[:3, 3]


@pytest.mark.parametrize("geom", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
@pytest.mark.parametrize("n_post", [1, 4])
def test_philips_trigger_time_order_affine_and_manifest(tmp_path: Path, geom: Geometry, n_post: int) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    times = dce_exam(src, geom, n_post)
    man = ingest_dicom(src, tmp_path / "out", id_prefix="SITE")
    m = load_manifest(man)
    (p,) = m.patients
    assert p["patient_id"] == "SITE0001"
    names = ["T1pre"] + [f"T1post{k}" for k in range(1, n_post + 1)]
    assert sorted(p["exam"]["sequences"]) == sorted(names + ["T2"])
    assert p["exam"]["acquisition_times_s"] == pytest.approx(times)
    assert p["exam"]["spacing_mm"] == pytest.approx(list(geom.spacing))
    expected = affine_lps_to_ras(geom.affine_lps())
    rng = np.random.default_rng(0)
    ijk = rng.uniform(0, 5, size=(20, 3))
    for ph, name in enumerate(names):
        img = nib.load(m.resolve(p["exam"]["sequences"][name]))
        np.testing.assert_allclose(_voxel_to_world(img.affine, ijk), _voxel_to_world(expected, ijk), atol=1e-4)
        np.testing.assert_array_equal(np.asarray(img.dataobj), phase_volume(geom, ph))
    t2 = nib.load(m.resolve(p["exam"]["sequences"]["T2"]))
    assert t2.shape == geom.shape  # resampled to the T1pre grid
    np.testing.assert_allclose(t2.affine, expected, atol=1e-4)
    assert validate_cohort(man).ok


def _two_phases_mixed(tmp_path: Path) -> Path:
    src = tmp_path / "dicom"
    src.mkdir()
    study = generate_uid()
    g_small = Geometry(shape=(4, 4, 4), spacing=(1.5, 1.5, 2.0))
    g_big = Geometry(shape=(6, 6, 4), spacing=(1.0, 1.0, 2.0))
    write_slices(src, g_small, np.full(g_small.shape, 500, np.uint16), study_uid=study, series_uid=generate_uid(), series_number=1, tags={"TriggerTime": 0.0})
    write_slices(src, g_big, np.full(g_big.shape, 800, np.uint16), study_uid=study, series_uid=generate_uid(), series_number=2, tags={"TriggerTime": 90000.0})
    return src


def test_mixed_matrix_sizes_error(tmp_path: Path) -> None:
    src = _two_phases_mixed(tmp_path)
    with pytest.raises(DicomIngestError, match=r"patient 'DCE0001': DCE phases on different grids: series 1 't1_fl3d_dyn' has shape \(4, 4, 4\) but series 2 't1_fl3d_dyn' has \(6, 6, 4\).*--resample"):
        ingest_dicom(src, tmp_path / "out")


def test_mixed_matrix_sizes_resampled(tmp_path: Path) -> None:
    src = _two_phases_mixed(tmp_path)
    m = load_manifest(ingest_dicom(src, tmp_path / "out", resample=True))
    (p,) = m.patients
    pre = nib.load(m.resolve(p["exam"]["sequences"]["T1pre"]))
    post = nib.load(m.resolve(p["exam"]["sequences"]["T1post1"]))
    assert post.shape == pre.shape == (4, 4, 4)
    np.testing.assert_allclose(post.affine, pre.affine)
    # the big grid covers the small one's first 3 columns/rows: a constant stays constant there
    np.testing.assert_allclose(np.asarray(post.dataobj)[:3, :3, :], 800.0, rtol=1e-5)


def _nifti_to_dicom(img: Any, folder: Path, *, study_uid: str, series_number: int, desc: str, te: float, tr: float,
                    tags: dict[str, Any], affine_ras: np.ndarray) -> None:
    """Write a NIfTI volume as a DICOM series with the geometry of ``affine_ras`` (RAS → LPS)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    dc, dr = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    geom = Geometry(shape=img.shape, spacing=(dc, dr, float(np.linalg.norm(lps[:3, 2]))),
                    rot=np.column_stack([lps[:3, 0] / dc, lps[:3, 1] / dr, lps[:3, 2] / np.linalg.norm(lps[:3, 2])]),
                    origin=tuple(lps[:3, 3]))
    np.testing.assert_allclose(geom.normal * geom.spacing[2], lps[:3, 2], atol=1e-9)  # right-handed slice order
    write_slices(folder, geom, np.asarray(img.dataobj).astype(np.uint16), study_uid=study_uid, series_uid=generate_uid(),
                 series_number=series_number, desc=desc, te=te, tr=tr, tags=tags)


@pytest.mark.parametrize("oblique", [False, True])
def test_phantom_round_trip(tmp_path: Path, oblique: bool) -> None:
    """Phantom NIfTI → DICOM series (one per sequence, Philips TriggerTime order) → ingest:
    same voxels, same world coordinates, same sequences and acquisition times."""
    from dce_monai.data.phantom import generate_cohort

    src_man = load_manifest(generate_cohort(tmp_path / "phantom", n_patients=1, seed=0, size="tiny", progress=False))
    (p,) = src_man.patients
    rot = np.eye(4)
    if oblique:
        rot[:3, :3] = _rotation(0.25, 0.1, -0.35)
    dcm = tmp_path / "dicom"
    dcm.mkdir()
    study = generate_uid()
    affines = {}
    times = p["exam"]["acquisition_times_s"]
    for n, (name, rel) in enumerate(sorted(p["exam"]["sequences"].items())):
        img = nib.load(src_man.resolve(rel))
        affines[name] = rot @ img.affine
        if name == "T2":
            kw: dict[str, Any] = {"desc": "T2W_TSE", "te": 80.0, "tr": 3000.0, "tags": {}}
        else:
            kw = {"desc": "dyn_eTHRIVE", "te": 2.0, "tr": 4.4, "tags": {"TriggerTime": 1000.0 * times[name], "AcquisitionTime": "120000"}}
        _nifti_to_dicom(img, dcm, study_uid=study, series_number=20 - n, affine_ras=affines[name], **kw)
    m = load_manifest(ingest_dicom(dcm, tmp_path / "out"))
    (q,) = m.patients
    assert sorted(q["exam"]["sequences"]) == sorted(p["exam"]["sequences"])
    assert q["exam"]["acquisition_times_s"] == pytest.approx(times)
    ijk = np.random.default_rng(1).uniform(0, 15, size=(30, 3))
    for name, rel in q["exam"]["sequences"].items():
        out = nib.load(m.resolve(rel))
        orig = nib.load(src_man.resolve(p["exam"]["sequences"][name]))
        np.testing.assert_array_equal(np.asarray(out.dataobj), np.asarray(orig.dataobj))
        np.testing.assert_allclose(_voxel_to_world(out.affine, ijk), _voxel_to_world(affines[name], ijk), atol=1e-4)
    assert validate_cohort(m).ok


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 2)
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    monkeypatch.setenv("DCE_MONAI_SALT", "pepper")
    args = parser.parse_args([str(src), str(tmp_path / "out"), "--mapping", str(tmp_path / "m.csv")])
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    pid = pseudonymize([PHI["PatientID"]], salt="pepper")[PHI["PatientID"]]
    assert f"{pid}: T1post1, T1post2, T1pre, T2" in out and "manifest:" in out
    assert (tmp_path / "m.csv").is_file()


def test_through_the_dce_monai_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``dce-monai ingest`` through the console entry point."""
    from dce_monai import cli

    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    assert cli.main(["ingest", str(src), str(tmp_path / "out"), "--id-prefix", "Z"]) == 0
    assert "Z0001: T1post1, T1pre" in capsys.readouterr().out
    g = Geometry(shape=(4, 4, 6))
    bad = tmp_path / "bad"
    bad.mkdir()
    write_slices(bad, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=4, skip=(2,))
    assert cli.main(["ingest", str(bad), str(tmp_path / "out2")]) == 2
    assert "dce-monai ingest: error: series 4 't1_fl3d_dyn': uneven slice positions" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_phase_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz_src")
    g = Geometry(shape=(4, 3, 3))
    study = generate_uid()
    for ph in range(2):
        write_slices(base, g, phase_volume(g, ph), study_uid=study, series_uid=generate_uid(), series_number=ph + 1, tags={"TriggerTime": 60000.0 * ph})
    return base


def test_fuzzed_bytes_give_only_named_errors(two_phase_series: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Byte flips, insertions, digit changes and truncations of one file: the ingest either
    succeeds or raises DicomIngestError naming a file, series or patient — nothing else.
    (1,500 such mutations were run while writing this; 30 run here.)"""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    files = sorted(p.name for p in two_phase_series.iterdir())

    @settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: Any) -> None:
        d = tmp_path_factory.mktemp("fuzz")
        src = d / "src"
        src.mkdir()
        for n in files:
            (src / n).write_bytes((two_phase_series / n).read_bytes())
        f = src / data.draw(st.sampled_from(files))
        b = bytearray(f.read_bytes())
        mode = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        if mode == "flip":
            for _ in range(data.draw(st.integers(1, 4))):
                b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        elif mode == "truncate":
            b = b[: data.draw(st.integers(0, len(b) - 1))]
        else:
            i = data.draw(st.integers(0, len(b)))
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        f.write_bytes(bytes(b))
        try:
            ingest_dicom(src, d / "out")
        except DicomIngestError as e:
            assert str(e)

    run()
