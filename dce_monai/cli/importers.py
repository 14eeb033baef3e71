"""``dce-monai import FORMAT SOURCE --out manifest.json``: real dataset layouts to a manifest.

Formats: ``mama-mia``, ``generic`` (mapping CSV) and ``breastdcedl``; the readers are in
:mod:`dce_monai.data.importers`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dce_monai.data.importers import (
    apply_target,
    breastdcedl_manifest,
    column_key,
    generic_manifest,
    mama_mia_manifest,
    read_breastdcedl,
    rows_by_id,
    target_values,
)
from dce_monai.data.manifest import rebase

__all__ = ["add_cli_arguments", "cli_main"]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai import {mama-mia,generic,breastdcedl} SRC --out manifest.json``."""
    parser.add_argument("format", choices=("mama-mia", "generic", "breastdcedl"), help="source layout")
    parser.add_argument("source", help="MAMA-MIA root folder, mapping CSV, or BreastDCEDL metadata CSV")
    parser.add_argument("--out", required=True, help="manifest to write")
    parser.add_argument(
        "--target",
        default=None,
        help="endpoint to train on: a 0/1 column of the clinical table (her2, pcr, hr, er, pr, ...), a derived "
        "<event>_<N>y (recurrence_5y, metastasis_3y, death_5y) or malignant (lesion level, generic only). "
        "Required for mama-mia and breastdcedl; generic without it keeps every patient (target malignant). Patients without the target are listed and left out.",
    )
    parser.add_argument("--clinical", help="clinical table (.xlsx or .csv): MAMA-MIA's (default: found in the root) or one for generic")
    parser.add_argument("--id-column", default="patient_id", help="patient id column of --clinical (default patient_id)")
    parser.add_argument("--image-root", help="BreastDCEDL image folder (without it only the report is printed)")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai import``: write the manifest, list skipped cases, return 0.

    When the manifest is written outside the source folder its paths are made absolute so
    they stay valid. Bad sources raise ``ValueError``/``FileNotFoundError``, which
    ``dce-monai`` prints as a message with exit code 2.
    """
    from dce_monai.data.manifest import save_manifest

    skipped: list = []
    if (args.format == "mama-mia" or (args.format == "breastdcedl" and args.image_root)) and not args.target:
        raise ValueError(f"import {args.format}: --target is required (e.g. --target her2); the cohort's endpoints are patient-level.")
    if args.format == "mama-mia":
        data, skipped = mama_mia_manifest(args.source, args.target, args.clinical, id_column=args.id_column)
        base = Path(args.source)
    elif args.format == "generic":
        data = generic_manifest(args.source)
        target = args.target
        values = None
        if target not in (None, "malignant"):
            if not args.clinical:
                raise ValueError(f"import generic: target {target!r} is a patient endpoint; pass --clinical TABLE with a {args.id_column!r} column.")
            rows = rows_by_id(args.clinical, args.id_column)
            values = target_values(rows, target, str(args.clinical))
        if target is not None:
            skipped = apply_target(data, target, values)
        base = Path(args.source).parent
    else:
        records, report = read_breastdcedl(args.source)
        print(f"{report['rows']} rows read, {len(records)} usable, {len(report['skipped'])} skipped")
        for row, pid, why in report["skipped"]:
            print(f"  skipped row {row} ({pid}): {why}")
        print("blank cells per column: " + ", ".join(f"{k}={v}" for k, v in sorted(report["partial"].items())))
        if not args.image_root:
            print("no --image-root: no manifest written")
            return 0
        data, skipped = breastdcedl_manifest(records, args.image_root)
        values = target_values({r["pid"]: {column_key(k): v for k, v in r.items()} for r in records}, args.target, str(args.source))
        skipped += apply_target(data, args.target, values)
        base = Path(args.image_root)
    if base.resolve() != Path(args.out).parent.resolve():
        rebase(data, base)
    for pid, why in skipped:
        print(f"  skipped {pid}: {why}")
    path = save_manifest(data, args.out)
    print(f"{len(data['patients'])} patient(s) written to {path} (target {data['dataset'].get('target', 'malignant')!r}); {len(skipped)} skipped")
    return 0
