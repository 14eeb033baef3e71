"""``dce-monai validate MANIFEST``: check a manifest and every file it names (:mod:`dce_monai.data.validate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dce_monai.data.manifest import load_manifest, rebase, save_manifest
from dce_monai.data.validate import DEFAULT_MAX_BYTES, validate_cohort

__all__ = ["add_cli_arguments", "cli_main"]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai validate MANIFEST [--skip-invalid --out valid.json] [--json]``."""
    parser.add_argument("manifest", help="cohort manifest (JSON)")
    parser.add_argument("--skip-invalid", action="store_true", help="write a manifest of the valid cases (needs --out)")
    parser.add_argument("--out", help="where --skip-invalid writes the manifest of valid cases")
    parser.add_argument("--tol-mm", type=float, default=1e-3, help="affine tolerance, mm (default 1e-3)")
    parser.add_argument(
        "--max-file-mb", type=float, default=DEFAULT_MAX_BYTES / 2**20,
        help=f"refuse a file whose header declares more than this many MiB (default {DEFAULT_MAX_BYTES // 2**20}; gzip bombs)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai validate``; print every problem.

    Returns:
        0 when the cohort is valid (or, with ``--skip-invalid``, when at least one patient is
        valid and its manifest was written), 1 when problems were found, 2 for bad options.
    """
    if args.skip_invalid and not args.out:
        print("error: --skip-invalid needs --out PATH for the manifest of valid cases")
        return 2
    mb = getattr(args, "max_file_mb", DEFAULT_MAX_BYTES / 2**20)
    if not mb > 0:
        print(f"error: --max-file-mb must be > 0, got {mb}")
        return 2
    report = validate_cohort(args.manifest, tol_mm=args.tol_mm, max_bytes=int(mb * 2**20))
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report)
    if args.skip_invalid and report.valid_patients:
        m = load_manifest(args.manifest)
        out = Path(args.out)
        kept = m.select(report.valid_patients)
        rebased = [json.loads(json.dumps(p)) for p in kept.patients]
        rebase({"patients": rebased}, m.root)
        save_manifest({"schema_version": "1.0", "dataset": m.dataset, "patients": rebased}, out)
        print(f"{len(rebased)} valid patient(s) written to {out}; {len(report.invalid_patients)} skipped: {report.invalid_patients}")
        return 0
    if args.skip_invalid:
        print("no valid patient: no manifest written")
    return 0 if report.ok else 1
