"""Coverage of the AUC confidence intervals of ``dce_monai.metrics.stats`` on simulated lesions.

Prints the markdown table of docs/statistics.md:

    PYTHONPATH=. .venv/bin/python docs/statistics_coverage.py --reps 200 --n-boot 400

Each replicate draws a cohort, computes every interval and checks whether it holds the true
AUC. Two cohorts: one lesion per patient (independent lesions), and three lesions per patient
sharing the patient's label and a patient effect on the score (clustered lesions, e.g. a
patient-level endpoint such as HER2 scored per lesion).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.stats import norm

from dce_monai.metrics.stats import bootstrap_ci, delong_ci


def cohort(rng: np.random.Generator, patients: int, per_patient: int, sd_patient: float, sd_lesion: float, delta: float):
    """Labels, scores and patient ids; score = delta * label + patient effect + lesion noise."""
    y_pat = rng.integers(0, 2, patients)
    y_pat[:2] = [0, 1]
    u = rng.normal(0.0, sd_patient, patients)
    y = np.repeat(y_pat, per_patient)
    s = delta * y + np.repeat(u, per_patient) + rng.normal(0.0, sd_lesion, y.size)
    return y, s, np.repeat(np.arange(patients), per_patient)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n-boot", type=int, default=400)
    ap.add_argument("--patients", type=int, default=40)
    args = ap.parse_args()
    scenarios = {
        "1 lesion per patient": {"per_patient": 1, "sd_patient": 0.0, "sd_lesion": 1.0, "delta": 1.0},
        "3 lesions per patient, shared label and patient effect": {"per_patient": 3, "sd_patient": 0.9, "sd_lesion": 0.45, "delta": 1.0},
    }
    methods = {
        "DeLong": lambda y, s, g, seed: delong_ci(y, s),
        "bootstrap over lesions": lambda y, s, g, seed: bootstrap_ci(y, s, n_boot=args.n_boot, seed=seed),
        "stratified bootstrap over lesions": lambda y, s, g, seed: bootstrap_ci(y, s, n_boot=args.n_boot, seed=seed, stratified=True),
        "bootstrap over patients": lambda y, s, g, seed: bootstrap_ci(y, s, n_boot=args.n_boot, seed=seed, groups=g),
        "stratified bootstrap over patients": lambda y, s, g, seed: bootstrap_ci(y, s, n_boot=args.n_boot, seed=seed, groups=g, stratified=True),
    }
    print(f"{args.reps} replicates, {args.patients} patients, {args.n_boot} bootstrap resamples; nominal coverage 0.95\n")
    print("| cohort | true AUC | method | coverage | mean width |")
    print("|---|---:|---|---:|---:|")
    for name, sc in scenarios.items():
        true_auc = float(norm.cdf(sc["delta"] / math.sqrt(2 * (sc["sd_patient"] ** 2 + sc["sd_lesion"] ** 2))))
        for mname, fn in methods.items():
            rng = np.random.default_rng(0)
            hit, width = 0, 0.0
            for rep in range(args.reps):
                y, s, g = cohort(rng, args.patients, **sc)
                lo, hi = fn(y, s, g, rep)
                hit += lo <= true_auc <= hi
                width += hi - lo
            print(f"| {name} | {true_auc:.3f} | {mname} | {hit / args.reps:.3f} | {width / args.reps:.3f} |")


if __name__ == "__main__":
    main()
