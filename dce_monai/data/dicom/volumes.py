"""DICOM volumes: group slices into series and phases, check geometry, read and resample voxels.

Steps 2-3 of the ingest (see :mod:`dce_monai.data.dicom`): slices are grouped by patient and
series (localizers and excluded series left out), a multi-phase series is split into phases,
each volume's slices are sorted along the normal with every gap checked, and its LPS affine
is built; then its voxels are read (modality LUT applied) and, when asked, resampled to a
reference grid.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .deid import pseudonymize
from .scan import DicomIngestError, DicomSlice, _float, _pydicom_quiet

# one logger for the whole package: users and tests filter on "dce_monai.data.dicom"
logger = logging.getLogger("dce_monai.data.dicom")

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GAP_RTOL = 0.05
_LOCALIZER_RE = re.compile(r"locali[sz]er|scout|survey|(?<![a-z])loc(?![a-z])|3[\s_-]*plane|tri[\s_-]*pilot", re.IGNORECASE)


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
