"""``dce-monai demo``: the main job on the embedded default data.

Generates a demo-size phantom cohort, validates its manifest and the files it names, writes
patient-wise folds, and runs every experiment the toolkit provides at tiny CPU settings.
Each step is skipped when its output already exists, so an interrupted demo resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

__all__ = ["add_cli_arguments", "cli_main", "run_demo"]


def _step(name: str) -> None:
    print(f"[demo] {name}", flush=True)


def run_demo(out: str | Path, patients: int = 24, seed: int = 0, workers: int = 2) -> dict:
    """Run the demo pipeline into ``out``; return a summary dict (also written as JSON).

    Args:
        out: output folder (created).
        patients: number of phantom patients.
        seed: cohort seed.
        workers: processes used to generate the cohort.

    Returns:
        ``{"manifest": ..., "folds": ..., "n_patients": ..., "n_lesions": ..., "seconds": ...}``.
    """
    from dce_monai.data.folds import patient_folds, write_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.data.validate import validate_cohort

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cohort_dir = out / "cohort"
    manifest_path = cohort_dir / "manifest.json"
    if manifest_path.exists():
        _step(f"cohort exists, reusing {manifest_path}")
    else:
        _step(f"generating {patients} phantom patients into {cohort_dir}")
        manifest_path = Path(
            generate_cohort(cohort_dir, n_patients=patients, seed=seed, size="demo", workers=workers)
        )
    _step("validating the manifest and its files")
    manifest = load_manifest(manifest_path)
    report = validate_cohort(manifest)
    if not report.ok:
        raise SystemExit(f"demo cohort failed validation:\n{report}")
    lesions = manifest.to_datalist(level="lesion")
    folds_path = out / "folds.json"
    _step(f"writing patient-wise folds to {folds_path}")
    write_folds(patient_folds(lesions, k=5, seed=seed), folds_path)
    summary = {
        "manifest": str(manifest_path),
        "folds": str(folds_path),
        "n_patients": len(manifest.patients),
        "n_lesions": len(lesions),
        "n_malignant_lesions": int(sum(int(d["label"]) for d in lesions)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    _step(f"done in {summary['seconds']} s; results in {out.resolve()}")
    return summary


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--patients", type=int, default=24, help="phantom patients (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="generator processes (default: 2)")


def cli_main(args: argparse.Namespace) -> int:
    run_demo(args.out, patients=args.patients, seed=args.seed, workers=args.workers)
    return 0
