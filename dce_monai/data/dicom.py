"""DICOM ingest: ``dce-monai ingest DICOM_DIR OUT_DIR`` → NIfTI per sequence + manifest.

A folder of DICOM files (any nesting, any file names, any order) is read with pydicom in two
passes: a scan pass over the headers (``stop_before_pixels=True``) and a pixel pass over the
slices that are kept. The steps are:

1. **Scan.** Every file is parsed; a file pydicom cannot parse, or a DICOM image lacking a
   geometry attribute (ImagePositionPatient, ImageOrientationPatient, PixelSpacing, Rows,
   Columns) or carrying an invalid one (non-finite position, orientation cosines not
   orthonormal, spacing <= 0), is an error naming the file (``skip_unreadable`` logs and
   skips it instead). An image declaring ``BurnedInAnnotation`` YES is refused
   (``skip_burned_in`` leaves it out). pydicom's warnings and log records, which quote
   header values (UIDs too), are counted and never shown.
   Enhanced (multi-frame) MR files contribute one slice per frame, with position and
   orientation from ``PerFrameFunctionalGroupsSequence`` (falling back to
   ``SharedFunctionalGroupsSequence``).
2. **Group.** Files are grouped by patient (PatientID), then by series
   (SeriesInstanceUID). Series matching ``exclude_series`` and localizers (ImageType
   ``LOCALIZER``, a description such as ``localizer``/``scout``/``survey``, or slices in
   orthogonal planes) are left out here, with a log line, before any volume is built.
   A series in which a slice position occurs more than once holds
   several phases (GE-style): it is split by the first of TemporalPositionIdentifier,
   TriggerTime, AcquisitionTime that gives every phase exactly one slice per position.
3. **Geometry.** Slices of a volume are sorted by the projection of ImagePositionPatient
   on the slice normal n = row × col (from ImageOrientationPatient). The slice step is
   ``(IPP_last − IPP_first) / (N − 1)`` and every consecutive gap must equal the median
   gap within 5 % (else: missing slice, error naming the series, expected and found
   spacing); SliceThickness is never used for the step, except for a single-slice volume
   (SpacingBetweenSlices, then SliceThickness). The affine in DICOM LPS is::

       A_LPS = [ r·Δc  c·Δr  s  IPP_first ]      r, c: row / column direction cosines
                                                  Δc, Δr: PixelSpacing[1], PixelSpacing[0]
                                                  s: slice step vector (mm)

   for voxel (i, j, k) = (column, row, slice), and ``A_RAS = diag(−1, −1, 1, 1) · A_LPS``
   (NIfTI is RAS). The array written is ``pixel_array.T`` stacked along the last axis, so
   axial acquisitions have their slices along Z, as the rest of dce_monai expects.
4. **Identify.** Each volume is classified from its header (rules, in order):
   subtraction (ImageType contains ``SUB``/``SUBTRACTION`` or the description contains
   ``sub``) → ignored; description matches ``dwi|diff|adc|trace`` → ignored;
   description matches ``t2|stir|tirm|haste`` or EchoTime ≥ 50 ms → **T2**;
   RepetitionTime ≤ 20 ms and EchoTime < 15 ms (spoiled gradient echo) → **DCE phase**;
   anything else → ignored (logged with series number and description).
5. **Order.** DCE phases are ordered by the first key that every phase has and that
   differs between all phases: TriggerTime (Philips), AcquisitionTime (or
   FrameAcquisitionDateTime), TemporalPositionIdentifier. Times are written to the
   manifest (``acquisition_times_s``, relative to the pre-contrast phase) when the key is a
   time. The pre-contrast phase is the first in time order; when ContrastBolusAgent is
   filled on some phases and empty on others, the empty ones must all come first (else an
   error), and the last of them is T1pre (earlier ones are dropped with a warning). The
   phases after T1pre become T1post1..K (any K ≥ 0).
6. **Write.** ``<out>/<pid>/<pid>_<SEQ>.nii.gz`` per sequence, and ``<out>/manifest.json``
   (``data_manifest/schema.json``; no lesions — add them from annotations). All DCE phases
   must share T1pre's grid (else an error, or with ``resample=True`` a trilinear resampling
   to T1pre's grid with MONAI ``ResampleToMatch``); T2 is always resampled to T1pre's grid
   when it differs, because a manifest exam has one grid.

De-identification: the patient id written anywhere is a pseudonym that cannot be rebuilt
from a list of the original PatientIDs without a secret: either ``<prefix><NNNN>``
(``id_prefix``; numbered in a random order from the operating system's secure generator, so
the link exists only in the mapping file) or, with a secret key ``salt``, ``H`` + the first 12
hex digits of ``HMAC-SHA256(salt, PatientID)`` (stable across runs with the same secret).
Names, ids, birth dates, accession numbers and UIDs are never written to the NIfTI headers,
the manifest or the log; log lines name series by SeriesNumber and SeriesDescription. The
original → pseudonym table is written only when ``mapping`` is given, with mode 0600.
Error messages about an unreadable file name its path, because the user needs it.

Why not ITK's GDCM series reader (``itk.GDCMSeriesFileNames`` + ``itk.imread``): it sorts
one series by position, but does not split a series holding several dynamic phases, order
phases by TriggerTime, classify T2/DCE series, read enhanced multi-frame per-frame groups
into phases, or stop on a missing slice with the gap in the message; and it carries the DICOM
header (PHI) along. The geometry computed here agrees with ITK's to within 5e-7 mm on the
synthetic series of the tests (see ``docs/dicom.md``). Resampling does use MONAI.

Reference:
    DICOM PS3.3 C.7.6.2 (Image Plane Module: ImagePositionPatient, ImageOrientationPatient,
    PixelSpacing) and C.8.13 (Enhanced MR Image functional groups). Seed 1 (Hu et al.) used
    T2, T1pre and four post-contrast phases; real protocols have 2-7 post phases.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import stat
import tempfile
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dce_monai.data.io import write_nifti
from dce_monai.data.manifest import save_manifest
from dce_monai.sequences import PRE, T2, post_name

__all__ = [
    "DicomIngestError",
    "DicomSlice",
    "DicomVolume",
    "add_cli_arguments",
    "affine_lps_to_ras",
    "build_volumes",
    "classify_volume",
    "cli_main",
    "ingest_dicom",
    "localizer_reason",
    "order_phases",
    "pseudonymize",
    "read_secret_file",
    "read_volume_pixels",
    "scan_dicom",
]

logger = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GAP_RTOL = 0.05
_T2_RE = re.compile(r"t2|stir|tirm|haste", re.IGNORECASE)
_IGNORE_RE = re.compile(r"dwi|diff|adc|trace", re.IGNORECASE)
_SUB_RE = re.compile(r"sub", re.IGNORECASE)
_LOCALIZER_RE = re.compile(r"locali[sz]er|scout|survey|(?<![a-z])loc(?![a-z])|3[\s_-]*plane|tri[\s_-]*pilot", re.IGNORECASE)
_VR_WARNING_RE = re.compile(r"^Invalid value for VR ([A-Z]{2})")


class DicomIngestError(ValueError):
    """A DICOM folder cannot be converted; the message names the file, series or patient."""


class _BurnedInRefused(DicomIngestError):
    """An image declares burned-in annotation (never skipped by ``skip_unreadable``)."""


class _PydicomQuiet:
    """Keep pydicom's warnings and log records off stderr and out of the log.

    pydicom quotes the offending value when a header breaks a format rule (``Invalid value
    for VR UI: '1.2.826...20240311...'``), and UIDs often embed dates and site numbers. While
    active (re-entrant), its ``warnings`` are recorded instead of shown and the ``pydicom``
    logger's records go to a counter instead of its handlers; on exit one line is logged with
    the counts by kind (``invalid UI value x 2``), never the values.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.counts: Counter[str] = Counter()

    @staticmethod
    def _kind(msg: str) -> str:
        m = _VR_WARNING_RE.match(msg)
        return f"invalid {m.group(1)} value" if m else "other"

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        quiet = self
        plog = logging.getLogger("pydicom")
        saved = (plog.handlers[:], plog.propagate)

        class _Counting(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                quiet.counts[f"log: {quiet._kind(record.getMessage())}"] += 1

        self.depth, self.counts = 1, Counter()
        plog.handlers, plog.propagate = [_Counting()], False
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield
                finally:
                    for w in caught:
                        self.counts[self._kind(str(w.message))] += 1
        finally:
            plog.handlers, plog.propagate = saved
            self.depth = 0
            # pydicom sends each irregular value both to warnings and to its logger: count it once
            shown = {k: v for k, v in self.counts.items() if not (k.startswith("log: ") and self.counts.get(k[5:], 0) >= v)}
            if shown:
                logger.warning(
                    "pydicom reported irregular header values (%s); the values are not shown because they may contain identifiers",
                    ", ".join(f"{k.removeprefix('log: ')} x {v}" for k, v in sorted(shown.items())),
                )


_pydicom_quiet = _PydicomQuiet()


@dataclass
class DicomSlice:
    """Header facts of one 2D slice (one file, or one frame of an enhanced multi-frame file).

    Attributes:
        path: the file.
        frame: frame index in a multi-frame file, None for a single-frame file.
        patient_key: original PatientID (kept in memory only, never written).
        study_uid: StudyInstanceUID (memory only).
        series_uid: SeriesInstanceUID (memory only).
        series_number: SeriesNumber (0 when absent).
        description: SeriesDescription ("" when absent).
        position: ImagePositionPatient, mm (LPS).
        orientation: ImageOrientationPatient, 6 direction cosines (row, then column).
        pixel_spacing: PixelSpacing (row spacing, column spacing), mm.
        shape: (Rows, Columns).
        trigger_time_ms: TriggerTime, ms, or None.
        acquisition_time_s: AcquisitionTime (or FrameAcquisitionDateTime) as seconds of the
            day, or None.
        temporal_position: TemporalPositionIdentifier (or TemporalPositionIndex), or None.
        echo_time_ms: EchoTime, ms, or None.
        repetition_time_ms: RepetitionTime, ms, or None.
        contrast_agent: ContrastBolusAgent ("" when absent).
        image_type: ImageType values, upper case.
        slice_gap_mm: SpacingBetweenSlices, else SliceThickness (used for 1-slice volumes only).
        instance_number: InstanceNumber (0 when absent).
        manufacturer: Manufacturer ("" when absent).
        field_strength_t: MagneticFieldStrength, T, or None.
    """

    path: Path
    frame: int | None
    patient_key: str
    study_uid: str
    series_uid: str
    series_number: int
    description: str
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    shape: tuple[int, int]
    trigger_time_ms: float | None = None
    acquisition_time_s: float | None = None
    temporal_position: int | None = None
    echo_time_ms: float | None = None
    repetition_time_ms: float | None = None
    contrast_agent: str = ""
    image_type: tuple[str, ...] = ()
    slice_gap_mm: float | None = None
    instance_number: int = 0
    manufacturer: str = ""
    field_strength_t: float | None = None


@dataclass
class DicomVolume:
    """One 3D volume (a series, or one phase of a multi-phase series), slices sorted.

    Attributes:
        slices: slices in ascending order along the slice normal.
        affine_lps: 4x4 voxel (column, row, slice) → LPS mm affine.
        label: human-readable name for messages: ``series 7 't1_fl3d_dyn' phase 2``.
        phase_key: the key that split a multi-phase series (None for a plain series).
        kind: ``"T2"``, ``"dce"`` or ``"ignore"`` once :func:`ingest_dicom` has classified it.
    """

    slices: list[DicomSlice]
    affine_lps: np.ndarray
    label: str
    phase_key: str | None = None
    kind: str = field(default="unknown")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape written to NIfTI: (Columns, Rows, n_slices)."""
        r, c = self.slices[0].shape
        return (c, r, len(self.slices))

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 voxel → RAS mm affine (the NIfTI affine)."""
        return affine_lps_to_ras(self.affine_lps)

    def first(self, attr: str) -> Any:
        """The value of ``attr`` on the first slice that has one (None if none has)."""
        for s in self.slices:
            v = getattr(s, attr)
            if v not in (None, ""):
                return v
        return None

    def time(self, key: str) -> float | None:
        """The phase's value of an ordering key: the minimum over its slices (None if missing)."""
        attr = {"TriggerTime": "trigger_time_ms", "AcquisitionTime": "acquisition_time_s", "TemporalPositionIdentifier": "temporal_position"}[key]
        vals = [getattr(s, attr) for s in self.slices]
        if any(v is None for v in vals):
            return None
        return float(min(vals))


def affine_lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """Convert a DICOM (LPS) voxel-to-world affine to NIfTI (RAS): ``diag(-1, -1, 1, 1) @ A``.

    Args:
        affine_lps: 4x4 affine, mm.

    Returns:
        The 4x4 RAS affine (a new array).

    Example:
        >>> affine_lps_to_ras(np.eye(4))[:3, :3].diagonal().tolist()
        [-1.0, -1.0, 1.0]
    """
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


# ----------------------------------------------------------------------------- scan pass


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _tm_seconds(v: Any) -> float | None:
    """DICOM TM (HHMMSS.FFFFFF, also HH:MM:SS) → seconds of the day."""
    s = str(v or "").strip().replace(":", "")
    if not s:
        return None
    m = re.match(r"^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$", s)
    if not m:
        return None
    h, mi, se, fr = m.groups()
    return int(h) * 3600 + int(mi or 0) * 60 + int(se or 0) + (float(fr) if fr else 0.0)


def _dt_seconds(v: Any) -> float | None:
    """DICOM DT (YYYYMMDDHHMMSS.FFFFFF) → seconds of the day (date ignored)."""
    s = str(v or "").strip()
    return _tm_seconds(s[8:14] + (s[14:].split("+")[0].split("-")[0] if len(s) > 14 else "")) if len(s) >= 10 else None


def _seq_item(ds: Any, *names: str) -> Any:
    """Follow nested one-item sequences: ``_seq_item(fg, "PlanePositionSequence")``."""
    cur = ds
    for n in names:
        seq = getattr(cur, n, None) if cur is not None else None
        if not seq:
            return None
        cur = seq[0]
    return cur


def _read_header(path: Path) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as e:  # noqa: BLE001 - any parser failure on an external file is "unreadable"
        raise DicomIngestError(f"cannot read DICOM file {path}: {type(e).__name__}: {e}") from None


def _require(ds: Any, path: Path, name: str, frame: int | None = None, value: Any = None) -> Any:
    v = value if value is not None else ds.get(name)
    if v is None or (hasattr(v, "__len__") and not isinstance(v, (str, bytes)) and len(v) == 0) or v == "":
        where = f" frame {frame}" if frame is not None else ""
        raise DicomIngestError(f"DICOM file {path}{where} lacks {name}; cannot place the slice in space (file truncated or not an image?)")
    return v


def _geometry(path: Path, frame: int | None, ipp: Any, iop: Any, ps: Any) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Parse and check position (finite), orientation (two orthonormal cosines) and spacing (> 0)."""
    where = f" frame {frame}" if frame is not None else ""
    ipp, iop, ps = ([v] if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") else list(v) for v in (ipp, iop, ps))
    if len(ipp) != 3 or len(iop) != 6 or len(ps) != 2:
        raise DicomIngestError(
            f"DICOM file {path}{where} has malformed geometry: ImagePositionPatient needs 3 values (got {len(ipp)}), "
            f"ImageOrientationPatient 6 (got {len(iop)}), PixelSpacing 2 (got {len(ps)})"
        )
    pos = np.asarray([float(v) for v in ipp], dtype=np.float64)
    ori = np.asarray([float(v) for v in iop], dtype=np.float64)
    spc = (float(ps[0]), float(ps[1]))
    if not np.all(np.isfinite(pos)):
        raise DicomIngestError(f"DICOM file {path}{where} has a non-finite ImagePositionPatient {pos.tolist()}")
    r, c = ori[:3], ori[3:]
    if not (np.all(np.isfinite(ori)) and abs(np.linalg.norm(r) - 1) < 1e-2 and abs(np.linalg.norm(c) - 1) < 1e-2 and abs(r @ c) < 1e-2):
        raise DicomIngestError(
            f"DICOM file {path}{where} has an invalid ImageOrientationPatient {ori.tolist()}: expected two orthogonal unit vectors"
        )
    if not all(math.isfinite(v) and v > 0 for v in spc):
        raise DicomIngestError(f"DICOM file {path}{where} has an invalid PixelSpacing {list(spc)}: expected two values > 0 mm")
    return pos, ori, spc


def _slices_from_dataset(ds: Any, path: Path) -> list[DicomSlice]:
    common: dict[str, Any] = {
        "path": path,
        "patient_key": str(ds.get("PatientID", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "series_uid": str(_require(ds, path, "SeriesInstanceUID")),
        "series_number": _int(ds.get("SeriesNumber")) or 0,
        "description": str(ds.get("SeriesDescription", "") or ""),
        "echo_time_ms": _float(ds.get("EchoTime")),
        "repetition_time_ms": _float(ds.get("RepetitionTime")),
        "contrast_agent": str(ds.get("ContrastBolusAgent", "") or "").strip(),
        "image_type": tuple(str(t).upper() for t in (ds.get("ImageType") or ())),
        "instance_number": _int(ds.get("InstanceNumber")) or 0,
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "field_strength_t": _float(ds.get("MagneticFieldStrength")),
    }
    rows = _int(_require(ds, path, "Rows"))
    cols = _int(_require(ds, path, "Columns"))
    if not rows or not cols or rows < 1 or cols < 1:
        raise DicomIngestError(f"DICOM file {path} has an invalid matrix Rows={ds.get('Rows')!r}, Columns={ds.get('Columns')!r}")
    gap = _float(ds.get("SpacingBetweenSlices")) or _float(ds.get("SliceThickness"))
    n_frames = _int(ds.get("NumberOfFrames")) or 1
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _seq_item(ds, "SharedFunctionalGroupsSequence")
    out: list[DicomSlice] = []
    if per_frame is not None or n_frames > 1:
        if per_frame is None or len(per_frame) != n_frames:
            raise DicomIngestError(
                f"multi-frame DICOM file {path} has NumberOfFrames={n_frames} but "
                f"{0 if per_frame is None else len(per_frame)} PerFrameFunctionalGroupsSequence items"
            )
        # Enhanced MR has no top-level TR/TE: read them from the MR timing/echo groups.
        timing = _seq_item(shared, "MRTimingAndRelatedParametersSequence")
        if common["repetition_time_ms"] is None and timing is not None:
            common["repetition_time_ms"] = _float(timing.get("RepetitionTime"))
        for i, fg in enumerate(per_frame):
            def grp(name: str, fg: Any = fg) -> Any:
                return _seq_item(fg, name) or _seq_item(shared, name)

            pos = grp("PlanePositionSequence")
            ori = grp("PlaneOrientationSequence")
            meas = grp("PixelMeasuresSequence")
            ipp = _require(ds, path, "ImagePositionPatient", i, pos.get("ImagePositionPatient") if pos else None)
            iop = _require(ds, path, "ImageOrientationPatient", i, ori.get("ImageOrientationPatient") if ori else None)
            ps = _require(ds, path, "PixelSpacing", i, meas.get("PixelSpacing") if meas else None)
            content = grp("FrameContentSequence")
            echo = grp("MREchoSequence")
            cardiac = grp("CardiacSynchronizationSequence")
            pos_v, ori_v, spc = _geometry(path, i, ipp, iop, ps)
            s = DicomSlice(
                frame=i,
                position=pos_v,
                orientation=ori_v,
                pixel_spacing=spc,
                shape=(rows, cols),
                slice_gap_mm=(_float(meas.get("SpacingBetweenSlices")) or _float(meas.get("SliceThickness")) or gap) if meas else gap,
                trigger_time_ms=_float(cardiac.get("NominalCardiacTriggerDelayTime")) if cardiac else _float(ds.get("TriggerTime")),
                acquisition_time_s=_dt_seconds(content.get("FrameAcquisitionDateTime")) if content else None,
                temporal_position=_int(content.get("TemporalPositionIndex")) if content else None,
                **common,
            )
            if echo is not None and s.echo_time_ms is None:
                s.echo_time_ms = _float(echo.get("EffectiveEchoTime"))
            out.append(s)
        return out
    ipp = _require(ds, path, "ImagePositionPatient")
    iop = _require(ds, path, "ImageOrientationPatient")
    ps = _require(ds, path, "PixelSpacing")
    pos_v, ori_v, spc = _geometry(path, None, ipp, iop, ps)
    out.append(
        DicomSlice(
            frame=None,
            position=pos_v,
            orientation=ori_v,
            pixel_spacing=spc,
            shape=(rows, cols),
            slice_gap_mm=gap,
            trigger_time_ms=_float(ds.get("TriggerTime")),
            acquisition_time_s=_tm_seconds(ds.get("AcquisitionTime")),
            temporal_position=_int(ds.get("TemporalPositionIdentifier")),
            **common,
        )
    )
    return out


def _sop_class(ds: Any) -> str:
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(getattr(uid, "name", uid) or "")


def _is_image(ds: Any) -> bool:
    """An image object: an "... Image Storage" SOP class, or (no class given) image attributes."""
    sop = _sop_class(ds)
    if sop:
        return "Image Storage" in sop
    return any(k in ds for k in ("Rows", "PixelData", "ImagePositionPatient"))


def scan_dicom(folder: str | Path, skip_unreadable: bool = False, skip_burned_in: bool = False) -> list[DicomSlice]:
    """Read every DICOM header under ``folder`` (recursively) and return its image slices.

    Files are parsed with ``pydicom.dcmread(stop_before_pixels=True)``. Non-image DICOM
    objects (a SOP class that is not an "... Image Storage" class: DICOMDIR, structured
    reports, presentation states) are skipped with a log line; an image object cut short
    before its geometry is an error. Hidden files (name starting with ``.``) are ignored.
    An image that declares ``BurnedInAnnotation`` YES (text such as a name or a date drawn
    into the pixels, which de-identification of the header cannot remove) is refused, or
    with ``skip_burned_in`` left out (one log line per series). pydicom's warnings and log
    records, which quote header values such as UIDs, are counted, not shown.

    Args:
        folder: the DICOM folder.
        skip_unreadable: log and skip files that cannot be parsed or lack geometry instead of
            raising.
        skip_burned_in: leave out images with burned-in annotation instead of raising.

    Returns:
        All slices (one per single-frame file, one per frame of a multi-frame file).

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        DicomIngestError: a file cannot be parsed or lacks geometry (naming the file), an image
            declares burned-in annotation (without ``skip_burned_in``), or no DICOM image was
            found.

    Example:
        >>> slices = scan_dicom("exam_dicom/")  # doctest: +SKIP
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    slices: list[DicomSlice] = []
    burned: Counter[str] = Counter()
    with _pydicom_quiet():
        for p in files:
            try:
                ds = _read_header(p)
                try:
                    if not _is_image(ds):
                        # no file name here: exports often name files by their SOPInstanceUID
                        logger.info("skipping a non-image DICOM object (SOP class %s)", _sop_class(ds))
                        continue
                    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
                        label = f"series {_int(ds.get('SeriesNumber')) or 0} {str(ds.get('SeriesDescription', '') or '')!r}"
                        if not skip_burned_in:
                            raise _BurnedInRefused(
                                f"DICOM file {p} ({label}) declares BurnedInAnnotation YES: text burned into the pixels "
                                "may identify the patient, and removing it is not possible here; refused. "
                                "Pass --skip-burned-in (skip_burned_in=True) to leave such images out"
                            )
                        burned[label] += 1
                        continue
                    slices.extend(_slices_from_dataset(ds, p))
                except DicomIngestError:
                    raise
                except Exception as e:  # noqa: BLE001 - pydicom converts values lazily: a corrupt value fails here
                    raise DicomIngestError(f"DICOM file {p} has a corrupt header value: {type(e).__name__}: {e}") from None
            except _BurnedInRefused:
                raise
            except DicomIngestError as e:
                if not skip_unreadable:
                    raise
                logger.warning("skipped: %s", e)
    for label, n in sorted(burned.items()):
        logger.warning("%s: %d image(s) with burned-in annotation left out (--skip-burned-in)", label, n)
    if not slices:
        raise DicomIngestError(f"no DICOM image found under {root} ({len(files)} file(s) looked at)")
    return slices


# ----------------------------------------------------------------------------- geometry


def _normal(orientation: np.ndarray) -> np.ndarray:
    r, c = orientation[:3], orientation[3:]
    n = np.cross(r, c)
    norm = np.linalg.norm(n)
    if not norm > 1e-6:
        raise DicomIngestError(f"ImageOrientationPatient {orientation.tolist()} has parallel row and column directions")
    return n / norm


def _volume(slices: list[DicomSlice], label: str, phase_key: str | None = None) -> DicomVolume:
    """Sort slices along the normal, check spacing, build the LPS affine."""
    ref = slices[0]
    for s in slices[1:]:
        if not np.allclose(s.orientation, ref.orientation, atol=1e-4):
            raise DicomIngestError(f"{label}: slices have different ImageOrientationPatient ({ref.orientation.round(4).tolist()} vs {s.orientation.round(4).tolist()})")
        if s.shape != ref.shape:
            raise DicomIngestError(f"{label}: slices have different matrix sizes (Rows, Columns) {ref.shape} vs {s.shape}")
        if not np.allclose(s.pixel_spacing, ref.pixel_spacing, atol=1e-4):
            raise DicomIngestError(f"{label}: slices have different PixelSpacing {ref.pixel_spacing} vs {s.pixel_spacing}")
    n = _normal(ref.orientation)
    proj = np.array([float(s.position @ n) for s in slices])
    order = np.argsort(proj, kind="stable")
    slices = [slices[i] for i in order]
    proj = proj[order]
    r_dir, c_dir = ref.orientation[:3], ref.orientation[3:]
    aff = np.eye(4)
    aff[:3, 0] = r_dir * ref.pixel_spacing[1]
    aff[:3, 1] = c_dir * ref.pixel_spacing[0]
    aff[:3, 3] = slices[0].position
    if len(slices) == 1:
        gap = ref.slice_gap_mm
        if gap is None or gap <= 0:
            raise DicomIngestError(f"{label}: a single slice without SpacingBetweenSlices or SliceThickness; cannot set the slice spacing")
        aff[:3, 2] = n * gap
    else:
        d = np.diff(proj)
        if np.any(d < 0.01):  # same position to 0.01 mm
            i = int(np.argmin(d))
            raise DicomIngestError(
                f"{label}: two slices at the same position ({proj[i]:.3f} mm along the slice normal); "
                "a multi-phase series that could not be split, or duplicate files"
            )
        expected = float(np.median(d))
        bad = np.flatnonzero(np.abs(d - expected) > _GAP_RTOL * expected)
        if bad.size:
            i = int(bad[0])
            missing = round(d[i] / expected) - 1
            raise DicomIngestError(
                f"{label}: uneven slice positions: expected spacing {expected:.4g} mm, found {d[i]:.4g} mm "
                f"between slices at {proj[i]:.3f} and {proj[i + 1]:.3f} mm along the normal"
                + (f" (about {missing} slice(s) missing)" if missing >= 1 else "")
            )
        aff[:3, 2] = (slices[-1].position - slices[0].position) / (len(slices) - 1)
    return DicomVolume(slices=slices, affine_lps=aff, label=label, phase_key=phase_key)


def _series_label(s: DicomSlice) -> str:
    return f"series {s.series_number} {s.description!r}"


_PHASE_KEYS = (
    ("TemporalPositionIdentifier", "temporal_position"),
    ("TriggerTime", "trigger_time_ms"),
    ("AcquisitionTime", "acquisition_time_s"),
)


def _split_phases(slices: list[DicomSlice], label: str) -> list[tuple[list[DicomSlice], str | None]]:
    """Split a series into phases when positions repeat; return (slices, key) per phase."""
    n = _normal(slices[0].orientation)
    pos_counts: dict[float, int] = defaultdict(int)
    for s in slices:
        pos_counts[round(float(s.position @ n), 2)] += 1
    n_phases = max(pos_counts.values())
    if n_phases == 1:
        return [(slices, None)]
    for key, attr in _PHASE_KEYS:
        vals = [getattr(s, attr) for s in slices]
        if any(v is None for v in vals):
            continue
        groups: dict[Any, list[DicomSlice]] = defaultdict(list)
        for s, v in zip(slices, vals):
            groups[v].append(s)
        # A key splits the series only if every group holds every position exactly once
        # (2D acquisitions can give each slice its own AcquisitionTime: no split then).
        all_pos = set(pos_counts)
        ok = len(groups) == n_phases and all(
            len(g) == len(all_pos) and {round(float(s.position @ n), 2) for s in g} == all_pos for g in groups.values()
        )
        if ok:
            return [(groups[v], key) for v in sorted(groups)]
    counts = sorted(set(pos_counts.values()))
    raise DicomIngestError(
        f"{label}: slice positions repeat ({counts} slice(s) per position) but neither "
        "TemporalPositionIdentifier, TriggerTime nor AcquisitionTime splits the series into phases "
        "with one slice per position"
    )


def localizer_reason(slices: Sequence[DicomSlice]) -> str | None:
    """Why a series is a localizer (scout, survey), or None when it is not one.

    Rules, first match wins: ImageType contains ``LOCALIZER``; SeriesDescription matches
    ``localizer|localiser|scout|survey|loc|3 plane|tripilot`` (``loc`` as a word); the slices
    lie in two or three mutually orthogonal planes (a multi-plane localizer: no diagnostic
    series mixes planes).

    Args:
        slices: the slices of one series.

    Returns:
        A short reason for the log line, or None.

    Example:
        >>> localizer_reason(series_slices)  # doctest: +SKIP
        "SeriesDescription 'AAHead_Scout'"
    """
    s = slices[0]
    if any("LOCALIZER" in x.image_type for x in slices):
        return "ImageType LOCALIZER"
    if _LOCALIZER_RE.search(s.description):
        return f"SeriesDescription {s.description!r}"
    normals: list[np.ndarray] = []
    for x in slices:
        r, c = x.orientation[:3], x.orientation[3:]
        n = np.cross(r, c)
        if not np.linalg.norm(n) > 1e-6:
            return None  # parallel rows and columns: the geometry check names it
        n = n / np.linalg.norm(n)
        if not any(abs(float(n @ m)) > 0.999 for m in normals):
            normals.append(n)
    if 2 <= len(normals) <= 3 and all(abs(float(a @ b)) < 0.1 for i, a in enumerate(normals) for b in normals[i + 1 :]):
        return f"slices in {len(normals)} orthogonal planes"
    return None


def _exclude_pattern(exclude_series: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if exclude_series is None or isinstance(exclude_series, re.Pattern):
        return exclude_series
    try:
        return re.compile(exclude_series, re.IGNORECASE)
    except (re.error, TypeError) as e:
        raise ValueError(f"exclude_series must be a regular expression, got {exclude_series!r} ({e}).") from None


def build_volumes(
    slices: Sequence[DicomSlice], exclude_series: str | re.Pattern[str] | None = None
) -> dict[str, list[DicomVolume]]:
    """Group slices into volumes: patient → series → phase; sort and check each volume.

    Before any volume is built, a series is left out (one log line naming it) when its
    SeriesDescription matches ``exclude_series`` or when it is a localizer
    (:func:`localizer_reason`), so neither can stop the ingest with a geometry error.

    Args:
        slices: output of :func:`scan_dicom`.
        exclude_series: regular expression (``re.search``, case-insensitive) on
            SeriesDescription; matching series are left out.

    Returns:
        ``{original PatientID: [DicomVolume, ...]}`` in SeriesNumber order (phases of a
        split series in the order of their splitting key); a patient whose series were all
        left out has an empty list.

    Raises:
        ValueError: ``exclude_series`` is not a regular expression.
        DicomIngestError: a patient with several studies, a series that cannot be split into
            phases, mixed orientations or matrix sizes in one volume, duplicate or missing
            slices (naming the series and the expected vs found spacing).

    Example:
        >>> vols = build_volumes(scan_dicom("exam_dicom/"))  # doctest: +SKIP
    """
    excl = _exclude_pattern(exclude_series)
    by_patient: dict[str, dict[str, list[DicomSlice]]] = defaultdict(lambda: defaultdict(list))
    studies: dict[str, set[str]] = defaultdict(set)
    for s in slices:
        by_patient[s.patient_key][s.series_uid].append(s)
        studies[s.patient_key].add(s.study_uid)
    out: dict[str, list[DicomVolume]] = {}
    for pk, series in by_patient.items():
        if len(studies[pk]) > 1:
            raise DicomIngestError(
                f"patient {pseudonymize([pk], id_prefix='P')[pk]!r} (pseudonym in this message only) has "
                f"{len(studies[pk])} studies; ingest one study per run"
            )
        vols: list[DicomVolume] = []
        for _uid, ss in sorted(series.items(), key=lambda kv: (kv[1][0].series_number, kv[1][0].description)):
            label = _series_label(ss[0])
            if excl is not None and excl.search(ss[0].description):
                logger.info("%s: excluded by --exclude-series (%d slices)", label, len(ss))
                continue
            why = localizer_reason(ss)
            if why:
                logger.info("%s: localizer skipped (%s; %d slices)", label, why, len(ss))
                continue
            phases = _split_phases(ss, label)
            for k, (ph, key) in enumerate(phases):
                vols.append(_volume(ph, label if key is None else f"{label} phase {k + 1} (by {key})", key))
        out[pk] = vols
    return out


# ----------------------------------------------------------------------------- identification


def classify_volume(vol: DicomVolume) -> str:
    """Classify a volume as ``"T2"``, ``"dce"`` or ``"ignore"`` from its header.

    Rules, first match wins: ImageType has ``SUB``/``SUBTRACTION`` or the description contains
    ``sub`` → ignore; description matches ``dwi|diff|adc|trace`` → ignore; description matches
    ``t2|stir|tirm|haste`` or EchoTime ≥ 50 ms → T2; RepetitionTime ≤ 20 ms and EchoTime < 15 ms
    (spoiled gradient echo, the DCE readout) → dce; else ignore.

    Args:
        vol: a volume from :func:`build_volumes`.

    Returns:
        ``"T2"``, ``"dce"`` or ``"ignore"``.

    Example:
        >>> classify_volume(vol)  # doctest: +SKIP
        'dce'
    """
    s = vol.slices[0]
    desc = s.description
    if {"SUB", "SUBTRACTION"} & set(s.image_type) or _SUB_RE.search(desc):
        return "ignore"
    if _IGNORE_RE.search(desc):
        return "ignore"
    te, tr = vol.first("echo_time_ms"), vol.first("repetition_time_ms")
    if _T2_RE.search(desc) or (te is not None and te >= 50.0):
        return T2
    if tr is not None and tr <= 20.0 and (te is None or te < 15.0):
        return "dce"
    return "ignore"


def order_phases(phases: Sequence[DicomVolume], case: str = "input") -> tuple[list[DicomVolume], str, dict[int, float]]:
    """Order DCE phases in time and choose T1pre.

    Ordering key: the first of TriggerTime, AcquisitionTime, TemporalPositionIdentifier that
    every phase has and that differs between all phases (TriggerTime first: Philips keeps
    AcquisitionTime constant within a dynamic scan). A phase's value is the minimum over its
    slices. When ContrastBolusAgent is filled on some phases and empty on others, the empty
    ones must come first; the last of them is T1pre and earlier ones are dropped (warning).

    Args:
        phases: the DCE volumes of one exam.
        case: pseudonymous case name for messages.

    Returns:
        ``(ordered phases starting with T1pre, key used, {index: time in s relative to T1pre}``
        — the dict is empty when the key is TemporalPositionIdentifier, which is not a time).

    Raises:
        DicomIngestError: no phase, no usable ordering key, or contrast tags that disagree with
            the time order.

    Example:
        >>> ordered, key, times = order_phases(dce_vols, case="patient 'P0001'")  # doctest: +SKIP
    """
    phases = list(phases)
    if not phases:
        raise DicomIngestError(f"{case}: no DCE phase (T1-weighted gradient echo, TR <= 20 ms) found")
    key = None
    if len(phases) == 1:
        key, ordered = "single phase", phases
    else:
        for k in ("TriggerTime", "AcquisitionTime", "TemporalPositionIdentifier"):
            vals = [v.time(k) for v in phases]
            if all(v is not None for v in vals) and len(set(vals)) == len(vals):
                key = k
                ordered = [phases[i] for i in np.argsort(np.asarray(vals, dtype=np.float64), kind="stable")]
                break
        if key is None:
            raise DicomIngestError(
                f"{case}: cannot order {len(phases)} DCE phases ({', '.join(v.label for v in phases)}): "
                "TriggerTime, AcquisitionTime and TemporalPositionIdentifier are missing or repeated"
            )
    agents = [bool(v.first("contrast_agent")) for v in ordered]
    if any(agents) and not all(agents):
        first_post = agents.index(True)
        if not all(agents[first_post:]):
            raise DicomIngestError(
                f"{case}: ContrastBolusAgent tags disagree with the time order (by {key}): "
                + ", ".join(f"{v.label}={'agent' if a else 'none'}" for v, a in zip(ordered, agents))
            )
        if first_post > 1:
            logger.warning(
                "%s: %d pre-contrast phases; using the last (%s) as T1pre, dropping %s",
                case, first_post, ordered[first_post - 1].label, [v.label for v in ordered[: first_post - 1]],
            )
            ordered = ordered[first_post - 1 :]
    times: dict[int, float] = {}
    if key in ("TriggerTime", "AcquisitionTime"):
        raw = [v.time(key) for v in ordered]
        scale = 1e-3 if key == "TriggerTime" else 1.0
        times = {i: round((float(t) - float(raw[0])) * scale, 3) for i, t in enumerate(raw)}  # type: ignore[arg-type]
    return ordered, str(key), times


# ----------------------------------------------------------------------------- pixels + writing


def read_volume_pixels(vol: DicomVolume) -> np.ndarray:
    """Read a volume's voxels: array (Columns, Rows, n_slices), modality LUT applied.

    RescaleSlope/RescaleIntercept are applied (result float32) when present and not the
    identity; otherwise the stored integer type is kept (converted to float before any
    arithmetic downstream by the transforms).

    Args:
        vol: a volume from :func:`build_volumes`.

    Returns:
        The voxel array in NIfTI index order (i = column, j = row, k = slice).

    Raises:
        DicomIngestError: naming the file, when its pixel data is truncated, compressed with a
            codec that is not installed, or has the wrong size.

    Example:
        >>> arr = read_volume_pixels(vol)  # doctest: +SKIP
    """
    import pydicom

    with _pydicom_quiet():
        return _read_planes(vol, pydicom)


def _read_planes(vol: DicomVolume, pydicom: Any) -> np.ndarray:
    current: tuple[Path, np.ndarray] | None = None  # one decoded file at a time (multi-frame: all frames)
    planes: list[np.ndarray] = []
    for s in vol.slices:
        try:
            if current is None or current[0] != s.path:
                ds = pydicom.dcmread(str(s.path))
                arr = ds.pixel_array
                slope = _float(ds.get("RescaleSlope"))
                icpt = _float(ds.get("RescaleIntercept"))
                if (slope not in (None, 1.0)) or (icpt not in (None, 0.0)):
                    arr = arr.astype(np.float32) * np.float32(slope if slope is not None else 1.0) + np.float32(icpt or 0.0)
                current = (s.path, arr)
            arr = current[1]
            plane = arr[s.frame] if s.frame is not None else arr
            if plane.shape != s.shape:
                raise ValueError(f"pixel array has shape {plane.shape}, expected (Rows, Columns) = {s.shape}")
        except Exception as e:  # noqa: BLE001 - any decoder failure on an external file names that file
            where = f" frame {s.frame}" if s.frame is not None else ""
            raise DicomIngestError(f"cannot read the pixels of DICOM file {s.path}{where}: {type(e).__name__}: {e}") from None
        planes.append(np.asarray(plane).T)
    return np.stack(planes, axis=-1)


def pseudonymize(patient_keys: Sequence[str], id_prefix: str = "DCE", salt: str | None = None) -> dict[str, str]:
    """Map original PatientIDs to pseudonyms that cannot be rebuilt without a secret.

    Without ``salt``: ``<id_prefix><NNNN>`` (4 digits, more if needed) numbered in a random
    order drawn from the operating system's secure generator (:mod:`secrets`), so knowing
    every original id does not tell which number is whose; the link exists only in the
    mapping file :func:`ingest_dicom` writes when asked (a second run numbers differently).
    With ``salt`` (a secret key): ``H`` + the first 12 hex digits of
    ``HMAC-SHA256(salt, PatientID)``, stable across runs with the same secret and not
    computable without it.

    Args:
        patient_keys: original PatientIDs.
        id_prefix: prefix of sequential pseudonyms; letters, digits, ``_ . -``, starting with
            a letter or digit.
        salt: secret key for stable keyed pseudonyms (non-empty); keep it out of the data,
            e.g. in a file of mode 0600 (:func:`read_secret_file`).

    Returns:
        ``{original: pseudonym}``.

    Raises:
        ValueError: ``id_prefix`` not a valid id start, or ``salt`` empty.

    Example:
        >>> pseudonymize(["A", "B"], id_prefix="X")["A"] in ("X0001", "X0002")
        True
    """
    if not isinstance(id_prefix, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", id_prefix):
        raise ValueError(f"id_prefix must start with a letter or digit and contain only letters, digits, '_', '.', '-', got {id_prefix!r}.")
    if salt is not None and (not isinstance(salt, str) or not salt):
        raise ValueError(f"salt must be a non-empty string, got {salt!r}.")
    keys = sorted(set(patient_keys))
    if salt is not None:
        out = {k: "H" + hmac.new(salt.encode(), k.encode(), hashlib.sha256).hexdigest()[:12] for k in keys}
        if len(set(out.values())) != len(out):  # pragma: no cover - 48-bit collision
            raise ValueError("keyed pseudonyms collide; use a different secret.")
        return out
    width = max(4, len(str(len(keys))))
    ranked = list(keys)
    secrets.SystemRandom().shuffle(ranked)
    return {k: f"{id_prefix}{i + 1:0{width}d}" for i, k in enumerate(ranked)}


def read_secret_file(path: str | Path) -> str:
    """Read a pseudonym secret from a file (first line, surrounding white space removed).

    A file other users can read is accepted with a warning (``chmod 600`` it): the secret is
    what keeps pseudonyms from being recomputed from a list of MRNs.

    Args:
        path: the secret file.

    Returns:
        The secret.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty.

    Example:
        >>> secret = read_secret_file("/secure/dce_monai.secret")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"secret file not found: {p}")
    text = p.read_text(encoding="utf-8", errors="strict").strip()
    secret = text.splitlines()[0].strip() if text else ""
    if not secret:
        raise ValueError(f"secret file {p} is empty; put one line of random text in it (e.g. `openssl rand -hex 32`).")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        logger.warning("secret file %s can be read by other users (mode %04o); chmod 600 it", p, mode)
    return secret


def _write_private_csv(path: Path, rows: list[list[str]]) -> None:
    """Write a CSV readable by its owner only (mode 0600), atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _resample_to(arr: np.ndarray, aff_ras: np.ndarray, ref_shape: tuple[int, ...], ref_aff: np.ndarray) -> np.ndarray:
    """Trilinear resampling onto a reference grid with MONAI ``ResampleToMatch``."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import ResampleToMatch

    src = MetaTensor(torch.as_tensor(arr.astype(np.float32))[None], affine=torch.as_tensor(aff_ras))
    dst = MetaTensor(torch.zeros((1, *ref_shape)), affine=torch.as_tensor(ref_aff))
    out = ResampleToMatch(mode="bilinear", padding_mode="zeros", dtype=np.float64)(src, dst)
    data = out.as_tensor() if isinstance(out, MetaTensor) else torch.as_tensor(out)
    return np.asarray(data[0].numpy(), dtype=np.float32)


def _same_grid(a: DicomVolume, b: DicomVolume, tol_mm: float = 1e-3) -> bool:
    return a.shape == b.shape and bool(np.allclose(a.affine_ras, b.affine_ras, atol=tol_mm))


def _view(aff: np.ndarray) -> str:
    n = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(n)))]


def ingest_dicom(
    dicom_dir: str | Path,
    out_dir: str | Path,
    id_prefix: str = "DCE",
    salt: str | None = None,
    mapping: str | Path | None = None,
    resample: bool = False,
    skip_unreadable: bool = False,
    dataset_name: str = "dicom-ingest",
    exclude_series: str | None = None,
    skip_burned_in: bool = False,
) -> Path:
    """Convert a DICOM folder into NIfTI files per sequence and a cohort manifest.

    See the module docstring for the grouping, geometry, identification and ordering rules.

    Args:
        dicom_dir: folder of DICOM files (any nesting and file names).
        out_dir: output folder; receives ``<pid>/<pid>_<SEQ>.nii.gz`` and ``manifest.json``.
        id_prefix: prefix of sequential pseudonyms (ignored with ``salt``); numbered in a
            random order (see :func:`pseudonymize`).
        salt: secret key for stable keyed pseudonyms ``H<12 hex>`` (HMAC-SHA256, see
            :func:`pseudonymize`).
        mapping: CSV file to write ``original_patient_id,pseudonym`` to, readable by its
            owner only (mode 0600); nothing is written without it (and without ``salt`` the
            link back to the original ids is then kept nowhere: a warning says so).
        resample: resample DCE phases whose grid differs from T1pre's (trilinear, MONAI
            ``ResampleToMatch``) instead of raising.
        skip_unreadable: skip (with a warning) files that cannot be parsed.
        dataset_name: ``dataset.name`` of the manifest.
        exclude_series: regular expression; series whose SeriesDescription matches it
            (``re.search``, case-insensitive) are left out before any volume is built, e.g.
            ``"non.?fs|nfs"`` for a non-fat-suppressed T1 acquired on another grid before the
            dynamic run. Localizers are always left out (:func:`localizer_reason`).
        skip_burned_in: leave out images that declare burned-in annotation instead of
            refusing the folder.

    Returns:
        Path of the written manifest.

    Raises:
        FileNotFoundError: ``dicom_dir`` does not exist.
        ValueError: ``id_prefix``, ``salt`` or ``exclude_series`` invalid.
        DicomIngestError: unreadable file, burned-in annotation (without ``skip_burned_in``),
            missing slice, unsplittable series, no DCE phase, DCE phases on different grids
            without ``resample`` (each naming the file, series or pseudonymous patient).

    Example:
        >>> ingest_dicom("exam_dicom/", "cohort/", id_prefix="SITE1_")  # doctest: +SKIP
        PosixPath('cohort/manifest.json')
    """
    pseudonymize([], id_prefix=id_prefix, salt=salt)  # validate the options before any work
    excl = _exclude_pattern(exclude_series)
    out = Path(out_dir)
    slices = scan_dicom(dicom_dir, skip_unreadable=skip_unreadable, skip_burned_in=skip_burned_in)
    vols_by_patient = build_volumes(slices, exclude_series=excl)
    ids = pseudonymize(list(vols_by_patient), id_prefix=id_prefix, salt=salt)
    patients: list[dict[str, Any]] = []
    for pk, vols in sorted(vols_by_patient.items(), key=lambda kv: ids[kv[0]]):
        pid = ids[pk]
        case = f"patient {pid!r}"
        kinds = [classify_volume(v) for v in vols]
        for v, k in zip(vols, kinds):
            v.kind = k
            logger.info("%s: %s -> %s (%s, %d slices)", case, v.label, k, "x".join(map(str, v.shape[:2])), v.shape[2])
        ordered, key, times = order_phases([v for v, k in zip(vols, kinds) if k == "dce"], case)
        t2s = [v for v, k in zip(vols, kinds) if k == T2]
        if len(t2s) > 1:
            logger.warning("%s: %d T2 candidates; using the first (%s), ignoring %s", case, len(t2s), t2s[0].label, [v.label for v in t2s[1:]])
        ref = ordered[0]
        for v in ordered[1:]:
            if not _same_grid(v, ref) and not resample:
                raise DicomIngestError(
                    f"{case}: DCE phases on different grids: {ref.label} has shape {ref.shape} but {v.label} has "
                    f"{v.shape} (affines differ by up to {np.abs(v.affine_ras - ref.affine_ras).max():.4g} mm); "
                    "pass --resample to resample them to the T1pre grid"
                )
        names = [PRE] + [post_name(i) for i in range(1, len(ordered))]
        pdir = out / pid
        pdir.mkdir(parents=True, exist_ok=True)
        seqs: dict[str, str] = {}
        todo = list(zip(names, ordered)) + ([(T2, t2s[0])] if t2s else [])
        for name, v in todo:
            arr = read_volume_pixels(v)
            if not _same_grid(v, ref):
                logger.info("%s: %s resampled to the T1pre grid", case, name)
                arr = _resample_to(arr, v.affine_ras, ref.shape, ref.affine_ras)
            rel = f"{pid}/{pid}_{name}.nii.gz"
            write_nifti(arr, ref.affine_ras, out / rel)
            seqs[name] = rel
        spacing = np.linalg.norm(ref.affine_ras[:3, :3], axis=0)
        exam: dict[str, Any] = {"sequences": seqs}
        if times:
            exam["acquisition_times_s"] = {names[i]: t for i, t in times.items()}
        exam["spacing_mm"] = [round(float(x), 6) for x in spacing]
        fs = ref.first("field_strength_t")
        if fs:
            exam["field_strength_t"] = float(fs)
        exam["view"] = _view(ref.affine_ras)
        if ref.first("manufacturer"):
            exam["scanner"] = str(ref.first("manufacturer"))
        patients.append({"patient_id": pid, "exam": exam, "lesions": []})
        logger.info("%s: wrote %s (ordered by %s)", case, sorted(seqs), key)
    manifest = save_manifest(
        {
            "schema_version": "1.0",
            "dataset": {"name": dataset_name, "source": "DICOM ingest (dce-monai ingest)"},
            "patients": patients,
        },
        out / "manifest.json",
    )
    if mapping is not None:
        rows = [["original_patient_id", "pseudonym"]] + [[k, ids[k]] for k in sorted(ids, key=ids.get)]  # type: ignore[arg-type]
        _write_private_csv(Path(mapping), rows)
        logger.info("original id -> pseudonym table written to %s (mode 0600)", mapping)
    elif salt is None:
        logger.warning(
            "pseudonyms were numbered in a random order and no --mapping was written: the link back to the "
            "original patients is kept nowhere, and another ingest numbers them differently "
            "(use --secret-file for stable pseudonyms, --mapping to keep the table)"
        )
    return manifest


# ----------------------------------------------------------------------------- CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai ingest DICOM_DIR OUT_DIR [--id-prefix P | --secret-file F] [--mapping F] [--resample] ...``."""
    parser.add_argument("dicom_dir", help="folder of DICOM files (searched recursively)")
    parser.add_argument("out_dir", help="output folder: <pid>/<pid>_<SEQ>.nii.gz and manifest.json")
    parser.add_argument("--id-prefix", default="DCE", help="prefix of pseudonyms numbered in a random order (default DCE -> DCE0001)")
    parser.add_argument(
        "--secret-file", default=None, metavar="PATH",
        help="file holding the secret key for stable keyed pseudonyms H<12 hex> (HMAC-SHA256; keep it mode 0600, apart from the data)",
    )
    parser.add_argument("--salt", default=None, help="the secret key itself (visible in the process list and shell history: prefer --secret-file or env DCE_MONAI_SALT)")
    parser.add_argument("--mapping", default=None, help="write original PatientID -> pseudonym to this CSV, mode 0600 (kept apart from the data)")
    parser.add_argument("--resample", action="store_true", help="resample DCE phases on another grid to T1pre's (trilinear)")
    parser.add_argument("--skip-unreadable", action="store_true", help="skip unreadable files with a warning instead of stopping")
    parser.add_argument("--dataset-name", default="dicom-ingest", help="dataset.name in the manifest")
    parser.add_argument("--exclude-series", default=None, metavar="REGEX", help="leave out series whose SeriesDescription matches REGEX (case-insensitive), before volumes are built")
    parser.add_argument("--skip-burned-in", action="store_true", help="leave out images that declare BurnedInAnnotation YES instead of stopping")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai ingest``; print the manifest path and the sequences per patient.

    Returns:
        0 on success (errors are raised as :class:`DicomIngestError`, a ``ValueError``, which
        the ``dce-monai`` entry point prints without a traceback and turns into exit code 2).
    """
    secret_file = getattr(args, "secret_file", None)
    if secret_file is not None and args.salt is not None:
        raise ValueError("give the pseudonym secret once: --secret-file or --salt, not both.")
    if secret_file is not None:
        salt: str | None = read_secret_file(secret_file)
    else:
        salt = args.salt if args.salt is not None else os.environ.get("DCE_MONAI_SALT") or None
    path = ingest_dicom(
        args.dicom_dir,
        args.out_dir,
        id_prefix=args.id_prefix,
        salt=salt,
        mapping=args.mapping,
        resample=args.resample,
        skip_unreadable=args.skip_unreadable,
        dataset_name=args.dataset_name,
        exclude_series=args.exclude_series,
        skip_burned_in=getattr(args, "skip_burned_in", False),
    )
    from dce_monai.data.manifest import load_manifest

    m = load_manifest(path)
    for p in m.patients:
        print(f"{p['patient_id']}: {', '.join(sorted(p['exam']['sequences']))}")
    print(f"manifest: {path}")
    return 0

