"""DICOM scan pass: read every header of a folder into :class:`DicomSlice` records.

Step 1 of the ingest (see :mod:`dce_monai.data.dicom`): parse each file with
``stop_before_pixels=True``, check its geometry attributes (an error naming the file, or a
skip with ``skip_unreadable``), refuse burned-in annotation, read enhanced multi-frame files
frame by frame, and keep pydicom's warnings (which quote header values) off the output.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# one logger for the whole package: users and tests filter on "dce_monai.data.dicom"
logger = logging.getLogger("dce_monai.data.dicom")

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
