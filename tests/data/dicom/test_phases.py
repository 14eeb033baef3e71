"""Tests of dce_monai.data.dicom.phases (steps 4-5 of the DICOM ingest): classifying volumes as
DCE phase, T2 or ignored, and ordering the DCE phases (time keys, contrast tags, pre-contrast
choice). Series are written with pydicom (``conftest.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dce_monai.data.dicom import DicomIngestError, build_volumes, classify_volume, ingest_dicom, order_phases, scan_dicom
from dce_monai.data.manifest import load_manifest
from tests.data.dicom.conftest import AXIAL, Geometry, dce_exam, phase_volume, write_slices


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


def test_no_dce_phase(tmp_path: Path) -> None:
    g = Geometry(shape=(3, 3, 2))
    write_slices(tmp_path, g, phase_volume(g, 0), study_uid=generate_uid(), series_uid=generate_uid(), series_number=1, desc="ax t2 tse", te=100.0, tr=5000.0)
    with pytest.raises(DicomIngestError, match=r"patient 'DCE0001': no DCE phase \(T1-weighted gradient echo, TR <= 20 ms\) found"):
        ingest_dicom(tmp_path, tmp_path / "out")


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
