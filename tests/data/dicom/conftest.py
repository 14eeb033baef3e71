"""Shared helpers of the DICOM ingest tests (``tests/data/dicom``): DICOM series written with
pydicom from volumes of known geometry.

:class:`Geometry` is a voxel grid (direction cosines, spacings, origin in LPS) with its exact
affine; :func:`write_slices` writes one single-frame MR file per slice of a volume on it;
:func:`dce_exam` writes a whole Philips-style DCE exam (one series per phase, series numbers not
in time order, phases ordered only by TriggerTime) with the identifiers in :data:`PHI`;
:func:`phase_volume` is the distinct voxel content of each phase, so a test can tell phases apart.

The test modules import these with ``from tests.data.dicom.conftest import ...`` (the name under
which pytest's importlib mode loads this file).

Example:
    >>> def test_x(tmp_path):  # doctest: +SKIP
    ...     times = dce_exam(tmp_path, AXIAL, n_post=2)  # {"T1pre": 0.0, "T1post1": 135.0, ...}
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

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


def _study_of(src: Path) -> str:
    return str(pydicom.dcmread(str(next(p for p in src.rglob("*.dcm"))), stop_before_pixels=True).StudyInstanceUID)
