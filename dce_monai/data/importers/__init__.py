"""Importers that turn real dataset layouts into dce_monai manifests (``dce-monai import``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dce_monai.data.manifest import rebase

from .breastdcedl import breastdcedl_manifest, read_breastdcedl
from .generic import generic_manifest
from .mama_mia import mama_mia_manifest

__all__ = ["add_cli_arguments", "breastdcedl_manifest", "cli_main", "generic_manifest", "mama_mia_manifest", "read_breastdcedl", "rebase"]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai import {mama-mia,generic,breastdcedl} SRC --out manifest.json``."""
    parser.add_argument("format", choices=("mama-mia", "generic", "breastdcedl"), help="source layout")
    parser.add_argument("source", help="MAMA-MIA root folder, mapping CSV, or BreastDCEDL metadata CSV")
    parser.add_argument("--out", required=True, help="manifest to write")
    parser.add_argument("--clinical", help="MAMA-MIA clinical CSV")
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
    if args.format == "mama-mia":
        data, skipped = mama_mia_manifest(args.source, args.clinical, id_column=args.id_column)
        base = Path(args.source)
    elif args.format == "generic":
        data = generic_manifest(args.source)
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
        base = Path(args.image_root)
    if base.resolve() != Path(args.out).parent.resolve():
        rebase(data, base)
    for pid, why in skipped:
        print(f"  skipped {pid}: {why}")
    path = save_manifest(data, args.out)
    print(f"{len(data['patients'])} patient(s) written to {path}; {len(skipped)} skipped")
    return 0
