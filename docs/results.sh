#!/usr/bin/env bash
# The runs behind docs/results.md, on phantom cohorts, at the settings stated there.
# Every step is resumable: run the script again after an interruption.
# Usage: bash docs/results.sh [OUT]   (default OUT=runs/results; about 45 minutes on 2 CPU cores)
set -euo pipefail
OUT=${1:-runs/results}
DCE=${DCE:-.venv/bin/dce-monai}
mkdir -p "$OUT"

# Seed 2: a shortcut (bright blob in the lung region) in 100 % of the malignant training
# patients and in none of the test patients; the three inputs x 3 patient-wise folds of the
# training cohort, each cell also scored on the independent test cohort.
[ -f "$OUT/shortcut_cohort/manifest.json" ] || \
  $DCE phantom --out "$OUT/shortcut_cohort" --patients 60 --seed 1 --shortcut-train 1.0 --shortcut-test 0.0
$DCE compare-masking "$OUT/shortcut_cohort/manifest.json" --out "$OUT/compare_masking" --k 3 \
  --epochs 30 --spatial-size 64 64 16 --batch-size 10 --vgg-channels 8 16 32 32 \
  --learning-rate 1e-3 --field-of-view volume

# Seed 1: all 35 triplets x 3 patient-wise folds on a 24-patient phantom cohort, CPU-scaled
# (32x32 network input instead of 224x224, 2 epochs), then the ranked table.
[ -f "$OUT/cohort/manifest.json" ] || $DCE phantom --out "$OUT/cohort" --patients 24 --seed 0
$DCE search-channels "$OUT/cohort/manifest.json" --out "$OUT/search_channels" --k 3 --epochs 2 --image-size 32
$DCE search-channels "$OUT/cohort/manifest.json" --out "$OUT/search_channels" --merge

# The classical yardstick on the same cohort and folds, then one report for everything.
$DCE baseline-kinetics "$OUT/cohort/manifest.json" --out "$OUT/baseline_kinetics" --folds "$OUT/search_channels/folds.json"
$DCE report "$OUT" --out "$OUT/report"
