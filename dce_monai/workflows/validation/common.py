"""Shared pieces of the validation experiments: cached phantom cohorts, the seed 1 search run, tables."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["DEV_TRIED", "fmt", "lesion_scores", "phantom_cohort", "say", "search_curves"]

#: Settings tried before the full runs, and what they gave (the page quotes it).
DEV_TRIED = ("on a separate development cohort (`--signal washout`, tiny grid, 40 patients, seed 100, fold 0 of 3, triplet T1pre, T1post1, T1post4, "
    "batch 16, image 32; never a cohort reported on this page), each one model trained from random weights: lr 1e-2 for 6 epochs (84 SGD steps): "
    "training loss 0.73-2.6, held-out AUC 0.50-0.62 (two folds); lr 1e-3 for 8 epochs (112 steps): loss 0.62-0.86, AUC 0.30; lr 3e-3 for 8 epochs: "
    "loss 0.90-1.06, AUC 0.42; lr 1e-2 for 30 epochs (420 steps): loss 0.66-2.7, unstable, AUC 0.46; lr 3e-3 for 30 epochs (420 steps, x 0.1 after epoch 22): "
    "loss below ln 2 from epoch 11, down to 0.15, held-out AUC 0.83 (460 s for that one model on this machine with another job running). "
    "Learning starts after about 150 steps at lr 3e-3; lr 1e-2 does not settle")


def say(progress: bool, name: str, text: str) -> None:
    """Print one progress line ``[validation:<name>] text`` (flushed) when ``progress``."""
    if progress:
        print(f"[validation:{name}] {text}", flush=True)


def phantom_cohort(out_dir: Path, n_patients: int, seed: int, config: Any, workers: int = 1, progress: bool = True, name: str = "") -> Path:
    """A phantom cohort in ``out_dir``, generated once: reused while its manifest records the same patients, seed and config.

    Returns:
        The manifest path.

    Raises:
        ValueError: ``out_dir`` holds a cohort made with other settings (named), which is never overwritten.
    """
    from dce_monai.data.phantom import generate_cohort

    manifest = out_dir / "manifest.json"
    want = {"seed": seed, "n_patients": n_patients, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}}
    if manifest.is_file():
        gen = json.loads(manifest.read_text()).get("dataset", {}).get("generator", {})
        have = {k: gen.get(k) for k in want}
        if json.loads(json.dumps(have)) == json.loads(json.dumps(want)):
            say(progress, name, f"cohort {out_dir} reused ({n_patients} patients, seed {seed})")
            return manifest
        diff = [k for k in want if json.loads(json.dumps(have[k])) != json.loads(json.dumps(want[k]))]
        raise ValueError(f"{manifest} was generated with other settings ({', '.join(diff)} differ); use another --out folder or delete {out_dir}.")
    t0 = time.perf_counter()
    generate_cohort(out_dir, n_patients, seed=seed, config=config, workers=workers, progress=False)
    say(progress, name, f"cohort {out_dir}: {n_patients} patients, seed {seed}, generated in {time.perf_counter() - t0:.0f} s")
    return manifest


def lesion_scores(predictions: Path, model: str) -> dict[str, tuple[int, float, str]]:
    """``{lesion_id: (label, prob, patient_id)}`` of one model in a predictions CSV.

    Raises:
        ValueError: the file has no row of ``model`` (the models it has are named).
    """
    from dce_monai.metrics.results import read_predictions

    rows = read_predictions(predictions)
    out = {str(r["lesion_id"]): (int(r["label"]), float(r["prob"]), str(r["patient_id"])) for r in rows if r["model"] == model}
    if not out:
        raise ValueError(f"{predictions}: no prediction of model {model!r}; models: {sorted({r['model'] for r in rows})}.")
    return out


def search_curves(search_dir: Path, triplet: Sequence[str], k: int) -> list[dict[str, Any]]:
    """Per-fold learning curves of one triplet from the search's cells (``[{"fold", "train_loss", "held_out_auc", "final_auc"}]``).

    Raises:
        ValueError: a cell without curves (the search ran without ``curves=True``).
    """
    from dce_monai.workflows.search_channels import cell_name

    out = []
    for f in range(k):
        path = search_dir / "cells" / f"{cell_name(triplet, f)}.json"
        cell = json.loads(path.read_text())
        if "curves" not in cell:
            raise ValueError(f"{path} holds no learning curves; rerun the search with curves=True.")
        out.append({"fold": f, **cell["curves"], "final_auc": cell["metrics"]["auc"]})
    return out


def fmt(x: float, nd: int = 3) -> str:
    """A number for a table (``n/a`` for NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"
