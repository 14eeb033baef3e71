#!/usr/bin/env bash
# Planted-truth validation page: runs every experiment (resumable under the run folder) and writes docs/validation.md.
set -euo pipefail
${DCE:-.venv/bin/dce-monai} validation --out "${1:-runs/validation}" --page docs/validation.md
