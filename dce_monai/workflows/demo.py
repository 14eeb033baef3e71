"""``dce-monai demo``: both papers end to end on a phantom cohort, at CPU-sized settings.

Steps (each writes a marker ``steps/<name>.json`` with its settings and seconds when it
finishes, so an interrupted demo resumes at the first unfinished step; the bundle training
itself also resumes from its last checkpoint):

1. ``cohort``: a demo-size phantom cohort (NIfTI + manifest), validated.
2. ``folds``: patient-wise stratified folds shared by every experiment below.
3. ``transfer_resnet34``: the seed 1 bundle trained through MONAI's ``ConfigWorkflow`` on
   fold 0, evaluated, and its inference config run on the held-out fold.
4. ``compare_masking``: seed 2's experiment (no_mask / mask_only / mask_guided) through the
   seed 2 bundle, with CAM overlays of held-out lesions.
5. ``search_channels``: seed 1's search over 8 of the 35 triplets, CPU-scaled (small input,
   one epoch), merged into the ranked table.
6. ``baseline_kinetics``: kinetic features + logistic regression / gradient boosting.
7. ``report``: Markdown + HTML with tables, ROC curves, ranking, kinetic curves, CAMs.

The settings are far below the papers' (see :data:`DEMO_SETTINGS`): the demo shows that
everything runs and what the outputs look like; its numbers are not results. The full
settings and what they give are in ``docs/results.md``.

Repeatability: float sums that are split differently round differently, and a few training
steps from random weights amplify last-bit differences into other probabilities and AUCs. Two
things decide the split besides the code: the number of threads and the CPU instructions the
kernels use (oneDNN's convolutions run AVX-512 code on CPUs that have it, AVX2 code on others).
So every step runs with a fixed number of torch/BLAS/OpenMP threads (``threads``, default 2,
whatever the machine's core count), and ``cpu_isa="avx2"`` (the CLI's default) caps oneDNN,
ATen and MKL at AVX2 code (environment variables ``ONEDNN_MAX_CPU_ISA``,
``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``; they act only before the process's first
convolution, hence set first thing). With both, the numbers are bitwise the same on every
x86-64 CPU with AVX2 for the same seed, thread count and torch build; ``demo_summary.json``
records them under ``environment``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AVX2_ENV", "DEMO_SETTINGS", "STEPS", "add_cli_arguments", "cli_main", "environment", "limit_cpu_isa", "run_demo"]

#: CPU-sized settings of every step (the papers' are in the bundles' defaults and the CLIs).
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "cohort": {"size": "demo"},
    "folds": {"k": 3},
    "transfer_resnet34": {"max_epochs": 3, "image_size": 64, "batch_size": 16},
    # few steps: a larger learning rate than seed 2's 2.5e-5 so that the CAMs move at all
    "compare_masking": {"max_epochs": 5, "spatial_size": [32, 32, 16], "batch_size": 4, "vgg_channels": [8, 16, 32, 32],
                        "learning_rate": 1e-3},
    # 8 of the 35 triplets (seed 1's top three, T2-based and consecutive-phase ones): all 35 take
    # about 12 minutes at these settings on 2 CPU cores; `dce-monai search-channels` runs them all
    "search_channels": {"max_epochs": 1, "image_size": 32, "batch_size": 32, "group_size": 4, "n_boot": 200,
                        "triplets": [["T1pre", "T1post3", "sub"], ["T1post3", "T1post4", "sub"], ["T1pre", "T1post2", "T1post3"],
                                     ["T2", "T1pre", "sub"], ["T2", "T1post4", "sub"], ["T1post1", "T1post2", "T1post3"],
                                     ["T2", "T1pre", "T1post1"], ["T1post2", "T1post3", "T1post4"]]},
    "baseline_kinetics": {"n_boot": 500},
    "report": {"n_boot": 200},
}
STEPS = tuple(DEMO_SETTINGS)

def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _transfer_bundle(out: Path, manifest: Path, folds: Path, seed: int) -> dict[str, Any]:
    """Seed 1 bundle: train on folds 1..k-1 (resumable; the last epoch is kept), then predict the held-out fold 0 once."""
    from dce_monai.workflows.bundle_utils import bundle_workflow

    s = DEMO_SETTINGS["transfer_resnet34"]
    root = out / "transfer_resnet34"
    common = {"manifest": str(manifest), "folds": str(folds),
              "fold": 0, "seed": seed, "output_dir": str(root / "train"), "ckpt_dir": str(root / "models"),
              "validate_data": False,  # validated in the folds step
              "image_size": s["image_size"], "batch_size": s["batch_size"]}
    wf = bundle_workflow("breast_dce_transfer_resnet34", ["train.json"], "train", max_epochs=s["max_epochs"], **common)
    wf.run()
    wf.finalize()
    inf = bundle_workflow("breast_dce_transfer_resnet34", ["inference.json"], "infer",
                           **{**common, "output_dir": str(root / "inference"), "split": "test", "predictions_split": "test",
                              "predictions_fold": common["fold"]})
    inf.run()
    inf.finalize()
    from dce_monai.metrics.results import read_predictions
    from dce_monai.metrics.stats import binary_metrics

    rows = read_predictions(root / "inference" / "predictions.csv")
    metrics = binary_metrics([r["label"] for r in rows], [r["prob"] for r in rows])
    return {"held_out": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, "predictions": str(root / "inference" / "predictions.csv"),
            "tensorboard": str(root / "train")}


def _compare_masking(out: Path, manifest: Path, folds: Path, seed: int) -> dict[str, Any]:
    from dce_monai.workflows.compare_masking import run_compare_masking

    s = dict(DEMO_SETTINGS["compare_masking"])
    summary, md = run_compare_masking(manifest, out / "compare_masking", folds=folds, seed=seed, overrides=s)
    return {"table": str(md), "rows": summary}


def _search_channels(out: Path, manifest: Path, k: int, seed: int) -> dict[str, Any]:
    from dce_monai.workflows.search_channels import merge, run_search

    s = dict(DEMO_SETTINGS["search_channels"])
    n_boot = s.pop("n_boot")
    run = run_search(manifest, out / "search_channels", k=k, seed=seed, workers=1, **s)
    paths = merge(out / "search_channels", n_boot=n_boot, seed=seed)
    return {"cells_run": run["cells_run"], "ranking": str(paths["ranking_md"])}


def _baseline(out: Path, manifest: Path, folds: Path, seed: int) -> dict[str, Any]:
    from dce_monai.workflows.baseline_kinetics import run_baseline

    paths = run_baseline(manifest, out / "baseline_kinetics", seed=seed, folds_file=folds, **DEMO_SETTINGS["baseline_kinetics"])
    return {"table": str(paths["table_md"])}


def _report(out: Path, seed: int) -> dict[str, Any]:
    from dce_monai.workflows.report import write_report

    paths = write_report(out, out / "report", n_boot=DEMO_SETTINGS["report"]["n_boot"], seed=seed, progress=False)
    return {name: str(p) for name, p in paths.items()}


def environment(threads: int, cpu_isa: str = "native") -> dict[str, Any]:
    """What the demo's numbers depend on besides its settings: versions, CPU instructions, threads."""
    import platform

    import numpy as np
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_isa": cpu_isa,
            "isa_environment": {k: os.environ.get(k) for k in AVX2_ENV}, "threads": threads}


#: Environment variables that cap the CPU instructions of torch's kernels at AVX2 (see the module docstring).
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def limit_cpu_isa(cpu_isa: str) -> None:
    """``"avx2"``: set :data:`AVX2_ENV` in this process's environment; ``"native"``: leave it alone.

    Effective only before the process runs its first convolution / vectorised kernel.

    Raises:
        ValueError: unknown ``cpu_isa``, or one of the variables already set to another value.
    """
    from monai.utils import look_up_option

    if look_up_option(cpu_isa, ("avx2", "native")) == "native":
        return
    clash = {k: os.environ[k] for k, v in AVX2_ENV.items() if os.environ.get(k, v).lower() != v.lower()}
    if clash:
        raise ValueError(f"cpu_isa='avx2' conflicts with the environment {clash}; unset them or use cpu_isa='native'.")
    os.environ.update(AVX2_ENV)


def run_demo(out: str | Path, patients: int = 24, seed: int = 0, workers: int = 2, steps: tuple[str, ...] = STEPS,
             threads: int = 2, cpu_isa: str = "native") -> dict[str, Any]:
    """Run the demo into ``out``; return a summary (also written to ``demo_summary.json``).

    Args:
        out: output folder (created; re-running resumes).
        patients: phantom patients.
        seed: cohort, fold, training and bootstrap seed.
        workers: processes generating the cohort.
        steps: the steps to run (``cohort`` and ``folds`` always run first; default: all).
        threads: torch/BLAS/OpenMP threads of every step (the numbers depend on it; see the module docstring).
        cpu_isa: ``"avx2"`` caps torch's CPU kernels at AVX2 (:func:`limit_cpu_isa`; call
            ``run_demo`` before anything else computes in the process) so that any AVX2 CPU gives
            the same numbers; ``"native"`` (default from Python) leaves the environment alone.

    Returns:
        ``{"out": ..., "steps": {name: {"seconds": ..., ...}}, "report": ..., "tensorboard": ..., "seconds": ...}``.

    Raises:
        ValueError: an unknown step name, ``threads`` < 1, a bad or conflicting ``cpu_isa``; the
            cohort failing validation.
    """
    from dce_monai.workflows.baseline_kinetics import limit_threads

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}.")
    limit_cpu_isa(cpu_isa)
    with limit_threads(threads):
        return _run_demo(out, patients, seed, workers, steps, threads, cpu_isa)


def _run_demo(out: str | Path, patients: int, seed: int, workers: int, steps: tuple[str, ...], threads: int, cpu_isa: str) -> dict[str, Any]:
    from dce_monai.data.folds import patient_folds, write_folds
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.data.validate import require_valid
    from dce_monai.metrics.results import HELD_OUT_SPLITS

    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise ValueError(f"unknown demo steps {bad}; choose from {list(STEPS)}.")
    t0 = time.perf_counter()
    out = Path(out).resolve()
    marks = out / "steps"
    marks.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "cohort" / "manifest.json"
    folds_path = out / "folds.json"
    k = int(DEMO_SETTINGS["folds"]["k"])

    def cohort() -> dict[str, Any]:
        generate_cohort(out / "cohort", n_patients=patients, seed=seed, size="demo", workers=workers)
        return {"patients": patients}

    def validate_and_fold() -> dict[str, Any]:
        man = require_valid(manifest_path)  # the check every workflow runs first
        lesions = man.to_datalist(level="lesion")
        write_folds(patient_folds(lesions, k=k, seed=seed), folds_path, k=k, seed=seed)
        return {"n_patients": len(man.patients), "n_lesions": len(lesions),
                "n_malignant_lesions": int(sum(int(d["label"]) for d in lesions))}

    actions: dict[str, Callable[[], dict[str, Any]]] = {
        "cohort": cohort,
        "folds": validate_and_fold,
        "transfer_resnet34": lambda: _transfer_bundle(out, manifest_path, folds_path, seed),
        "compare_masking": lambda: _compare_masking(out, manifest_path, folds_path, seed),
        "search_channels": lambda: _search_channels(out, manifest_path, k, seed),
        "baseline_kinetics": lambda: _baseline(out, manifest_path, folds_path, seed),
        "report": lambda: _report(out, seed),
    }
    wanted = [s for s in STEPS if s in ("cohort", "folds") or s in steps]
    done: dict[str, Any] = {}
    for i, name in enumerate(wanted, 1):
        mark = marks / f"{name}.json"
        settings = {"settings": DEMO_SETTINGS[name], "patients": patients, "seed": seed, "threads": threads, "cpu_isa": cpu_isa,
                    "held_out_splits": list(HELD_OUT_SPLITS)}
        if mark.is_file():
            prev = json.loads(mark.read_text())
            if prev.get("held_out_splits") != settings["held_out_splits"]:
                raise ValueError(f"{mark} was written by an older dce_monai version, which named the held-out fold `val` "
                                 f"(now `test`; held-out splits {list(HELD_OUT_SPLITS)}): its outputs are not reused; "
                                 f"use another --out folder.")
            if {key: prev.get(key) for key in settings} == json.loads(json.dumps(settings)):
                _say(f"[{i}/{len(wanted)}] {name}: done before ({prev['seconds']} s), skipped")
                done[name] = prev
                continue
            raise ValueError(f"{out} holds a demo run with other settings ({mark}); use another --out folder.")
        _say(f"[{i}/{len(wanted)}] {name} ...")
        ts = time.perf_counter()
        result = actions[name]()
        rec = {**settings, **result, "seconds": round(time.perf_counter() - ts, 1)}
        tmp = mark.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1, default=str))
        tmp.replace(mark)
        done[name] = rec
        _say(f"[{i}/{len(wanted)}] {name}: {rec['seconds']} s")
    summary = {"out": str(out), "steps": done, "seconds": round(time.perf_counter() - t0, 1), "environment": environment(threads, cpu_isa),
               "report": str(out / "report" / "report.html") if "report" in done else None,
               "tensorboard": f"tensorboard --logdir {out}"}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    _say(f"done in {summary['seconds']} s")
    if summary["report"]:
        _say(f"report: {summary['report']}")
    _say(f"training curves, CAMs, PR curves and the channel-search HParams: {summary['tensorboard']}")
    return summary


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai demo``."""
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output); re-running resumes")
    parser.add_argument("--patients", type=int, default=24, help="phantom patients (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of cohort, folds and training (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="cohort generator processes (default: 2)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch/BLAS/OpenMP threads (default 2; the same value gives the same numbers on CPUs of the same instruction set)")
    parser.add_argument("--cpu-isa", choices=("avx2", "native"), default="avx2",
                        help="avx2 (default): cap torch's CPU kernels at AVX2 so every AVX2 CPU gives the same numbers; native: fastest")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS),
                        help="steps to run (cohort and folds always run); default: all")


def cli_main(args: argparse.Namespace) -> int:
    """Run the demo. Returns 0."""
    if args.patients < 2 * DEMO_SETTINGS["folds"]["k"]:
        raise ValueError(f"--patients must be >= {2 * DEMO_SETTINGS['folds']['k']} for {DEMO_SETTINGS['folds']['k']} folds, got {args.patients}.")
    run_demo(args.out, patients=args.patients, seed=args.seed, workers=args.workers, steps=tuple(args.steps), threads=getattr(args, "threads", 2),
             cpu_isa=getattr(args, "cpu_isa", "avx2"))
    return 0
