"""``dce-monai folds MANIFEST``: write patient-wise stratified k-fold splits (:mod:`dce_monai.data.folds`)."""

from __future__ import annotations

import argparse
from typing import Any

from dce_monai.data.folds import check_fold_classes, patient_folds, write_folds

__all__ = ["add_cli_arguments", "cli_main"]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai folds MANIFEST --k 10 --seed 0 --level lesion --out folds.json``."""
    parser.add_argument("manifest", help="cohort manifest (JSON)")
    parser.add_argument("--k", type=int, default=10, help="number of folds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--level",
        choices=("patient", "lesion"),
        default="patient",
        help="records the label is read from: patient (the patient label; every patient is placed) or "
        "lesion (a patient's stratum is its maximum lesion label; patients without lesions are left "
        "out and listed); default patient",
    )
    parser.add_argument("--label", default=None, help="label to stratify by (default: the manifest's target, else malignant)")
    parser.add_argument(
        "--skip-missing-labels", action="store_true", help="leave out cases without the label (they are listed)"
    )
    parser.add_argument("--out", required=True, help="output JSON path")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai folds``: write the folds and return 0.

    Invalid manifests, missing labels and impossible folds raise ``ValueError`` /
    ``ManifestError``, which ``dce-monai`` prints as a message with exit code 2.
    """
    from dce_monai.data.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    report: dict[str, Any] = {}
    records = manifest.to_datalist(
        level=args.level, label=args.label, skip_missing_labels=args.skip_missing_labels, report=report
    )
    if report.get("skipped"):
        print(f"{len(report['skipped'])} case(s) without label {args.label or manifest.target!r} left out: {report['skipped']}")
    if args.level == "lesion":
        no_lesion = [p["patient_id"] for p in manifest.patients if not p["lesions"]]
        if no_lesion:
            print(f"{len(no_lesion)} patient(s) without lesions are in no fold: {no_lesion}")
    folds = patient_folds(records, k=args.k, seed=args.seed)
    label = manifest.target if args.label is None else args.label
    check_fold_classes(records, folds, source=str(args.out))
    write_folds(folds, args.out, seed=args.seed, level=args.level, label=label, manifest=str(args.manifest))
    print(f"{args.k} folds of {sum(map(len, folds))} patients written to {args.out}")
    return 0
