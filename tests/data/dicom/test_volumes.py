"""Tests of dce_monai.data.dicom.volumes (steps 2-3 of the DICOM ingest): grouping slices into
series and phases, geometry checks and the LPS/RAS affine, localizers and excluded series, reading
voxels (pydicom's own sample files too). Series are written with pydicom (``conftest.py``)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from dce_monai.data.dicom import (
    DicomIngestError,
    affine_lps_to_ras,
    build_volumes,
    classify_volume,
    ingest_dicom,
    localizer_reason,
    order_phases,
    scan_dicom,
)
from dce_monai.data.manifest import load_manifest
from tests.data.dicom.conftest import AXIAL, OBLIQUE, Geometry, _rotation, _study_of, dce_exam, phase_volume, write_slices


def test_lps_to_ras_flips_x_and_y() -> None:
    a = np.eye(4)
    a[:3, 3] = [1.0, 2.0, 3.0]
    r = affine_lps_to_ras(a)
    np.testing.assert_allclose(r[:3, 3], [-1.0, -2.0, 3.0])
    np.testing.assert_allclose(np.diag(r)[:3], [-1.0, -1.0, 1.0])


@pytest.mark.parametrize("key", ["TemporalPositionIdentifier", "AcquisitionTime"])
def test_single_series_with_all_phases(tmp_path: Path, key: str) -> None:
    """GE-style: one series holds every phase; split by TemporalPositionIdentifier or AcquisitionTime."""
    src = tmp_path / "dicom"
    src.mkdir()
    study, series = generate_uid(), generate_uid()
    acq = ["100000", "100130", "100300"]
    for ph in range(3):
        tags: dict[str, Any] = {"AcquisitionTime": acq[ph]}
        if key == "TemporalPositionIdentifier":
            tags["TemporalPositionIdentifier"] = ph + 1
        write_slices(src, OBLIQUE, phase_volume(OBLIQUE, ph), study_uid=study, series_uid=series, series_number=5, tags=tags)
    m = load_manifest(ingest_dicom(src, tmp_path / "out"))
    (p,) = m.patients
    assert sorted(p["exam"]["sequences"]) == ["T1post1", "T1post2", "T1pre"]
    assert p["exam"]["acquisition_times_s"] == {"T1pre": 0.0, "T1post1": 90.0, "T1post2": 180.0}
    for ph, name in enumerate(["T1pre", "T1post1", "T1post2"]):
        np.testing.assert_array_equal(np.asarray(nib.load(m.resolve(p["exam"]["sequences"][name])).dataobj), phase_volume(OBLIQUE, ph))


@pytest.mark.parametrize("trigger", [True, False])
def test_single_series_2d_acquisition_times_per_slice(tmp_path: Path, trigger: bool) -> None:
    """Every slice has its own AcquisitionTime (2D multi-slice): it must not split the series
    into one-slice phases; TriggerTime per phase does split it."""
    study, series = generate_uid(), generate_uid()
    for ph in range(2):
        tags = {"TriggerTime": 90000.0 * ph} if trigger else {}
        write_slices(tmp_path, AXIAL, phase_volume(AXIAL, ph), study_uid=study, series_uid=series, series_number=5, tags=tags,
                     slice_tags=lambda k, ph=ph: {"AcquisitionTime": f"10{ph}0{k}0.00"})
    if not trigger:
        with pytest.raises(DicomIngestError, match=r"series 5 't1_fl3d_dyn': slice positions repeat \(\[2\] slice\(s\) per position\) but neither"):
            build_volumes(scan_dicom(tmp_path))
        return
    vols = next(iter(build_volumes(scan_dicom(tmp_path)).values()))
    assert [v.shape for v in vols] == [AXIAL.shape] * 2
    assert [v.phase_key for v in vols] == ["TriggerTime"] * 2
    _, key, times = order_phases(vols)
    assert key == "TriggerTime" and times == {0: 0.0, 1: 90.0}


def test_missing_slice_names_series_and_gap(tmp_path: Path) -> None:
    g = Geometry(shape=(4, 4, 6))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=4, desc="t1_pre", skip=(3,))
    with pytest.raises(DicomIngestError, match=r"series 4 't1_pre': uneven slice positions: expected spacing 2 mm, found 4 mm .*about 1 slice\(s\) missing"):
        build_volumes(scan_dicom(tmp_path))


def test_duplicate_slices_refused(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 3, 3))
    study, series = generate_uid(), generate_uid()
    for _ in range(2):  # same phase twice, no key to split on
        write_slices(tmp_path, g, phase_volume(g, 0), study_uid=study, series_uid=series, series_number=4)
    with pytest.raises(DicomIngestError, match=r"series 4 't1_fl3d_dyn': slice positions repeat \(\[2\] slice\(s\) per position\)"):
        build_volumes(scan_dicom(tmp_path))


def test_mixed_orientation_in_a_series(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    g1 = Geometry(shape=(3, 3, 2))
    g2 = Geometry(shape=(3, 3, 2), rot=_rotation(0.0, 0.0, 0.4), origin=(0.0, 0.0, 50.0))
    write_slices(tmp_path, g1, phase_volume(g1, 0), study_uid=study, series_uid=series, series_number=2)
    write_slices(tmp_path, g2, phase_volume(g2, 0), study_uid=study, series_uid=series, series_number=2)
    with pytest.raises(DicomIngestError, match=r"series 2 't1_fl3d_dyn': slices have different ImageOrientationPatient"):
        build_volumes(scan_dicom(tmp_path))


def test_inconsistent_slices_in_one_series(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    g1 = Geometry(shape=(3, 3, 2))
    g2 = Geometry(shape=(4, 3, 2), origin=(-40.0, 12.5, 11.25))
    write_slices(tmp_path, g1, phase_volume(g1, 0), study_uid=study, series_uid=series, series_number=2)
    write_slices(tmp_path, g2, phase_volume(g2, 0), study_uid=study, series_uid=series, series_number=2)
    with pytest.raises(DicomIngestError, match=r"series 2 't1_fl3d_dyn': slices have different matrix sizes \(Rows, Columns\) \(3, [34]\) vs \(3, [34]\)"):
        build_volumes(scan_dicom(tmp_path))
    for p in tmp_path.iterdir():
        p.unlink()
    g3 = Geometry(shape=(3, 3, 2), spacing=(0.5, 0.5, 2.0), origin=(-40.0, 12.5, 11.25))
    write_slices(tmp_path, g1, phase_volume(g1, 0), study_uid=study, series_uid=series, series_number=2)
    write_slices(tmp_path, g3, phase_volume(g3, 0), study_uid=study, series_uid=series, series_number=2)
    with pytest.raises(DicomIngestError, match=r"series 2 't1_fl3d_dyn': slices have different PixelSpacing \(0\.[59], 0\.[57]\) vs \(0\.[59], 0\.[57]\)"):
        build_volumes(scan_dicom(tmp_path))


def test_near_duplicate_positions(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    g1 = Geometry(shape=(3, 3, 3))
    g2 = Geometry(shape=(3, 3, 1), origin=(-40.0, 12.5, 7.256))  # 0.006 mm from slice 0
    write_slices(tmp_path, g1, phase_volume(g1, 0), study_uid=study, series_uid=series, series_number=2)
    write_slices(tmp_path, g2, phase_volume(g2, 0), study_uid=study, series_uid=series, series_number=2)
    with pytest.raises(DicomIngestError, match=r"series 2 't1_fl3d_dyn': two slices at the same position \(7\.250 mm along the slice normal\)"):
        build_volumes(scan_dicom(tmp_path))


def test_single_slice_spacing(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 3, 1))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, tags={"SpacingBetweenSlices": 2.5})
    (vol,) = next(iter(build_volumes(scan_dicom(tmp_path)).values()))
    np.testing.assert_allclose(vol.affine_lps[:3, 2], [0.0, 0.0, 2.5])
    for p in tmp_path.iterdir():
        p.unlink()
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, tags={"SliceThickness": None})
    with pytest.raises(DicomIngestError, match=r"series 1 't1_fl3d_dyn': a single slice without SpacingBetweenSlices or SliceThickness"):
        build_volumes(scan_dicom(tmp_path))


def test_parallel_orientation_of_hand_built_slices() -> None:
    from dce_monai.data.dicom import DicomSlice

    s = DicomSlice(path=Path("x.dcm"), frame=None, patient_key="p", study_uid="s", series_uid="u", series_number=3, description="d",
                   position=np.zeros(3), orientation=np.array([1.0, 0, 0, 1.0, 0, 0]), pixel_spacing=(1.0, 1.0), shape=(2, 2))
    with pytest.raises(DicomIngestError, match=r"ImageOrientationPatient \[1\.0, 0\.0, 0\.0, 1\.0, 0\.0, 0\.0\] has parallel row and column directions"):
        build_volumes([s, s])


def test_two_patients_and_two_studies(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    dce_exam(src / "a", AXIAL, 1, t2=False, patient={"PatientID": "A1"})
    dce_exam(src / "b", AXIAL, 2, t2=False, patient={"PatientID": "B2"})
    m = load_manifest(ingest_dicom(src, tmp_path / "out", id_prefix="P"))
    assert sorted(len(p["exam"]["sequences"]) for p in m.patients) == [2, 3]
    dce_exam(src / "b", AXIAL, 1, t2=False, patient={"PatientID": "A1"})  # a second study of A1
    with pytest.raises(DicomIngestError, match=r"patient 'P\d{4}' \(pseudonym in this message only\) has 2 studies; ingest one study per run"):
        ingest_dicom(src, tmp_path / "out3")


def test_rescale_slope_intercept_applied(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 2, 2))
    vol = phase_volume(g, 0)
    write_slices(tmp_path, g, vol, study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, tags={"RescaleSlope": 0.5, "RescaleIntercept": -10.0})
    (v,) = next(iter(build_volumes(scan_dicom(tmp_path)).values()))
    from dce_monai.data.dicom import read_volume_pixels

    arr = read_volume_pixels(v)
    assert arr.dtype == np.float32
    np.testing.assert_allclose(arr, vol.astype(np.float32) * 0.5 - 10.0)


def test_exclude_series(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A non-fat-suppressed T1 on another grid before the dynamic run, no contrast tags:
    it stops the ingest (different grids) unless excluded by its description."""
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 2, t2=False)
    study = pydicom.dcmread(str(next(src.iterdir())), stop_before_pixels=True).StudyInstanceUID
    g = Geometry(shape=(8, 8, 2), spacing=(0.5, 0.5, 3.0))
    write_slices(src, g, phase_volume(g, 0), study_uid=study, series_uid=generate_uid(), series_number=2,
                 desc="ax t1 non-FS", tags={"TriggerTime": -600000.0})
    for p in src.iterdir():  # no ContrastBolusAgent anywhere: time order alone picks T1pre
        ds = pydicom.dcmread(str(p))
        if "ContrastBolusAgent" in ds:
            del ds.ContrastBolusAgent
            ds.save_as(str(p))
    with pytest.raises(DicomIngestError, match=r"DCE phases on different grids: series 2 'ax t1 non-FS' has shape \(8, 8, 2\)"):
        ingest_dicom(src, tmp_path / "out")
    m = load_manifest(ingest_dicom(src, tmp_path / "out", exclude_series=r"non.?fs"))
    (p,) = m.patients
    assert sorted(p["exam"]["sequences"]) == ["T1post1", "T1post2", "T1pre"]
    assert p["exam"]["acquisition_times_s"]["T1pre"] == 0.0
    with pytest.raises(ValueError, match=r"exclude_series must be a regular expression, got '\(' "):
        ingest_dicom(src, tmp_path / "out", exclude_series="(")


def test_exclude_series_applies_before_volumes_are_built(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An excluded series that could not be built (a slice missing) no longer stops the ingest."""
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    g = Geometry(shape=(4, 4, 6))
    write_slices(src, g, phase_volume(g, 0), study_uid=_study_of(src), series_uid=generate_uid(), series_number=4,
                 desc="broken recon", skip=(3,))
    with pytest.raises(DicomIngestError, match=r"series 4 'broken recon': uneven slice positions"):
        ingest_dicom(src, tmp_path / "out")
    with caplog.at_level(logging.INFO, logger="dce_monai"):
        m = load_manifest(ingest_dicom(src, tmp_path / "out", exclude_series="broken", mapping=tmp_path / "m.csv"))
    assert sorted(m.patients[0]["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert "series 4 'broken recon': excluded by --exclude-series (5 slices)" in caplog.text
    with pytest.raises(ValueError, match=r"exclude_series must be a regular expression, got '\[' "):
        build_volumes(scan_dicom(src), exclude_series="[")


def _three_plane_localizer(src: Path, study: str, desc: str = "ExamCard 1", image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY")) -> None:
    """One series, 3 slices in each of the axial, sagittal and coronal planes through one
    centre: slice positions repeat along every normal, orientations differ."""
    series = generate_uid()
    planes = [np.eye(3), np.column_stack([[0, 1, 0], [0, 0, -1], [1, 0, 0]]), np.column_stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]])]
    for i, rot in enumerate(planes):
        g = Geometry(shape=(4, 4, 3), spacing=(2.0, 2.0, 10.0), rot=rot, origin=tuple(-rot[:, 2] * 10.0))
        write_slices(src, g, phase_volume(g, i), study_uid=study, series_uid=series, series_number=1, desc=desc,
                     te=2.0, tr=6.0, tags={"ImageType": list(image_type)})


@pytest.mark.parametrize(
    "desc, image_type, reason",
    [
        ("ExamCard 1", ("ORIGINAL", "PRIMARY"), "slices in 3 orthogonal planes"),
        ("AAHead_Scout", ("ORIGINAL", "PRIMARY"), "SeriesDescription 'AAHead_Scout'"),
        ("3pl loc", ("ORIGINAL", "PRIMARY"), "SeriesDescription '3pl loc'"),
        ("x", ("ORIGINAL", "PRIMARY", "LOCALIZER"), "ImageType LOCALIZER"),
    ],
)
def test_localizers_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture, desc: str, image_type: tuple[str, ...], reason: str) -> None:
    """A 3-plane localizer (a spoiled gradient echo, as DCE phases are) is left out with a log
    line; before, its repeated slice positions stopped the ingest."""
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    _three_plane_localizer(src, _study_of(src), desc, image_type)
    with caplog.at_level(logging.INFO, logger="dce_monai"):
        m = load_manifest(ingest_dicom(src, tmp_path / "out", mapping=tmp_path / "m.csv"))
    assert sorted(m.patients[0]["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert f"series 1 {desc!r}: localizer skipped ({reason}; 9 slices)" in caplog.text


def test_single_plane_localizer_is_not_taken_for_a_dce_phase(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    g = Geometry(shape=(8, 8, 3), spacing=(1.0, 1.0, 5.0))
    write_slices(src, g, phase_volume(g, 0), study_uid=_study_of(src), series_uid=generate_uid(), series_number=1,
                 desc="Survey", te=2.0, tr=6.0, tags={"TriggerTime": -60000.0})
    with caplog.at_level(logging.INFO, logger="dce_monai"):
        m = load_manifest(ingest_dicom(src, tmp_path / "out", mapping=tmp_path / "m.csv"))
    assert sorted(m.patients[0]["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert "series 1 'Survey': localizer skipped" in caplog.text


def test_localizer_reason_leaves_diagnostic_series_alone(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, OBLIQUE, 1)
    slices = scan_dicom(src)
    by_series: dict[int, list[Any]] = {}
    for s in slices:
        by_series.setdefault(s.series_number, []).append(s)
    assert len(by_series) == 3 and all(localizer_reason(ss) is None for ss in by_series.values())


def _pydicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file(name, download=False)
    if not p or not os.path.isfile(p):
        pytest.skip(f"{name} not shipped with this pydicom")
    return Path(p)


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_real_pydicom_mr_sample(tmp_path: Path, name: str) -> None:
    src = _pydicom_file(name)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.dcm").write_bytes(src.read_bytes())
    (vol,) = next(iter(build_volumes(scan_dicom(tmp_path / "in")).values()))
    ds = pydicom.dcmread(str(src))
    r = np.array(ds.ImageOrientationPatient[:3], float)
    c = np.array(ds.ImageOrientationPatient[3:], float)
    ipp = np.array(ds.ImagePositionPatient, float)
    # voxel (i=col, j=row) -> IPP + i*Δc*r + j*Δr*c (DICOM PS3.3 C.7.6.2.1.1), then LPS -> RAS
    for i, j in [(0, 0), (63, 0), (0, 63), (17, 42)]:
        lps = ipp + i * float(ds.PixelSpacing[1]) * r + j * float(ds.PixelSpacing[0]) * c
        np.testing.assert_allclose(vol.affine_ras[:3, :3] @ [i, j, 0] + vol.affine_ras[:3, 3], lps * [-1, -1, 1], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vol.affine_ras[:3, 2]), float(ds.SliceThickness))  # single slice only
    assert classify_volume(vol) == "T2"  # TE 240 ms, TR 4000 ms
    from dce_monai.data.dicom import read_volume_pixels

    np.testing.assert_array_equal(read_volume_pixels(vol)[:, :, 0], ds.pixel_array.T)
    with pytest.raises(DicomIngestError, match=r"no DCE phase"):
        ingest_dicom(tmp_path / "in", tmp_path / "out")


def test_real_pydicom_truncated_sample(tmp_path: Path) -> None:
    src = _pydicom_file("MR_truncated.dcm")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "trunc.dcm").write_bytes(src.read_bytes())
    (vol,) = next(iter(build_volumes(scan_dicom(tmp_path / "in")).values()))
    from dce_monai.data.dicom import read_volume_pixels

    with pytest.raises(DicomIngestError, match=r"cannot read the pixels of DICOM file .*trunc\.dcm"):
        read_volume_pixels(vol)


@pytest.mark.parametrize(
    ("name", "must_decode"),
    [
        ("MR_small_RLE.dcm", True),  # pydicom decodes RLE itself
        ("MR_small_expb.dcm", True),
        ("MR_small_padded.dcm", True),
        ("MR_small_jp2klossless.dcm", False),  # needs a JPEG 2000 plugin
        ("MR_small_jpeg_ls_lossless.dcm", False),  # needs a JPEG-LS plugin
    ],
)
def test_real_pydicom_encodings_agree(tmp_path: Path, name: str, must_decode: bool) -> None:
    """Every encoding of pydicom's MR sample gives MR_small's geometry, and its voxels or a
    named error when the codec plugin is missing."""
    from dce_monai.data.dicom import read_volume_pixels

    vols = []
    for n in ("MR_small.dcm", name):
        d = tmp_path / n
        d.mkdir()
        (d / "x.dcm").write_bytes(_pydicom_file(n).read_bytes())
        (v,) = next(iter(build_volumes(scan_dicom(d)).values()))
        vols.append(v)
    np.testing.assert_allclose(vols[1].affine_ras, vols[0].affine_ras)
    ref = read_volume_pixels(vols[0])
    try:
        arr = read_volume_pixels(vols[1])
    except DicomIngestError as e:
        assert not must_decode
        assert re.search(r"cannot read the pixels of DICOM file .*x\.dcm: ", str(e))
    else:
        np.testing.assert_array_equal(arr, ref)
