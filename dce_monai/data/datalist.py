"""The datalist of one split of one fold: what the bundles train, validate and evaluate on.

A bundle's data come from a cohort manifest plus a patient-wise folds file, never from a
config expression: :func:`fold_datalist` is the one place that cuts them into ``train``,
``val`` (an inner validation share of the training patients) and ``test`` (the held-out fold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monai.utils import look_up_option

from dce_monai.data.folds import check_fold_classes, fold_split, read_folds
from dce_monai.data.manifest import load_manifest

__all__ = ["SPLITS", "fold_datalist"]

SPLITS = ("train", "val", "test", "all")


def fold_datalist(
    manifest: str | Path,
    folds: str | Path | None,
    fold: int = 0,
    split: str = "train",
    level: str = "lesion",
    label: str | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Datalist of one split of one fold, from a manifest and a folds file.

    Fold ``fold`` is the held-out ``test`` split; the other folds form ``train`` (minus a
    patient-wise ``val`` share, stratified on the target, when ``val_fraction > 0``: the inner
    validation split a bundle may monitor and choose ``model_best.pt`` on, never the held-out fold), as in
    :func:`dce_monai.data.folds.fold_split`. ``split="all"`` returns every record (then
    ``folds`` may be ``None``).

    Args:
        manifest: cohort manifest JSON path.
        folds: folds JSON written by :func:`dce_monai.data.folds.write_folds` (or ``None`` with ``split="all"``).
        fold: index of the held-out fold, in ``[0, k)``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        level: ``"lesion"`` or ``"patient"`` records.
        label: manifest label used as the class target (default: the manifest's target).
        val_fraction: share of training patients moved to ``val``.
        seed: seed of the ``val`` draw.

    Returns:
        List of record dicts (``patient_id``, ``lesion_id``, ``label``, sequence paths, ...).

    Raises:
        ValueError: unknown ``split``, ``fold`` out of range, no folds file for a fold split,
            an empty split (``val`` with ``val_fraction`` 0 is an empty list, not an error), or a fold whose test or training part holds one class only
            (checked for every fold before any training starts).

    Example:
        >>> fold_datalist("cohort/manifest.json", "cohort/folds.json", fold=0, split="test")  # doctest: +SKIP
    """
    split = look_up_option(split, SPLITS)
    records = load_manifest(manifest).to_datalist(level=level, label=label)
    if split == "all":
        return records
    if folds is None:
        raise ValueError(f"folds is required for split={split!r} (got None); pass --folds <folds.json>.")
    fold_lists = read_folds(folds)
    if not 0 <= int(fold) < len(fold_lists):
        raise ValueError(f"fold must be in [0, {len(fold_lists)}) for {str(folds)!r}, got {fold!r}.")
    check_fold_classes(records, fold_lists, source=str(folds))
    if split == "val" and not val_fraction > 0:
        return []  # a run without an inner validation split (val_fraction 0) validates nothing
    parts = fold_split(records, fold_lists, int(fold), val_fraction=val_fraction, seed=seed)
    out = parts.get(split, [])
    if not out:
        raise ValueError(f"split {split!r} of fold {fold} is empty (manifest {str(manifest)!r}, folds {str(folds)!r}).")
    return out
