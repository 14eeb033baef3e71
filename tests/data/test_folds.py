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


@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_folds_partition_patients_and_stratify(k, seed):
    recs = _records()
    folds = patient_folds(recs, k=k, seed=seed)
    flat = [p for f in folds for p in f]
    assert len(folds) == k and sorted(flat) == sorted({r["patient_id"] for r in recs}) and len(flat) == len(set(flat))
    s = _stratum(recs)
    pos = [sum(s[p] for p in f) for f in folds]
    neg = [len(f) - n for f, n in zip(folds, pos)]
    assert max(pos) - min(pos) <= 1 and max(neg) - min(neg) <= 1  # each class within +-1 across folds
    assert all(f == sorted(f) for f in folds)


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
    p.write_text(json.dumps({"folds": [[1], [2]]}))
    with pytest.raises(ValueError, match=r"f.json: expected a JSON object with a 'folds' list of lists of patient ids"):
        read_folds(p)
    p.write_text("{oops")
    with pytest.raises(ValueError, match=r"f.json: not valid JSON"):
        read_folds(p)
    with pytest.raises(FileNotFoundError, match=r"folds file not found: .*none.json"):
        read_folds(tmp_path / "none.json")
    with pytest.raises(ValueError, match=r"fold_index must be in \[0, 1\], got True"):
        fold_split([], folds, True)


def test_fold_split_missing_keys_named():
    with pytest.raises(ValueError, match=r"record 'records\[0\]' has no 'patient_id'; fold_split needs it"):
        fold_split([{"label": 1}], [["A"], ["B"]], 0)
    with pytest.raises(ValueError, match=r"record 'L1' has no 'label'; fold_split needs it"):
        fold_split([{"patient_id": "A", "lesion_id": "L1"}], [["A"], ["B"]], 0, val_fraction=0.5)
    assert fold_split([{"patient_id": "A", "lesion_id": "L1"}], [["A"], ["B"]], 0)["test"][0]["lesion_id"] == "L1"


def test_fold_split_val_stratified_and_stable():
    recs = _records()
    folds = patient_folds(recs, k=5, seed=0)
    a = fold_split(recs, folds, 0, val_fraction=0.25, seed=1)
    assert a == fold_split(recs, folds, 0, val_fraction=0.25, seed=1)
    s = _stratum(recs)
    train_val = {r["patient_id"] for r in a["train"] + a["val"]}
    val = {r["patient_id"] for r in a["val"]}
    for c in (0, 1):
        n_c = sum(1 for p in train_val if s[p] == c)
        assert sum(1 for p in val if s[p] == c) == round(n_c * 0.25)


def _manifest_file(tmp_path):
    from dce_monai.data.manifest import save_manifest

    patients = []
    for i in range(8):
        lesions = [{"lesion_id": f"P{i}-L{j}", "mask": f"P{i}/m{j}.nii.gz", "malignant": int(i % 2 == 0 or j == 1)} for j in range(i % 3)]
        labels = {"her2": i % 2} if i != 7 else {}
        patients.append({"patient_id": f"P{i}", "exam": {"sequences": {"T1pre": f"P{i}/pre.nii.gz"}}, "labels": labels, "lesions": lesions})
    return save_manifest({"schema_version": "1.0", "dataset": {"name": "f"}, "patients": patients}, tmp_path / "m.json")


def test_folds_cli_levels(tmp_path, capsys):
    from dce_monai.cli import main

    m = _manifest_file(tmp_path)
    out = tmp_path / "f.json"
    assert main(["folds", str(m), "--k", "2", "--seed", "3", "--level", "lesion", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 patient(s) without lesions are in no fold: ['P0', 'P3', 'P6']" in text
    info = json.loads(out.read_text())
    assert info["level"] == "lesion" and info["seed"] == 3 and info["k"] == 2
    assert sorted(p for f in read_folds(out) for p in f) == ["P1", "P2", "P4", "P5", "P7"]
    # patient level: every patient; a missing HER2 status is an error unless skipped (and listed)
    assert main(["folds", str(m), "--k", "2", "--level", "patient", "--label", "her2", "--out", str(out)]) == 2
    assert "patient 'P7': label 'her2' is missing" in capsys.readouterr().err
    args = ["folds", str(m), "--k", "2", "--level", "patient", "--label", "her2", "--skip-missing-labels", "--out", str(out)]
    assert main(args) == 0
    assert "1 case(s) without label 'her2' left out: ['P7']" in capsys.readouterr().out
    assert sorted(p for f in read_folds(out) for p in f) == [f"P{i}" for i in range(7)]


@pytest.mark.parametrize(
    "labels, match",
    [
        ({"P0": 0, "P1": 0, "P2": 1, "P3": 1}, r"f.json: fold 0: the test part holds one class only \(label 0, 2 record\(s\)\)"),
        ({"P0": 0, "P1": 1, "P2": 1, "P3": 1}, r"f.json: fold 0: the train part holds one class only \(label 1, 2 record\(s\)\)"),
        ({"P0": 1, "P1": 0, "P2": 0, "P3": 1}, None),
    ],
)
def test_check_fold_classes_names_the_fold(labels, match):
    from dce_monai.data.folds import check_fold_classes

    recs = [{"patient_id": p, "label": y} for p, y in labels.items()]
    if match is None:
        check_fold_classes(recs, [["P0", "P1"], ["P2", "P3"]], source="f.json")
        return
    with pytest.raises(ValueError, match=match):
        check_fold_classes(recs, [["P0", "P1"], ["P2", "P3"]], source="f.json")


def test_check_fold_classes_train_part():
    from dce_monai.data.folds import check_fold_classes

    recs = [{"patient_id": "P0", "label": 0}, {"patient_id": "P1", "label": 1}, {"patient_id": "P2", "label": 1}]
    with pytest.raises(ValueError, match=r"fold 0: the test part holds one class only"):
        check_fold_classes(recs, [["P0"], ["P1", "P2"]])
