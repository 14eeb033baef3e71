"""Patient-wise stratified k-fold splits, stable for a seed and saved as files.

No patient appears in two folds (a patient's lesions stay together, as in seed 1's
patient-wise 10-fold cross-validation); folds are stratified by the label with
scikit-learn's ``StratifiedGroupKFold``. Splits are written to JSON so a run can be
reproduced exactly and bundles read them instead of computing splits in configs.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["patient_folds", "fold_split", "write_folds", "read_folds", "add_cli_arguments", "cli_main"]


def patient_folds(
    records: Sequence[dict[str, Any]],
    k: int = 10,
    seed: int = 0,
    stratify_key: str = "label",
    group_key: str = "patient_id",
) -> list[list[str]]:
    """Split patients into ``k`` folds, stratified by ``stratify_key``.

    A patient's stratum is the maximum of its records' labels (a patient with any malignant
    lesion counts as malignant).

    Args:
        records: datalist entries carrying ``group_key`` and ``stratify_key``.
        k: number of folds (2 <= k <= number of patients).
        seed: shuffling seed; the same seed gives the same folds.

    Returns:
        ``k`` lists of patient ids (sorted within each fold).

    Raises:
        ValueError: bad ``k``, a record missing a key (named), or a class with fewer
            patients than ``k``.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}.")
    strata: dict[str, int] = {}
    for i, r in enumerate(records):
        for key in (group_key, stratify_key):
            if key not in r or r[key] is None:
                name = r.get("lesion_id", r.get(group_key, f"records[{i}]"))
                raise ValueError(f"record {name!r} has no {key!r}; folds need it for every record.")
        pid = str(r[group_key])
        strata[pid] = max(strata.get(pid, int(r[stratify_key])), int(r[stratify_key]))
    pids = sorted(strata)
    if k > len(pids):
        raise ValueError(f"k={k} folds need at least {k} patients, got {len(pids)}.")
    counts = Counter(strata.values())
    small = {c: n for c, n in counts.items() if n < k}
    if small:
        raise ValueError(
            f"cannot stratify into k={k} folds: class(es) {sorted(small)} have only "
            f"{[small[c] for c in sorted(small)]} patient(s); use a smaller k."
        )
    y = np.array([strata[p] for p in pids])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = [sorted(np.asarray(pids)[test].tolist()) for _, test in splitter.split(np.zeros(len(pids)), y, groups=pids)]
    return folds


def fold_split(
    records: Sequence[dict[str, Any]],
    folds: Sequence[Sequence[str]],
    fold_index: int,
    val_fraction: float = 0.0,
    seed: int = 0,
    group_key: str = "patient_id",
    stratify_key: str = "label",
) -> dict[str, list[dict[str, Any]]]:
    """Records of fold ``fold_index`` as ``test``; the others as ``train`` (and ``val``).

    ``val`` is drawn patient-wise from the training patients, stratified, when
    ``val_fraction`` > 0.

    Raises:
        ValueError: ``fold_index`` outside the folds or ``val_fraction`` outside [0, 1).
    """
    if not 0 <= fold_index < len(folds):
        raise ValueError(f"fold_index must be in [0, {len(folds) - 1}], got {fold_index!r}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    test_ids = set(folds[fold_index])
    train = [r for r in records if r[group_key] not in test_ids]
    test = [r for r in records if r[group_key] in test_ids]
    val: list[dict[str, Any]] = []
    if val_fraction > 0:
        strata: dict[str, int] = {}
        for r in train:
            strata[r[group_key]] = max(strata.get(r[group_key], 0), int(r[stratify_key]))
        rng = np.random.default_rng(seed)
        val_ids: set[str] = set()
        for c in sorted(set(strata.values())):
            ids = sorted(p for p, s in strata.items() if s == c)
            n = int(round(len(ids) * val_fraction))
            val_ids.update(rng.permutation(ids)[:n].tolist())
        val = [r for r in train if r[group_key] in val_ids]
        train = [r for r in train if r[group_key] not in val_ids]
    return {"train": train, "val": val, "test": test}


def write_folds(folds: Sequence[Sequence[str]], path: str | Path, **info: Any) -> Path:
    """Write folds as JSON ``{"folds": [[ids...], ...], ...info}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"k": len(folds), "folds": [list(f) for f in folds], **info}, indent=1))
    return path


def read_folds(path: str | Path) -> list[list[str]]:
    """Read folds written by :func:`write_folds`.

    Raises:
        ValueError: the file lacks a ``folds`` list or a patient is in two folds.
    """
    data = json.loads(Path(path).read_text())
    folds = data.get("folds") if isinstance(data, dict) else None
    if not isinstance(folds, list) or not all(isinstance(f, list) for f in folds):
        raise ValueError(f"{path}: expected a JSON object with a 'folds' list of lists of patient ids.")
    seen: dict[str, int] = {}
    for i, f in enumerate(folds):
        for pid in f:
            if pid in seen:
                raise ValueError(f"{path}: patient {pid!r} is in folds {seen[pid]} and {i}.")
            seen[pid] = i
    return folds


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="cohort manifest (JSON)")
    parser.add_argument("--k", type=int, default=10, help="number of folds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--label", default="malignant", help="label to stratify by (default malignant)")
    parser.add_argument("--out", required=True, help="output JSON path")


def cli_main(args: argparse.Namespace) -> int:
    from dce_monai.data.manifest import load_manifest

    records = load_manifest(args.manifest).to_datalist(level="patient", label=args.label)
    folds = patient_folds(records, k=args.k, seed=args.seed)
    write_folds(folds, args.out, seed=args.seed, label=args.label, manifest=str(args.manifest))
    print(f"{args.k} folds of {sum(map(len, folds))} patients written to {args.out}")
    return 0
