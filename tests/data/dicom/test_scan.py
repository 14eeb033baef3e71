"""Tests of dce_monai.data.dicom.scan (step 1 of the DICOM ingest): header reading, enhanced
multi-frame files, geometry tag checks, unreadable and non-image files, burned-in annotation,
pydicom's own warnings kept quiet. Series are written with pydicom (``conftest.py``)."""

from __future__ import annotations

import logging
import random
import re
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DSequence
from pydicom.uid import generate_uid

from dce_monai.data.dicom import DicomIngestError, affine_lps_to_ras, build_volumes, ingest_dicom, scan_dicom
from dce_monai.data.manifest import load_manifest
from tests.data.dicom.conftest import (
    AXIAL,
    ENHANCED_MR_STORAGE,
    OBLIQUE,
    Geometry,
    _base,
    _save,
    _study_of,
    dce_exam,
    phase_volume,
    write_slices,
)


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
