"""``dce-monai ingest DICOM_DIR OUT_DIR``: DICOM folder to de-identified NIfTI per sequence + manifest.

The work is :func:`dce_monai.data.dicom.ingest_dicom`; this module reads the options, the
pseudonym secret (``--secret-file``, ``--salt`` or the ``DCE_MONAI_SALT`` environment
variable) and prints the sequences written per patient.
"""

from __future__ import annotations

import argparse
import os

from dce_monai.data.dicom import ingest_dicom, read_secret_file

__all__ = ["add_cli_arguments", "cli_main"]


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
