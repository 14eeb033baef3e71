"""Tests of dce_monai.data.dicom: DICOM series written with pydicom from phantom volumes of
known geometry, ingested back to NIfTI + manifest."""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dce_monai.cli.ingest import add_cli_arguments, cli_main
from dce_monai.data.dicom import (
    DicomIngestError,
    affine_lps_to_ras,
    build_volumes,
    classify_volume,
    ingest_dicom,
    localizer_reason,
    order_phases,
    pseudonymize,
    read_secret_file,
    scan_dicom,
)
from dce_monai.data.manifest import load_manifest
from dce_monai.data.validate import validate_cohort

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN-4711-XYZ", "PatientBirthDate": "19630517", "AccessionNumber": "ACC98765"}


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class Geometry:
    """Known voxel grid: row/column direction cosines, spacings, slice step, origin (LPS)."""

    def __init__(self, shape: tuple[int, int, int] = (6, 5, 4), spacing: tuple[float, float, float] = (0.7, 0.9, 2.0),
                 rot: np.ndarray | None = None, origin: tuple[float, float, float] = (-40.0, 12.5, 7.25)) -> None:
        self.shape = shape
        self.spacing = spacing  # (column spacing Δc along i, row spacing Δr along j, slice step)
        r = np.eye(3) if rot is None else rot
        self.row_dir, self.col_dir = r[:, 0], r[:, 1]
        self.normal = np.cross(self.row_dir, self.col_dir)
        self.origin = np.asarray(origin, dtype=float)

    def ipp(self, k: int) -> np.ndarray:
        return self.origin + k * self.spacing[2] * self.normal

    def affine_lps(self) -> np.ndarray:
        a = np.eye(4)
        a[:3, 0] = self.row_dir * self.spacing[0]
        a[:3, 1] = self.col_dir * self.spacing[1]
        a[:3, 2] = self.normal * self.spacing[2]
        a[:3, 3] = self.origin
        return a


AXIAL = Geometry()
OBLIQUE = Geometry(rot=_rotation(0.3, -0.2, 0.5))


def _base(study_uid: str, series_uid: str, series_number: int, desc: str, te: float, tr: float, patient: dict[str, str] | None = None) -> Dataset:
    ds = Dataset()
    ds.Modality = "MR"
    for k, v in (patient or PHI).items():
        setattr(ds, k, v)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = desc
    ds.EchoTime = te
    ds.RepetitionTime = tr
    ds.Manufacturer = "Philips"
    ds.MagneticFieldStrength = 3.0
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _save(ds: Dataset, path: Path, sop_class: str = MR_STORAGE) -> None:
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def phase_volume(geom: Geometry, phase: int) -> np.ndarray:
    """Distinct uint16 volume per phase: 1000 * (phase + 1) + voxel index code."""
    i, j, k = np.meshgrid(*[np.arange(n) for n in geom.shape], indexing="ij")
    return (1000 * (phase + 1) + 100 * k + 10 * j + i).astype(np.uint16)


def write_slices(folder: Path, geom: Geometry, vol: np.ndarray, *, study_uid: str, series_uid: str, series_number: int,
                 desc: str = "t1_fl3d_dyn", te: float = 1.8, tr: float = 4.5, tags: dict[str, Any] | None = None,
                 skip: tuple[int, ...] = (), patient: dict[str, str] | None = None, names: list[str] | None = None,
                 slice_tags: Any = None) -> list[Path]:
    """Write one single-frame file per slice; return the paths."""
    paths = []
    for k in range(vol.shape[2]):
        if k in skip:
            continue
        ds = _base(study_uid, series_uid, series_number, desc, te, tr, patient)
        ds.Rows, ds.Columns = vol.shape[1], vol.shape[0]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in geom.ipp(k)]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*geom.row_dir, *geom.col_dir)]
        ds.PixelSpacing = [geom.spacing[1], geom.spacing[0]]
        ds.SliceThickness = 99.0  # deliberately wrong: the step must come from the positions
        ds.InstanceNumber = k + 1
        for key, v in {**(tags or {}), **(slice_tags(k) if slice_tags else {})}.items():
            setattr(ds, key, v)
        ds.PixelData = np.ascontiguousarray(vol[:, :, k].T).tobytes()
        p = folder / (names.pop() if names else f"{generate_uid()[-12:]}.dcm")
        _save(ds, p)
        paths.append(p)
    return paths


def dce_exam(folder: Path, geom: Geometry, n_post: int, trigger: bool = True, t2: bool = True,
             patient: dict[str, str] | None = None) -> dict[str, float]:
    """Philips-style exam: one series per phase, series numbers not in time order,
    TriggerTime (ms) the only key that orders phases (AcquisitionTime constant)."""
    study = generate_uid()
    times = {}
    numbers = list(range(10, 10 + n_post + 1))
    random.Random(3).shuffle(numbers)
    for ph in range(n_post + 1):
        t_s = 0.0 if ph == 0 else 60.0 + 75.0 * ph
        tags = {"AcquisitionTime": "101500.00", "ContrastBolusAgent": "" if ph == 0 else "Gadovist"}
        if trigger:
            tags["TriggerTime"] = t_s * 1000.0
        write_slices(folder, geom, phase_volume(geom, ph), study_uid=study, series_uid=generate_uid(), series_number=numbers[ph], tags=tags, patient=patient)
        times["T1pre" if ph == 0 else f"T1post{ph}"] = t_s
    if t2:
        g2 = Geometry(shape=(4, 4, 3), spacing=(1.2, 1.2, 3.0), rot=np.column_stack([geom.row_dir, geom.col_dir, geom.normal]), origin=tuple(geom.origin))
        write_slices(folder, g2, phase_volume(g2, 9), study_uid=study, series_uid=generate_uid(), series_number=3, desc="T2_TSE", te=90.0, tr=4000.0, patient=patient)
    return times


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


def test_multiframe_enhanced_mr(tmp_path: Path) -> None:
    """One enhanced MR file: 2 phases x 4 frames, frames shuffled, ordered by TemporalPositionIndex."""
    src = tmp_path / "dicom"
    src.mkdir()
    g = OBLIQUE
    ds = _base(generate_uid(), generate_uid(), 7, "dyn_eTHRIVE", te=0.0, tr=0.0)
    del ds.EchoTime, ds.RepetitionTime
    frames = [(ph, k) for ph in range(2) for k in range(g.shape[2])]
    random.Random(1).shuffle(frames)
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = g.shape[1], g.shape[0]
    shared = Dataset()
    ori, meas, timing, echo = Dataset(), Dataset(), Dataset(), Dataset()
    ori.ImageOrientationPatient = [float(v) for v in (*g.row_dir, *g.col_dir)]
    meas.PixelSpacing = [g.spacing[1], g.spacing[0]]
    meas.SliceThickness = 99.0
    timing.RepetitionTime = 4.4
    echo.EffectiveEchoTime = 2.1
    shared.PlaneOrientationSequence = DSequence([ori])
    shared.PixelMeasuresSequence = DSequence([meas])
    shared.MRTimingAndRelatedParametersSequence = DSequence([timing])
    shared.MREchoSequence = DSequence([echo])
    ds.SharedFunctionalGroupsSequence = DSequence([shared])
    per = []
    pix = []
    for ph, k in frames:
        fg, pos, content = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [float(v) for v in g.ipp(k)]
        content.TemporalPositionIndex = ph + 1
        fg.PlanePositionSequence = DSequence([pos])
        fg.FrameContentSequence = DSequence([content])
        per.append(fg)
        pix.append(np.ascontiguousarray(phase_volume(g, ph)[:, :, k].T))
    ds.PerFrameFunctionalGroupsSequence = DSequence(per)
    ds.PixelData = np.stack(pix).tobytes()
    _save(ds, src / "enhanced.dcm", ENHANCED_MR_STORAGE)
    m = load_manifest(ingest_dicom(src, tmp_path / "out"))
    (p,) = m.patients
    assert sorted(p["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert "acquisition_times_s" not in p["exam"]  # a temporal index is not a time
    for ph, name in enumerate(["T1pre", "T1post1"]):
        img = nib.load(m.resolve(p["exam"]["sequences"][name]))
        np.testing.assert_allclose(img.affine, affine_lps_to_ras(g.affine_lps()), atol=1e-4)
        np.testing.assert_array_equal(np.asarray(img.dataobj), phase_volume(g, ph))


def test_multiframe_with_missing_per_frame_items(tmp_path: Path) -> None:
    ds = _base(generate_uid(), generate_uid(), 7, "dyn", te=2.0, tr=4.0)
    ds.NumberOfFrames = 3
    ds.Rows = ds.Columns = 2
    ds.PixelData = np.zeros((3, 2, 2), np.uint16).tobytes()
    _save(ds, tmp_path / "mf.dcm", ENHANCED_MR_STORAGE)
    with pytest.raises(DicomIngestError, match=r"mf\.dcm has NumberOfFrames=3 but 0 PerFrameFunctionalGroupsSequence"):
        scan_dicom(tmp_path)


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


def test_phase_order_needs_a_key(tmp_path: Path) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 2, trigger=False, t2=False)  # AcquisitionTime constant, no TriggerTime
    with pytest.raises(DicomIngestError, match=r"patient 'DCE0001': cannot order 3 DCE phases .*TriggerTime, AcquisitionTime and TemporalPositionIdentifier are missing or repeated"):
        ingest_dicom(src, tmp_path / "out")


def test_contrast_tags_choose_pre_and_catch_disagreement(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    study = generate_uid()
    g = Geometry(shape=(3, 3, 2))
    agents = ["", "", "Gd", "Gd"]  # two unenhanced phases: the later one is T1pre
    for ph, a in enumerate(agents):
        write_slices(tmp_path, g, phase_volume(g, ph), study_uid=study, series_uid=generate_uid(), series_number=ph + 1,
                     tags={"TriggerTime": 1000.0 * ph, "ContrastBolusAgent": a})
    vols = next(iter(build_volumes(scan_dicom(tmp_path)).values()))
    with caplog.at_level(logging.WARNING):
        ordered, key, times = order_phases(vols, "patient 'X'")
    assert key == "TriggerTime"
    assert [v.label for v in ordered] == ["series 2 't1_fl3d_dyn'", "series 3 't1_fl3d_dyn'", "series 4 't1_fl3d_dyn'"]
    assert times == {0: 0.0, 1: 1.0, 2: 2.0}
    assert "2 pre-contrast phases" in caplog.text
    # an enhanced phase before an unenhanced one: the tags contradict the time order
    for s in vols[2].slices:
        s.contrast_agent = ""
    for s in vols[1].slices:
        s.contrast_agent = "Gd"
    with pytest.raises(DicomIngestError, match=r"patient 'X': ContrastBolusAgent tags disagree with the time order \(by TriggerTime\)"):
        order_phases(vols, "patient 'X'")
    with pytest.raises(DicomIngestError, match=r"patient 'X': no DCE phase"):
        order_phases([], "patient 'X'")


def test_no_dce_phase(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 3, 2))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, desc="ax t2 tse", te=100.0, tr=5000.0)
    with pytest.raises(DicomIngestError, match=r"patient 'DCE0001': no DCE phase \(T1-weighted gradient echo, TR <= 20 ms\) found"):
        ingest_dicom(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    ("desc", "te", "tr", "image_type", "kind"),
    [
        ("t1_fl3d_dyn", 1.8, 4.5, ["ORIGINAL", "PRIMARY"], "dce"),
        ("Ph1/dyn eTHRIVE SUB", 1.8, 4.5, ["DERIVED"], "ignore"),
        ("dyn", 1.8, 4.5, ["DERIVED", "PRIMARY", "SUBTRACTION"], "ignore"),
        ("ep2d_diff_b800", 80.0, 6000.0, ["ORIGINAL"], "ignore"),
        ("ax stir", 60.0, 5000.0, ["ORIGINAL"], "T2"),
        ("series x", 95.0, 4000.0, ["ORIGINAL"], "T2"),
        ("t1_se_tra", 12.0, 500.0, ["ORIGINAL"], "ignore"),  # T1 spin echo (localizers: test_localizers_skipped)
    ],
)
def test_classify_volume(tmp_path: Path, desc: str, te: float, tr: float, image_type: list[str], kind: str) -> None:
    g = Geometry(shape=(2, 2, 2))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, desc=desc, te=te, tr=tr, tags={"ImageType": image_type})
    (vol,) = next(iter(build_volumes(scan_dicom(tmp_path)).values()))
    assert classify_volume(vol) == kind


def _all_output_bytes(folder: Path) -> bytes:
    out = b""
    for p in folder.rglob("*"):
        if p.is_file():
            b = p.read_bytes()
            out += gzip.decompress(b) if p.suffix == ".gz" else b
    return out


def test_deidentification_and_mapping(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1)
    uids = {str(pydicom.dcmread(str(p), stop_before_pixels=True).get(k)) for p in src.iterdir() for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG, logger="dce_monai"):
        man = ingest_dicom(src, out, salt="s3cret")
    blob = _all_output_bytes(out) + caplog.text.encode()
    for v in [*PHI.values(), *uids, "Doe", "19630517"]:
        assert v.encode() not in blob, v
    (p,) = load_manifest(man).patients
    expected = pseudonymize([PHI["PatientID"]], salt="s3cret")[PHI["PatientID"]]
    assert p["patient_id"] == expected and expected.startswith("H") and len(expected) == 13
    assert not list(tmp_path.glob("*.csv"))
    mapping = tmp_path / "private" / "map.csv"
    ingest_dicom(src, tmp_path / "out2", id_prefix="Q", mapping=mapping)
    assert mapping.read_text().splitlines() == ["original_patient_id,pseudonym", f"{PHI['PatientID']},Q0001"]
    assert PHI["PatientID"].encode() not in _all_output_bytes(tmp_path / "out2")


def test_pseudonymize_numbering_and_errors() -> None:
    ids = pseudonymize(["b", "a", "c", "a"], id_prefix="X_")
    assert sorted(ids.values()) == ["X_0001", "X_0002", "X_0003"]
    assert pseudonymize(["a"], salt="k") != pseudonymize(["a"], salt="j")
    with pytest.raises(ValueError, match=r"id_prefix must start with a letter or digit .* got '-bad'"):
        pseudonymize(["a"], id_prefix="-bad")
    with pytest.raises(ValueError, match=r"salt must be a non-empty string, got ''"):
        pseudonymize(["a"], salt="")


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


def test_corrupt_files_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    good = min(src.iterdir())
    (src / "junk.dcm").write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(DicomIngestError, match=r"cannot read DICOM file .*junk\.dcm: InvalidDicomError"):
        scan_dicom(src)
    (src / "junk.dcm").unlink()
    (src / "cut_header.dcm").write_bytes(good.read_bytes()[:300])
    with pytest.raises(DicomIngestError, match=r"cut_header\.dcm lacks \w+"):
        scan_dicom(src)
    with caplog.at_level(logging.WARNING):
        slices = scan_dicom(src, skip_unreadable=True)
    assert len(slices) == 2 * AXIAL.shape[2] and "cut_header.dcm" in caplog.text
    (src / "cut_header.dcm").unlink()
    b = good.read_bytes()
    good.write_bytes(b[:-7])  # truncated pixel data: the header still reads
    with pytest.raises(DicomIngestError, match=rf"cannot read the pixels of DICOM file .*{good.name}"):
        ingest_dicom(src, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="DICOM folder not found"):
        scan_dicom(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DicomIngestError, match=r"no DICOM image found under .*empty \(0 file\(s\) looked at\)"):
        scan_dicom(empty)


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


# --------------------------------------------------------------------- pydicom's own sample files

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
    ("tags", "match"),
    [
        ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, r"\.dcm has an invalid ImageOrientationPatient \[1\.0, 0\.0, 0\.0, 1\.0, 0\.0, 0\.0\]: expected two orthogonal unit vectors"),
        ({"ImagePositionPatient": ["nan", 0, 0]}, r"\.dcm has a non-finite ImagePositionPatient \[nan, 0\.0, 0\.0\]"),
        ({"PixelSpacing": [0.0, 1.0]}, r"\.dcm has an invalid PixelSpacing \[0\.0, 1\.0\]: expected two values > 0 mm"),
        ({"PixelSpacing": 0.5}, r"\.dcm has malformed geometry: .*PixelSpacing 2 \(got 1\)"),
        ({"Rows": 0}, r"\.dcm has an invalid matrix Rows=0, Columns=3"),
        ({"ImagePositionPatient": [1.0, 2.0]}, r"\.dcm has malformed geometry: ImagePositionPatient needs 3 values \(got 2\)"),
    ],
)
def test_bad_geometry_tags(tmp_path: Path, tags: dict[str, Any], match: str) -> None:
    g = Geometry(shape=(3, 3, 2))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, tags=tags)
    with pytest.raises(DicomIngestError, match=match):
        build_volumes(scan_dicom(tmp_path))


def test_corrupt_header_value(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 3, 1))
    (p,) = write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1)
    b = p.read_bytes()
    assert b.count(b"-40.000000") == 1
    p.write_bytes(b.replace(b"-40.000000", b"-40.0x0000"))  # pydicom keeps an invalid DS as text (a warning)
    with pytest.raises(DicomIngestError, match=rf"DICOM file .*{p.name} has a corrupt header value: ValueError"):
        scan_dicom(tmp_path)


def test_parallel_orientation_of_hand_built_slices() -> None:
    from dce_monai.data.dicom import DicomSlice

    s = DicomSlice(path=Path("x.dcm"), frame=None, patient_key="p", study_uid="s", series_uid="u", series_number=3, description="d",
                   position=np.zeros(3), orientation=np.array([1.0, 0, 0, 1.0, 0, 0]), pixel_spacing=(1.0, 1.0), shape=(2, 2))
    with pytest.raises(DicomIngestError, match=r"ImageOrientationPatient \[1\.0, 0\.0, 0\.0, 1\.0, 0\.0, 0\.0\] has parallel row and column directions"):
        build_volumes([s, s])


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


def test_non_image_objects_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = Geometry(shape=(3, 3, 2))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1)
    sr = Dataset()
    sr.PatientID = "X"
    _save(sr, tmp_path / "report.dcm", "1.2.840.10008.5.1.4.1.1.88.11")  # Basic Text SR
    with caplog.at_level(logging.INFO, logger="dce_monai"):
        slices = scan_dicom(tmp_path)
    assert len(slices) == 2 and "skipping a non-image DICOM object (SOP class Basic Text SR Storage)" in caplog.text
    assert "report.dcm" not in caplog.text


# --------------------------------------------------------------------- round trip through the phantom


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


def test_rescale_slope_intercept_applied(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 2, 2))
    vol = phase_volume(g, 0)
    write_slices(tmp_path, g, vol, study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, tags={"RescaleSlope": 0.5, "RescaleIntercept": -10.0})
    (v,) = next(iter(build_volumes(scan_dicom(tmp_path)).values()))
    from dce_monai.data.dicom import read_volume_pixels

    arr = read_volume_pixels(v)
    assert arr.dtype == np.float32
    np.testing.assert_allclose(arr, vol.astype(np.float32) * 0.5 - 10.0)


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


def test_unenhanced_t1_before_the_run_dropped_by_contrast_tags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    study = pydicom.dcmread(str(next(src.iterdir())), stop_before_pixels=True).StudyInstanceUID
    g = Geometry(shape=(8, 8, 2), spacing=(0.5, 0.5, 3.0))
    write_slices(src, g, phase_volume(g, 0), study_uid=study, series_uid=generate_uid(), series_number=2,
                 desc="ax t1 non-FS", tags={"TriggerTime": -600000.0})
    with caplog.at_level(logging.WARNING):
        m = load_manifest(ingest_dicom(src, tmp_path / "out"))
    assert sorted(m.patients[0]["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert "2 pre-contrast phases; using the last" in caplog.text and "dropping [\"series 2 'ax t1 non-FS'\"]" in caplog.text


# --------------------------------------------------------------------- hostile input: UIDs, burned-in text, localizers, pseudonyms


def _study_of(src: Path) -> str:
    return str(pydicom.dcmread(str(next(p for p in src.rglob("*.dcm"))), stop_before_pixels=True).StudyInstanceUID)


def test_invalid_uids_never_reach_stderr_warnings_or_log(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                        caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder) -> None:
    """UIDs with a leading-zero component (common in real exports, with a date inside) make
    pydicom warn and log the value; ingest counts those reports and shows no value."""
    src = tmp_path / "dicom"
    src.mkdir()
    study = "1.2.826.0.1.3680043.8.498.020240311.1"  # '020240311': leading zero, breaks the UI rules
    series = ["1.2.826.0.1.3680043.8.498.020240311.2", "1.2.826.0.1.3680043.8.498.020240311.3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom also warns when the test writes them
        for ph in range(2):
            write_slices(src, AXIAL, phase_volume(AXIAL, ph), study_uid=study, series_uid=series[ph], series_number=10 + ph,
                         tags={"TriggerTime": 90000.0 * ph})
    recwarn.clear()
    caplog.clear()
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        man = ingest_dicom(src, tmp_path / "out", mapping=tmp_path / "map.csv")
    out, err = capfd.readouterr()
    text = out + err + caplog.text + "".join(str(w.message) for w in recwarn)
    assert "20240311" not in text and study not in text
    assert not [w for w in recwarn if "VR UI" in str(w.message)]
    assert re.search(r"pydicom reported irregular header values \(invalid UI value x \d+\); the values are not shown", caplog.text)
    assert sorted(load_manifest(man).patients[0]["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert logging.getLogger("pydicom").propagate  # pydicom's logger restored after the ingest


def _burned_in_screenshot(src: Path, study: str) -> None:
    g = Geometry(shape=(4, 4, 2))
    write_slices(src, g, phase_volume(g, 5), study_uid=study, series_uid=generate_uid(), series_number=99, desc="MIP screenshot",
                 te=2.0, tr=5.0, tags={"BurnedInAnnotation": "YES", "TriggerTime": 999000.0})


def test_burned_in_annotation_refused_or_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    _burned_in_screenshot(src, _study_of(src))
    match = (r"DICOM file .*\.dcm \(series 99 'MIP screenshot'\) declares BurnedInAnnotation YES: text burned into the pixels "
             r"may identify the patient, .*refused\. Pass --skip-burned-in")
    with pytest.raises(DicomIngestError, match=match):
        ingest_dicom(src, tmp_path / "out")
    with pytest.raises(DicomIngestError, match=match):  # not an unreadable file: skip_unreadable does not hide it
        scan_dicom(src, skip_unreadable=True)
    with caplog.at_level(logging.WARNING):
        m = load_manifest(ingest_dicom(src, tmp_path / "out", skip_burned_in=True))
    assert sorted(m.patients[0]["exam"]["sequences"]) == ["T1post1", "T1pre"]
    assert "series 99 'MIP screenshot': 2 image(s) with burned-in annotation left out (--skip-burned-in)" in caplog.text


def test_burned_in_through_the_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dce_monai.cli import main

    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    _burned_in_screenshot(src, _study_of(src))
    assert main(["ingest", str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "dce-monai ingest: error: DICOM file" in err and "declares BurnedInAnnotation YES" in err and "Traceback" not in err
    assert main(["ingest", str(src), str(tmp_path / "out"), "--skip-burned-in", "--mapping", str(tmp_path / "m.csv")]) == 0


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


def test_pseudonyms_cannot_be_rebuilt_from_the_ids() -> None:
    """Without a secret the numbering is a fresh random permutation: neither the sorted ids
    nor their SHA-256 order (the former scheme) predicts it."""
    import hashlib
    import hmac

    mrns = [f"MRN{i:06d}" for i in range(30)]
    a, b = pseudonymize(mrns, id_prefix="X"), pseudonymize(mrns, id_prefix="X")
    assert sorted(a.values()) == [f"X{i:04d}" for i in range(1, 31)]
    assert a != b  # two runs: two permutations (equal with probability 1/30!)
    by_sha = sorted(mrns, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    assert [a[k] for k in by_sha] != sorted(a.values()) and [a[k] for k in mrns] != sorted(a.values())
    keyed = pseudonymize(mrns, salt="k3y")
    assert keyed == pseudonymize(mrns, salt="k3y")
    assert keyed["MRN000007"] == "H" + hmac.new(b"k3y", b"MRN000007", hashlib.sha256).hexdigest()[:12]
    assert keyed["MRN000007"] != "H" + hashlib.sha256(b"MRN000007").hexdigest()[:12]


def test_mapping_written_owner_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    mapping = tmp_path / "private" / "map.csv"
    mapping.parent.mkdir()
    mapping.write_text("old\n")
    os.chmod(mapping, 0o644)
    ingest_dicom(src, tmp_path / "out", id_prefix="Q", mapping=mapping)
    assert oct(mapping.stat().st_mode & 0o777) == "0o600"
    assert mapping.read_text().splitlines() == ["original_patient_id,pseudonym", f"{PHI['PatientID']},Q0001"]
    assert [p.name for p in mapping.parent.iterdir()] == ["map.csv"]  # no temporary left behind
    with caplog.at_level(logging.WARNING):
        ingest_dicom(src, tmp_path / "out2")
    assert "no --mapping was written: the link back to the original patients is kept nowhere" in caplog.text


def test_secret_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from dce_monai.cli import main

    src = tmp_path / "dicom"
    src.mkdir()
    dce_exam(src, AXIAL, 1, t2=False)
    secret = tmp_path / "secret"
    secret.write_text("  0123456789abcdef\n")
    os.chmod(secret, 0o600)
    assert read_secret_file(secret) == "0123456789abcdef"
    assert main(["ingest", str(src), str(tmp_path / "out"), "--secret-file", str(secret)]) == 0
    pid = pseudonymize([PHI["PatientID"]], salt="0123456789abcdef")[PHI["PatientID"]]
    assert f"{pid}: T1post1, T1pre" in capsys.readouterr().out
    os.chmod(secret, 0o644)
    with caplog.at_level(logging.WARNING):
        read_secret_file(secret)
    assert "can be read by other users (mode 0644); chmod 600 it" in caplog.text
    empty = tmp_path / "empty"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match=r"secret file .*empty is empty; put one line of random text in it"):
        read_secret_file(empty)
    with pytest.raises(FileNotFoundError, match=r"secret file not found: .*nope"):
        read_secret_file(tmp_path / "nope")
    assert main(["ingest", str(src), str(tmp_path / "out"), "--secret-file", str(secret), "--salt", "x"]) == 2
    assert "give the pseudonym secret once: --secret-file or --salt, not both." in capsys.readouterr().err
