from __future__ import annotations

import json

import pytest

from dce_monai.data.folds import fold_split, patient_folds, read_folds, write_folds


def _records(n_pat=30, seed=0):
    recs = []
    for i in range(n_pat):
        for j in range(1 + i % 3):  # 1-3 lesions per patient
            recs.append({"patient_id": f"P{i:02d}", "lesion_id": f"P{i:02d}-L{j}", "label": int(i % 3 == 0 and j == 0 or i % 2 == 0)})
    return recs


def _stratum(recs):
    s = {}
    for r in recs:
        s[r["patient_id"]] = max(s.get(r["patient_id"], 0), r["label"])
    return s


@pytest.mark.parametrize("k", [2, 5, 10])
def test_folds_partition_patients_and_stratify(k):
    recs = _records()
    folds = patient_folds(recs, k=k, seed=1)
    flat = [p for f in folds for p in f]
    assert len(folds) == k and sorted(flat) == sorted({r["patient_id"] for r in recs}) and len(flat) == len(set(flat))
    s = _stratum(recs)
    pos = [sum(s[p] for p in f) for f in folds]
    assert max(pos) - min(pos) <= 2


def test_folds_stable_for_seed():
    recs = _records()
    assert patient_folds(recs, k=5, seed=3) == patient_folds(recs, k=5, seed=3)
    assert patient_folds(recs, k=5, seed=3) != patient_folds(recs, k=5, seed=4)


def test_fold_split_no_leakage():
    recs = _records()
    folds = patient_folds(recs, k=5, seed=0)
    sp = fold_split(recs, folds, 2, val_fraction=0.2)
    ids = {k: {r["patient_id"] for r in v} for k, v in sp.items()}
    assert not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"]) and not (ids["train"] & ids["val"])
    assert ids["test"] == set(folds[2]) and ids["val"]
    assert sum(len(v) for v in sp.values()) == len(recs)


def test_write_read(tmp_path):
    folds = patient_folds(_records(), k=3)
    p = write_folds(folds, tmp_path / "f.json", seed=0)
    assert read_folds(p) == folds and json.loads(p.read_text())["seed"] == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 1}, r"k must be an integer >= 2, got 1"),
        ({"k": 31}, r"k=31 folds need at least 31 patients, got 30"),
        ({"k": 20}, r"cannot stratify into k=20 folds: class\(es\) \[0\] have only \[10\] patient\(s\)"),
    ],
)
def test_fold_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        patient_folds(_records(), **kwargs)


def test_missing_key_named():
    recs = _records()
    del recs[3]["label"]
    with pytest.raises(ValueError, match=r"record 'P02-L0' has no 'label'"):
        patient_folds(recs, k=2)


def test_split_and_read_errors(tmp_path):
    folds = [["A"], ["B"]]
    with pytest.raises(ValueError, match=r"fold_index must be in \[0, 1\], got 2"):
        fold_split([], folds, 2)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.0"):
        fold_split([], folds, 0, val_fraction=1.0)
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"folds": [["A"], ["A"]]}))
    with pytest.raises(ValueError, match=r"patient 'A' is in folds 0 and 1"):
        read_folds(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"expected a JSON object with a 'folds' list"):
        read_folds(p)
