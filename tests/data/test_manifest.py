from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from dce_monai.data.manifest import (
    Manifest,
    ManifestError,
    check_manifest,
    load_manifest,
    save_manifest,
)


def _manifest() -> dict:
    return {
        "schema_version": "1.0",
        "dataset": {"name": "unit"},
        "patients": [
            {
                "patient_id": pid,
                "exam": {
                    "sequences": {"T1pre": f"{pid}/pre.nii.gz", "T1post1": f"{pid}/p1.nii.gz", "T1post2": f"{pid}/p2.nii.gz"},
                    "acquisition_times_s": {"T1pre": 0, "T1post1": 90, "T1post2": 180},
                    "label_map": f"{pid}/lm.nii.gz",
                },
                "labels": {"her2": her2},
                "lesions": [{"lesion_id": f"{pid}-L1", "label_value": 1, "malignant": mal}],
            }
            for pid, her2, mal in (("A", 1, 1), ("B", 0, 0), ("C", None, 1))
        ],
    }


def test_round_trip(tmp_path):
    path = save_manifest(_manifest(), tmp_path / "m.json")
    m = load_manifest(path)
    assert m.to_dict() == _manifest()
    assert m.sequences() == ["T1pre", "T1post1", "T1post2"]


def test_lesion_datalist_resolves_paths(tmp_path):
    m = load_manifest(save_manifest(_manifest(), tmp_path / "m.json"))
    dl = m.to_datalist(level="lesion")
    assert [d["lesion_id"] for d in dl] == ["A-L1", "B-L1", "C-L1"]
    assert dl[0]["label"] == 1 and dl[0]["label_value"] == 1
    assert dl[0]["T1pre"] == str((tmp_path / "A/pre.nii.gz").resolve())
    assert dl[0]["acquisition_times_s"] == {"T1pre": 0, "T1post1": 90, "T1post2": 180}
    sub = m.to_datalist(level="lesion", sequences=["T1pre", "T1post2"])
    assert "T1post1" not in sub[0] and "T1post2" in sub[0]


def test_patient_datalist_and_missing_labels_reported(tmp_path):
    m = Manifest.from_dict(_manifest(), tmp_path)
    assert [d["label"] for d in m.to_datalist(level="patient")] == [1, 0, 1]  # from lesions
    report: dict = {}
    dl = m.to_datalist(level="patient", label="her2", skip_missing_labels=True, report=report)
    assert [d["patient_id"] for d in dl] == ["A", "B"] and report["skipped"] == ["C"]
    with pytest.raises(ValueError, match=r"patient 'C': label 'her2' is missing"):
        m.to_datalist(level="patient", label="her2")
    with pytest.raises(ValueError, match=r"patient 'C' lesion 'C-L1': label 'her2' is missing"):
        m.to_datalist(level="lesion", label="her2")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"level": "slice"}, r"level must be 'lesion' or 'patient', got 'slice'"),
        ({"label": "grade"}, r"label must be one of .* got 'grade'"),
        ({"sequences": ["T1pre", "T1post3"]}, r"patient 'A': requested sequence\(s\) \['T1post3'\] not in the exam; available: \['T1pre', 'T1post1', 'T1post2'\]"),
        ({"sequences": ["DWI"]}, r"sequences: unknown sequence name 'DWI'"),
    ],
)
def test_datalist_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Manifest.from_dict(_manifest(), tmp_path).to_datalist(**kwargs)


def test_cohort_filter(tmp_path):
    d = _manifest()
    d["patients"][0]["cohort"] = "train"
    assert [x["patient_id"] for x in Manifest.from_dict(d, tmp_path).to_datalist(cohort="train")] == ["A"]


def _broken(change):
    d = copy.deepcopy(_manifest())
    change(d)
    return d


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["patients"][1].update(patient_id="A"), r"patient 'A' field 'patient_id': duplicate patient id \(also patients\[0\]\)"),
        (lambda d: d["patients"][1]["lesions"][0].update(lesion_id="A-L1"), r"lesion 'A-L1' field 'lesion_id': duplicate lesion id"),
        (lambda d: d["patients"][0]["exam"]["sequences"].update(DWI="x.nii.gz"), r"patient 'A' field 'exam.sequences.*unknown sequence name 'DWI'"),
        (lambda d: d["patients"][0]["lesions"][0].update(malignant=2), r"patient 'A' field 'lesions.0.malignant': value 2 is not allowed"),
        (lambda d: d["patients"][0]["labels"].update(her2=3), r"patient 'A' field 'labels.her2': value 3 is not allowed"),
        (lambda d: d["patients"][0]["exam"]["sequences"].pop("T1post1"), r"patient 'A' field 'exam.sequences': post-contrast phases have gaps: T1post1 missing but T1post2 present"),
        (lambda d: d["patients"][0]["exam"]["acquisition_times_s"].update(T1post2=60), r"acquisition times must increase with phase: T1post1=90 s, T1post2=60 s"),
        (lambda d: d["patients"][0]["lesions"][0].pop("label_value"), r"lesion has neither label_value nor mask"),
        (lambda d: d["patients"][0]["exam"].pop("label_map"), r"label_value given but the exam has no label_map"),
        (lambda d: d["patients"][0]["lesions"].append({"lesion_id": "A-L2", "label_value": 1}), r"label_value 1 already used by lesion 'A-L1'"),
        (lambda d: d["patients"][0]["exam"].update(spacing_mm=[1, 1]), r"field 'exam.spacing_mm'"),
        (lambda d: d.pop("dataset"), r"manifest field '\(root\)': 'dataset' is a required property"),
        (lambda d: d["patients"][0]["exam"]["acquisition_times_s"].update(T2=5), r"patient 'A' field 'exam.acquisition_times_s.T2': time given for a sequence the exam does not have"),
        (lambda d: d["patients"][0]["exam"]["sequences"].update(T1post12="x.nii.gz"), r"gaps: T1post3, T1post4, T1post5, T1post6, T1post7, T1post8, T1post9, T1post10, T1post11 missing but T1post12 present"),
        (lambda d: d["patients"][0]["exam"]["sequences"].update(T1post0="x.nii.gz"), r"unknown sequence name 'T1post0'; expected T2, T1pre, T1post<k> \(k >= 1\) or sub"),
    ],
)
def test_bad_manifests_name_case_and_field(change, match):
    with pytest.raises(ManifestError, match=match):
        check_manifest(_broken(change))


def test_all_problems_reported_together():
    d = _broken(lambda d: (d["patients"][1].update(patient_id="A"), d["patients"][2]["lesions"][0].pop("label_value")))
    with pytest.raises(ManifestError) as e:
        check_manifest(d)
    assert len(e.value.problems) == 2 and "2 problem(s)" in str(e.value)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_manifest(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)


def test_json_is_never_evaluated(tmp_path):
    d = _manifest()
    d["dataset"]["name"] = "__import__('os').system('echo hacked')"
    p = save_manifest(d, tmp_path / "m.json")
    assert load_manifest(p).dataset["name"].startswith("__import__")
    assert json.loads(p.read_text())["dataset"]["name"] == d["dataset"]["name"]


def test_select(tmp_path):
    m = Manifest.from_dict(_manifest(), tmp_path)
    assert [p["patient_id"] for p in m.select(["C", "A"]).patients] == ["C", "A"]
    with pytest.raises(KeyError, match=r"patients not in the manifest: \['Z'\]"):
        m.select(["Z"])


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "data_manifest" / "examples").glob("*.json"))


def test_examples_exist():
    assert [p.name for p in EXAMPLES] == ["full.json", "minimal.json"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load(path):
    m = load_manifest(path)
    lesions = m.to_datalist(level="lesion")
    assert lesions and all(Path(d["T1pre"]).is_absolute() and isinstance(d["label"], int) for d in lesions)
    assert all(("label_value" in d and "label_map" in d) or "mask" in d for d in lesions)
    assert len(m.to_datalist(level="patient")) == len(m.patients)


def test_full_example_datalist_fields():
    (path,) = [p for p in EXAMPLES if p.name == "full.json"]
    m = load_manifest(path)
    train = m.to_datalist(level="lesion", cohort="train")
    assert [d["lesion_id"] for d in train] == ["S01-L1"] and train[0]["cohort"] == "train"
    assert set(train[0]) >= {"T2", "sub", "T1post4", "breast_mask", "label_map", "label_value", "acquisition_times_s"}
    test = m.to_datalist(level="lesion", cohort="test")
    mask = str((path.parent / "S02/lesion1.nii.gz").resolve())
    assert test[0]["label_map"] == mask and test[0]["label_value"] == 1 and "mask" not in test[0]  # label map on the fly
    assert m.to_datalist(level="patient", label="pcr", cohort="test")[0]["label"] == 1
    with pytest.raises(ValueError, match=r"cohort 'val' matches no patient; cohorts in the manifest: \['test', 'train'\]"):
        m.to_datalist(cohort="val")


def test_skipped_labels_are_logged(tmp_path, caplog):
    m = Manifest.from_dict(_manifest(), tmp_path)
    with caplog.at_level(logging.WARNING, logger="dce_monai.data.manifest"):
        dl = m.to_datalist(level="lesion", label="her2", skip_missing_labels=True)
    assert len(dl) == 2 and "1 lesion(s) without label 'her2' skipped: ['C-L1']" in caplog.text


def test_save_refuses_invalid_data(tmp_path):
    d = _broken(lambda d: d["patients"][1].update(patient_id="A"))
    with pytest.raises(ManifestError, match="duplicate patient id"):
        save_manifest(d, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_rebase_makes_paths_absolute(tmp_path):
    from dce_monai.data.manifest import rebase

    d = rebase(_manifest(), tmp_path)
    assert d["patients"][0]["exam"]["sequences"]["T1pre"] == str(tmp_path.resolve() / "A/pre.nii.gz")
    assert d["patients"][0]["exam"]["label_map"] == str(tmp_path.resolve() / "A/lm.nii.gz")
    m = load_manifest(save_manifest(d, tmp_path / "elsewhere" / "m.json"))
    assert m.to_datalist()[0]["T1pre"] == str(tmp_path.resolve() / "A/pre.nii.gz")


def test_save_manifest_concurrent_writers_leave_a_whole_file_and_no_temporaries(tmp_path):
    """Unique temporary names: writers of one manifest at once never share a temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    from dce_monai.data.manifest import save_manifest

    out = tmp_path / "manifest.json"
    data = [{"schema_version": "1.0", "dataset": {"name": f"cohort {i}"}, "patients": []} for i in range(16)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda d: save_manifest(d, out), data))
    assert json.loads(out.read_text())["dataset"]["name"].startswith("cohort ")
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
