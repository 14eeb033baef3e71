"""The one per-lesion predictions table every experiment writes, and its summary.

Every workflow (bundle inference, channel search, masking comparison, kinetic baseline)
writes its per-lesion probabilities in the same CSV format, so a report, a comparison
between experiments, or a user's own analysis reads them all the same way:

``experiment, model, fold, split, patient_id, lesion_id, label, prob``

- ``experiment``: which study (e.g. ``channel_search``, ``maskguided_vgg3d``);
- ``model``: which model of it (a triplet ``T1pre+T1post3+sub``, a variant ``mask_guided``);
- ``fold``: cross-validation fold index of the model (``-1`` for a single train/test split, or
  no fold: a model applied to a whole cohort);
- ``split``: ``train`` (the model trained on the patient), ``test`` (the patient is in the
  model's held-out cross-validation fold: the reported per-fold result), ``external`` (the
  patient belongs to an independent cohort that no fold trains on, scored by every fold's
  model) or ``inference`` (a model applied to patients that it may have trained on, e.g. bundle
  inference over a whole manifest; never counted as held-out). The inner validation split of
  the training patients (``val``, data layer and bundle configs) is never a result and has no
  rows here; a file with split ``val`` was written by an older version, which called the
  held-out fold ``val`` and compare-masking's independent cohort ``test``, and reading it
  raises :class:`OldSplitNameError`;
- ``label``: 0/1 target of the lesion; ``prob``: positive-class probability after
  per-lesion aggregation (e.g. max over its patches).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dce_monai.metrics.collapse import score_collapse
from dce_monai.metrics.stats import binary_metrics, bootstrap_ci

__all__ = ["COLUMNS", "HELD_OUT_SPLITS", "OLD_SPLIT_NAMES", "SPLITS", "OldSplitNameError", "format_markdown_table", "reject_val_split", "read_predictions", "summarize", "write_predictions", "write_table"]

COLUMNS = ("experiment", "model", "fold", "split", "patient_id", "lesion_id", "label", "prob")
SPLITS = ("train", "test", "external", "inference")
#: Splits reported as held-out: predicted by a model that did not train on the patient
#: (``test``: the held-out fold of cross-validation; ``external``: an independent cohort).
HELD_OUT_SPLITS = ("test", "external")
#: Split values of older versions that mean something else now: ``val`` was their held-out fold.
OLD_SPLIT_NAMES = {"val": "the held-out fold (now `test`; compare-masking's independent cohort, then `test`, is now `external`)"}


class OldSplitNameError(ValueError):
    """A predictions row whose ``split`` is a name of an older version (:data:`OLD_SPLIT_NAMES`).

    Raised instead of reading the row under the new meaning: an old ``val`` row is a held-out
    row, which today's ``val`` (the inner validation split, never a result) is not.
    """


_OLD_SPLIT_REMEDY = ("Re-run the workflow that wrote it with this version (for search-channels, `--merge` rewrites "
                     "predictions.csv from the finished cells), or rename the split column's values: `val` -> `test`, and "
                     "first, in a compare-masking file, its independent cohort's `test` -> `external`.")


def reject_val_split(split: str, where: str) -> None:
    """Refuse ``split="val"`` for a predictions row: the inner validation split is never a result.

    Shared by the reader/writer of predictions tables and :class:`dce_monai.handlers.writers.PredictionsWriter`.

    Raises:
        ValueError: ``split`` is ``"val"`` (``where`` names the file or row).
    """
    if split == "val":
        raise ValueError(f"{where}: split 'val' is the inner validation split of the training patients, which is never a result; "
                         f"predictions rows have split {SPLITS} (the held-out fold is 'test', an independent cohort 'external').")


def _check_row(row: Mapping[str, Any], where: str, reading: bool = False) -> dict[str, Any]:
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected {list(COLUMNS)}.")
    out = {c: row[c] for c in COLUMNS}
    for c in ("experiment", "model", "patient_id", "lesion_id"):
        out[c] = str(out[c])
        if not out[c]:
            raise ValueError(f"{where}: {c} is empty.")
    if str(out["split"]) in OLD_SPLIT_NAMES and reading:
        raise OldSplitNameError(
            f"{where}: split {out['split']!r} is how an older dce_monai version named {OLD_SPLIT_NAMES[str(out['split'])]}; "
            f"the splits are now {SPLITS}. {_OLD_SPLIT_REMEDY}"
        )
    reject_val_split(str(out["split"]), where)
    if str(out["split"]) not in SPLITS:
        raise ValueError(f"{where}: split must be one of {SPLITS}, got {out['split']!r}.")
    try:
        out["fold"] = int(out["fold"])
        out["label"] = int(float(out["label"]))
        out["prob"] = float(out["prob"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: fold/label/prob must be numbers, got {row['fold']!r}/{row['label']!r}/{row['prob']!r}.") from e
    if out["label"] not in (0, 1):
        raise ValueError(f"{where}: label must be 0 or 1, got {row['label']!r}.")
    if not 0.0 <= out["prob"] <= 1.0:  # also rejects NaN
        raise ValueError(f"{where}: prob must be a probability in [0, 1], got {row['prob']!r}.")
    return out


def write_predictions(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write (atomically: temp file + rename) a predictions CSV; every row is checked first.

    Raises:
        ValueError: a row misses a column or holds a bad value (the message names the row),
            or a (experiment, model, fold, split, lesion_id) appears twice.
    """
    checked = [_check_row(r, f"predictions row {i}") for i, r in enumerate(rows)]
    seen: set[tuple] = set()
    for i, r in enumerate(checked):
        key = (r["experiment"], r["model"], r["fold"], r["split"], r["lesion_id"])
        if key in seen:
            raise ValueError(f"predictions row {i}: lesion {r['lesion_id']!r} appears twice for {key[:4]}.")
        seen.add(key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in checked:
            w.writerow({**r, "prob": repr(r["prob"])})
    os.replace(tmp, path)
    return path


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a predictions CSV written by :func:`write_predictions`.

    Raises:
        FileNotFoundError: no such file.
        OldSplitNameError: a row with split ``val``, the held-out fold's name in files of older
            versions (named by file, line and value); a subclass of ValueError.
        ValueError: wrong header or a bad row (named by file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {str(path)!r} does not exist.")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a predictions table; missing column(s) {missing}.")
        return [_check_row(r, f"{path} line {i + 2}", reading=True) for i, r in enumerate(reader)]


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return math.nan, math.nan
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def summarize(
    rows: Sequence[Mapping[str, Any]],
    by: Sequence[str] = ("experiment", "model", "split"),
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per group: pooled per-lesion metrics with a patient-level bootstrap CI, and per-fold mean ± SD.

    Pooled metrics use all folds' held-out lesions together (each lesion predicted once, by
    the model that did not see its patient), as seed 1 reports; ``auc_fold_mean``/``_sd``
    summarise the per-fold AUCs, as seed 2 reports (mean ± SD over folds). Each fold's scores
    are checked with :func:`dce_monai.metrics.collapse.score_collapse` (near-constant or one
    predicted class at ``threshold``): ``collapsed_folds`` counts the folds that collapse and
    ``collapse`` names them (an AUC from collapsed scores is not a finding).

    Returns:
        One dict per group, in first-seen order: the ``by`` fields, ``n``, ``n_pos``, ``auc``,
        ``auc_ci_low``, ``auc_ci_high``, ``sensitivity``, ``specificity``, ``accuracy``,
        ``auc_fold_mean``, ``auc_fold_sd``, ``acc_fold_mean``, ``acc_fold_sd``, ``n_folds``,
        ``collapsed_folds``, ``collapse`` (``""`` or e.g. ``"fold 1: near-constant scores ..."``).
        AUC and its CI are NaN for a group with a single class.

    Raises:
        ValueError: unknown ``by`` column, empty ``rows``.
    """
    bad = [b for b in by if b not in COLUMNS]
    if bad:
        raise ValueError(f"by must name columns of {list(COLUMNS)}, got {bad}.")
    if not rows:
        raise ValueError("no predictions to summarise.")
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    out = []
    for key, rs in groups.items():
        y = np.array([int(r["label"]) for r in rs])
        p = np.array([float(r["prob"]) for r in rs])
        m = binary_metrics(y, p, threshold)
        both = 0 < m["n_pos"] < m["n"]
        lo, hi = bootstrap_ci(y, p, n_boot=n_boot, seed=seed, groups=[r["patient_id"] for r in rs]) if both and len(y) > 2 else (math.nan, math.nan)
        per_fold: dict[int, list[int]] = {}
        for i, r in enumerate(rs):
            per_fold.setdefault(int(r["fold"]), []).append(i)
        fold_m = [binary_metrics(y[idx], p[idx], threshold) for idx in per_fold.values()]
        fold_c = {f: score_collapse(p[idx], threshold) for f, idx in per_fold.items()}
        bad = [f"fold {f}: {c['reason']}" for f, c in fold_c.items() if c["collapsed"]]
        auc_mean, auc_sd = _mean_sd([f["auc"] for f in fold_m])
        acc_mean, acc_sd = _mean_sd([f["accuracy"] for f in fold_m])
        out.append(
            {
                **dict(zip(by, key)),
                "n": m["n"],
                "n_pos": m["n_pos"],
                "auc": m["auc"],
                "auc_ci_low": lo,
                "auc_ci_high": hi,
                "sensitivity": m["sensitivity"],
                "specificity": m["specificity"],
                "accuracy": m["accuracy"],
                "auc_fold_mean": auc_mean,
                "auc_fold_sd": auc_sd,
                "acc_fold_mean": acc_mean,
                "acc_fold_sd": acc_sd,
                "n_folds": len(per_fold),
                "collapsed_folds": len(bad),
                "collapse": "; ".join(bad),
            }
        )
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def format_markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (floats with 3 decimals, NaN as an en dash)."""
    if not rows:
        raise ValueError("no rows to format.")
    cols = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[Mapping[str, Any]], stem: str | Path, columns: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``rows`` as ``<stem>.csv`` and ``<stem>.md``; return both paths."""
    if not rows:
        raise ValueError("no rows to write.")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    cols = list(columns or rows[0].keys())
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    md_path.write_text(format_markdown_table(rows, cols))
    return csv_path, md_path
