#!/usr/bin/env bash
# The seed 2 run behind docs/results.md (the seed 1 and kinetic-baseline figures there come
# from `dce-monai demo`). Resumable: run it again after an interruption.
# Usage: bash docs/results.sh [OUT]   (default OUT=runs/results; about 30 minutes on 2 CPU cores)
set -euo pipefail
OUT=${1:-runs/results}
DCE=${DCE:-.venv/bin/dce-monai}
mkdir -p "$OUT"

# A shortcut (bright blob in the lung region) in 100 % of the malignant training patients and
# in none of the test patients; the three inputs x 3 patient-wise folds of the training cohort,
# each cell also scored on the independent test cohort. Whole-volume input as in seed 2.
[ -f "$OUT/shortcut_cohort/manifest.json" ] || \
  $DCE phantom --out "$OUT/shortcut_cohort" --patients 60 --seed 1 --shortcut-train 1.0 --shortcut-test 0.0
$DCE compare-masking "$OUT/shortcut_cohort/manifest.json" --out "$OUT/compare_masking" --k 3 \
  --max-epochs 30 --spatial-size 64 64 16 --batch-size 10 --vgg-channels 8 16 32 32 \
  --learning-rate 1e-3 --field-of-view volume
$DCE report "$OUT" --out "$OUT/report"
