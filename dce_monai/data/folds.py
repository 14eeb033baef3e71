"""Patient-wise stratified k-fold splits, stable for a seed and saved as files.

No patient appears in two folds (a patient's lesions stay together, as in seed 1's
patient-wise 10-fold cross-validation); folds are stratified by the label with
scikit-learn's ``StratifiedGroupKFold``. Splits are written to JSON so a run can be
reproduced exactly and bundles read them instead of computing splits in configs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_fold_classes", "fold_split", "patient_folds", "read_folds", "write_folds"]


def patient_folds(
    records: Sequence[dict[str, Any]],
    k: int = 10,
    seed: int = 0,
    stratify_key: str = "label",
    group_key: str = "patient_id",
) -> list[list[str]]:
    """Split patients into ``k`` folds, stratified by ``stratify_key``.

    A patient's stratum is the maximum of its records' labels,
    ``s(p) = max_{r in records(p)} r[stratify_key]`` (a patient with any malignant lesion
    counts as malignant). One sample per patient is handed to scikit-learn's
    ``StratifiedGroupKFold(shuffle=True, random_state=seed)``, so every fold holds
    ``n_c / k`` patients of class ``c`` within +-1 and no patient is in two folds
    (seed 1 used patient-wise 10-fold cross-validation, Hu et al. 2020).

    Args:
        records: datalist entries (lesion or patient level) carrying ``group_key`` and
            ``stratify_key``.
        k: number of folds (2 <= k <= number of patients).
        seed: shuffling seed; the same seed gives the same folds.
        stratify_key: integer class key of each record.
        group_key: key naming the patient of each record.

    Returns:
        ``k`` lists of patient ids (sorted within each fold); together they list every
        patient exactly once.

    Raises:
        ValueError: bad ``k``, a record missing a key (named), ``k`` above the number of
            patients, or a class with fewer patients than ``k`` (class and count named).

    Example:
        >>> recs = [{"patient_id": f"P{i}", "label": i % 2} for i in range(6)]
        >>> folds = patient_folds(recs, k=3, seed=0)
        >>> sorted(sum(folds, []))
        ['P0', 'P1', 'P2', 'P3', 'P4', 'P5']
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

    ``val`` is drawn patient-wise from the training patients, per class:
    ``round(n_c * val_fraction)`` patients of class ``c`` (the patient stratum as in
    :func:`patient_folds`), with a ``numpy.random.default_rng(seed)`` generator of its own.
    Written by hand because scikit-learn's ``train_test_split`` cannot keep groups together
    while stratifying.

    Args:
        records: datalist entries (lesion or patient level).
        folds: folds from :func:`patient_folds` or :func:`read_folds`.
        fold_index: which fold is the test set.
        val_fraction: fraction of training patients moved to ``val``, in [0, 1).
        seed: seed of the validation draw.
        group_key: key naming the patient of each record.
        stratify_key: integer class key (used only when ``val_fraction`` > 0).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` record lists; no patient is in two.

    Raises:
        ValueError: ``fold_index`` outside the folds, ``val_fraction`` outside [0, 1), or a
            record without ``group_key``/``stratify_key`` (named).

    Example:
        >>> recs = [{"patient_id": f"P{i}", "label": i % 2} for i in range(6)]
        >>> split = fold_split(recs, [["P0", "P1"], ["P2", "P3"], ["P4", "P5"]], 0)
        >>> [r["patient_id"] for r in split["test"]]
        ['P0', 'P1']
    """
    if isinstance(fold_index, bool) or not isinstance(fold_index, int) or not 0 <= fold_index < len(folds):
        raise ValueError(f"fold_index must be in [0, {len(folds) - 1}], got {fold_index!r}.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    for i, r in enumerate(records):
        for key in (group_key,) + ((stratify_key,) if val_fraction > 0 else ()):
            if key not in r or r[key] is None:
                name = r.get("lesion_id", r.get(group_key, f"records[{i}]"))
                raise ValueError(f"record {name!r} has no {key!r}; fold_split needs it for every record.")
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
            n = round(len(ids) * val_fraction)
            val_ids.update(rng.permutation(ids)[:n].tolist())
        val = [r for r in train if r[group_key] in val_ids]
        train = [r for r in train if r[group_key] not in val_ids]
    return {"train": train, "val": val, "test": test}


def check_fold_classes(
    records: Sequence[dict[str, Any]],
    folds: Sequence[Sequence[str]],
    label: str = "label",
    group_key: str = "patient_id",
    source: str = "folds",
) -> None:
    """Refuse folds in which a held-out fold or its training part holds one class only.

    A one-class test fold has no AUC and a one-class training set cannot learn a classifier;
    either would only be found after a full epoch of training. Called by every workflow and
    both bundles before any training starts.

    Args:
        records: datalist entries with ``group_key`` and ``label``.
        folds: lists of patient ids.
        label: class key of each record.
        group_key: key naming the patient of each record.
        source: name of the folds (file) used in the message.

    Raises:
        ValueError: naming the fold, the part (``test`` or ``train``), the class found and
            the number of records, and how to fix it.

    Example:
        >>> recs = [{"patient_id": "P0", "label": 0}, {"patient_id": "P1", "label": 1}]
        >>> check_fold_classes(recs, [["P0"], ["P1"]])
        Traceback (most recent call last):
        ...
        ValueError: folds: fold 0: the test part holds one class only (label 0, 1 record(s)); ...
    """
    for i, fold in enumerate(folds):
        ids = set(fold)
        for part, rows in (("test", [r for r in records if r[group_key] in ids]), ("train", [r for r in records if r[group_key] not in ids])):
            classes = sorted({int(r[label]) for r in rows})
            if rows and len(classes) < 2:
                raise ValueError(
                    f"{source}: fold {i}: the {part} part holds one class only (label {classes[0]}, {len(rows)} record(s)); "
                    "no AUC can be computed and no classifier trained. Write new folds with fewer folds "
                    "(dce-monai folds --k) or choose another target."
                )


def write_folds(folds: Sequence[Sequence[str]], path: str | Path, **info: Any) -> Path:
    """Write folds as JSON ``{"k": k, "folds": [[ids...], ...], ...info}``.

    Args:
        folds: lists of patient ids.
        path: output file (parent folders are created).
        info: extra JSON-serialisable entries recorded with the folds (seed, label, manifest).

    Returns:
        The written path.

    Example:
        >>> write_folds([["P0"], ["P1"]], "folds.json", seed=0)  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"k": len(folds), "folds": [list(f) for f in folds], **info}, indent=1))
    return path


def read_folds(path: str | Path) -> list[list[str]]:
    """Read folds written by :func:`write_folds`.

    Args:
        path: a folds JSON file.

    Returns:
        The folds, lists of patient ids.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not JSON, lacks a ``folds`` list of lists of ids, or a
            patient is in two folds (each naming the file).

    Example:
        >>> folds = read_folds("folds.json")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"folds file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    folds = data.get("folds") if isinstance(data, dict) else None
    if not isinstance(folds, list) or not all(isinstance(f, list) and all(isinstance(x, str) for x in f) for f in folds):
        raise ValueError(f"{path}: expected a JSON object with a 'folds' list of lists of patient ids.")
    seen: dict[str, int] = {}
    for i, f in enumerate(folds):
        for pid in f:
            if pid in seen:
                raise ValueError(f"{path}: patient {pid!r} is in folds {seen[pid]} and {i}.")
            seen[pid] = i
    return folds
