"""DICOM ingest: a DICOM folder in, NIfTI per sequence and a cohort manifest out.

Step 6 of the ingest and the whole chain (see :mod:`dce_monai.data.dicom`):
:func:`ingest_dicom` scans, builds, classifies and orders volumes, pseudonymizes patients,
writes ``<pid>/<pid>_<SEQ>.nii.gz`` on T1pre's grid with :func:`dce_monai.data.io.write_nifti`
and saves ``manifest.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dce_monai.data.io import write_nifti
from dce_monai.data.manifest import save_manifest
from dce_monai.sequences import PRE, T2, post_name

from .deid import _write_private_csv, pseudonymize
from .phases import classify_volume, order_phases
from .scan import DicomIngestError, scan_dicom
from .volumes import _exclude_pattern, _resample_to, _same_grid, _view, build_volumes, read_volume_pixels

# one logger for the whole package: users and tests filter on "dce_monai.data.dicom"
logger = logging.getLogger("dce_monai.data.dicom")


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

    See :mod:`dce_monai.data.dicom` for the grouping, geometry, identification and ordering rules.

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
