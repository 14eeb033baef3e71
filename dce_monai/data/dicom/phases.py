"""DICOM phases: classify volumes (T2, DCE, ignored) and order the DCE phases in time.

Steps 4-5 of the ingest (see :mod:`dce_monai.data.dicom`): :func:`classify_volume` applies
the header rules; :func:`order_phases` chooses the ordering key, T1pre and the acquisition
times written to the manifest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from dce_monai.sequences import T2

from .scan import DicomIngestError
from .volumes import DicomVolume

# one logger for the whole package: users and tests filter on "dce_monai.data.dicom"
logger = logging.getLogger("dce_monai.data.dicom")

_T2_RE = re.compile(r"t2|stir|tirm|haste", re.IGNORECASE)
_IGNORE_RE = re.compile(r"dwi|diff|adc|trace", re.IGNORECASE)
_SUB_RE = re.compile(r"sub", re.IGNORECASE)


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
