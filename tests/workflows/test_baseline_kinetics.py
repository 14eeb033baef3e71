"""Tests of the kinetic-feature baseline (features, cache, folds, models, CLI)."""

from __future__ import annotations

import argparse
import csv
import json
import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.data.folds import patient_folds, write_folds
from dce_monai.data.manifest import load_manifest
from dce_monai.metrics.results import read_predictions
from dce_monai.workflows import baseline_kinetics as bk

SPACING = (2.0, 1.5, 3.0)
AFFINE = np.diag([*SPACING, 1.0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """8 tiny phantom patients with one lesion each, 4 malignant and 4 benign (seed 5)."""
    from dce_monai.data.phantom import PhantomConfig, generate_cohort

    out = tmp_path_factory.mktemp("bk_cohort")
    return generate_cohort(out, n_patients=8, seed=5, config=PhantomConfig.tiny(lesions=(1, 1)), progress=False)


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("bk_run")
    paths = bk.run_baseline(cohort, out, k=3, seed=0, n_boot=50, progress=False)
    return out, paths


def _synthetic(kind: str = "numpy"):
    """Two lesions on a constant background: voxels of lesion 1 wash out, those of lesion 2 persist."""
    shape = (12, 12, 6)
    img = np.full((5, *shape), 100.0, dtype=np.float32)
    lm = np.zeros(shape, np.uint8)
    lm[1:5, 1:5, 1:4] = 1  # 4 x 4 x 3 = 48 voxels
    lm[7:11, 6:9, 2:5] = 2  # 4 x 3 x 3 = 36 voxels
    for k, (w, p) in enumerate(zip((250, 230, 210, 190), (150, 175, 200, 225)), start=1):
        img[k][lm == 1] = w
        img[k][lm == 2] = p
    masks = [(lm == v)[None].astype(np.uint8) for v in (1, 2)]
    if kind == "numpy":
        return img, masks
    if kind == "torch":
        return torch.as_tensor(img), [torch.as_tensor(m) for m in masks]
    return MetaTensor(torch.as_tensor(img), affine=torch.as_tensor(AFFINE)), [MetaTensor(torch.as_tensor(m), affine=torch.as_tensor(AFFINE)) for m in masks]


@pytest.mark.parametrize("kind", ["numpy", "torch", "metatensor"])
def test_washout_lesion_has_lower_washout_than_persistent(kind):
    img, (m_wash, m_pers) = _synthetic(kind)
    aff = None if kind == "metatensor" else AFFINE
    fw = bk.lesion_features(img, m_wash, affine=aff, maps=bk.EnhancementMaps(noise_floor=10.0))
    fp = bk.lesion_features(img, m_pers, affine=aff, maps=bk.EnhancementMaps(noise_floor=10.0))
    assert fw["washout_mean"] == pytest.approx((190 - 250) / 250, abs=1e-5)
    assert fp["washout_mean"] == pytest.approx((225 - 150) / 150, abs=1e-5)
    assert fw["washout_mean"] < fp["washout_mean"] and fw["top_washout"] < fp["top_washout"]
    assert fw["frac_washout"] == 1.0 and fp["frac_persistent"] == 1.0 and fw["frac_persistent"] == 0.0
    assert fw["washin_mean"] == pytest.approx(1.5, abs=1e-5) and fp["ser_mean"] == pytest.approx(50 / 125, abs=1e-5)
    assert fw["ser_mean"] > 1.0 > fp["ser_mean"]
    assert [fw[f"re_top_T1post{k}"] for k in range(1, 5)] == pytest.approx([1.5, 1.3, 1.1, 0.9], abs=1e-5)
    voxel = float(np.prod(SPACING))
    assert fw["volume_mm3"] == pytest.approx(48 * voxel) and fp["volume_mm3"] == pytest.approx(36 * voxel)
    assert all(math.isfinite(v) for v in fw.values())


def test_shape_features_sphere_and_elongation():
    x, y, z = np.mgrid[:25, :25, :25]
    ball = (((x - 12) ** 2 + (y - 12) ** 2 + (z - 12) ** 2) <= 81)[None].astype(np.uint8)
    f = bk.shape_features(ball, affine=np.eye(4))
    assert 0.88 < f["sphericity"] <= 1.0 and f["elongation"] == pytest.approx(1.0, abs=0.02)
    assert f["volume_mm3"] == ball.sum()
    rod = np.zeros((1, 20, 6, 6), np.uint8)
    rod[0, 2:18, 2:4, 2:4] = 1
    g = bk.shape_features(rod, affine=np.eye(4))
    assert g["elongation"] < 0.25 and g["sphericity"] < f["sphericity"]
    one = np.zeros((1, 3, 3, 3), np.uint8)
    one[0, 1, 1, 1] = 1
    assert bk.shape_features(one, affine=np.eye(4))["elongation"] == 1.0


def test_shape_feature_errors():
    m = np.zeros((1, 4, 4, 4), np.uint8)
    m[0, 1, 1, 1] = 1
    with pytest.raises(TypeError, match="need voxel spacing: pass the mask as a MetaTensor"):
        bk.shape_features(m)
    with pytest.raises(ValueError, match="affine must be a finite, invertible 4x4"):
        bk.shape_features(m, affine=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="'mask' must have 1 channel"):
        bk.shape_features(np.concatenate([m, m]), affine=np.eye(4))
    with pytest.raises(ValueError, match="'mask' is empty"):
        bk.shape_features(np.zeros_like(m), affine=np.eye(4), case="patient 'P9'")


def test_lesion_feature_errors():
    img, (m, _) = _synthetic()
    with pytest.raises(ValueError, match=r"top_fraction must be in \(0, 1\]"):
        bk.lesion_features(img, m, affine=AFFINE, top_fraction=0.0)
    with pytest.raises(ValueError, match="phase_names has 2 names for 4 post phase"):
        bk.lesion_features(img, m, phase_names=["T1post1", "T1post2"], affine=AFFINE)
    with pytest.raises(ValueError, match="different grids"):
        bk.lesion_features(img, m[:, :5], affine=AFFINE)


def test_run_writes_features_predictions_table_and_folds(cohort, run):
    _, paths = run
    dl = load_manifest(cohort).to_datalist(level="lesion")
    feats = bk.read_feature_table(paths["features"])
    assert [r["lesion_id"] for r in feats] == [d["lesion_id"] for d in dl]
    names = bk.model_feature_names(feats)
    assert names[: len(bk.SCALAR_FEATURES)] == list(bk.SCALAR_FEATURES) and "re_top_T1post4" in names
    assert all(math.isfinite(r[c]) for r in feats for c in names)
    # volume = voxel count of label_map == label_value x voxel volume
    import nibabel as nib

    for d, r in zip(dl, feats):
        img = nib.load(d["label_map"])
        n = int((np.asanyarray(img.dataobj) == d["label_value"]).sum())
        assert r["volume_mm3"] == pytest.approx(n * abs(np.linalg.det(img.affine[:3, :3])), rel=1e-6)
        assert r["n_voxels"] == n
    folds = patient_folds(dl, k=3, seed=0)
    assert json.loads(paths["folds"].read_text())["folds"] == folds
    preds = read_predictions(paths["predictions"])
    models = [f"{m}_{g}" for g in bk.FEATURE_GROUPS for m in bk.MODELS]
    assert {r["model"] for r in preds} == set(models) and {r["split"] for r in preds} == {"test"}
    assert {r["experiment"] for r in preds} == {"baseline_kinetics"}
    fold_of = {p: f for f, ids in enumerate(folds) for p in ids}
    assert all(r["fold"] == fold_of[r["patient_id"]] for r in preds)
    assert len(preds) == 6 * len(dl)
    with open(paths["table_csv"]) as f:
        table = list(csv.DictReader(f))
    assert [t["model"] for t in table] == models and all(int(t["n"]) == len(dl) for t in table)
    assert [t["features"] for t in table] == [g for g in bk.FEATURE_GROUPS for _ in bk.MODELS]
    n_shape = len(bk.SHAPE_FEATURES)
    assert [int(t["n_features"]) for t in table[::2]] == [len(names) - n_shape, n_shape, len(names)]
    md = paths["table_md"].read_text()
    assert "kinetic features only, shape features only, and both" in md and f"| baseline_kinetics | logreg_shape | shape | {n_shape} | test |" in md
    assert "collapsed_folds" in md
    with open(paths["feature_auc_csv"]) as f:
        fa = list(csv.DictReader(f))
    assert sorted(r["feature"] for r in fa) == sorted(names) and {r["group"] for r in fa} == {"kinetic", "shape"}
    assert "Single-feature AUCs" in paths["feature_auc_md"].read_text()
    assert json.loads(paths["run"].read_text())["feature_groups"]["shape"] == list(bk.SHAPE_FEATURES)
    assert json.loads(paths["run"].read_text())["k"] == 3


def test_cache_reused_and_recomputed(cohort, run, tmp_path, capsys):
    _, paths = run
    dl = load_manifest(cohort).to_datalist(level="lesion")
    before = paths["features"].read_text()
    rows = bk.extract_features(dl, paths["features"], progress=True)
    assert "0 lesion(s) computed, 8 from the cache" in capsys.readouterr().out
    assert paths["features"].read_text() == before and len(rows) == len(dl)
    cache = tmp_path / "f.csv"
    bk.extract_features(dl[:2], cache, progress=False)
    bk.extract_features(dl, cache, top_fraction=0.2, progress=True)
    assert "other settings; recomputing" in capsys.readouterr().out
    assert len(bk.read_feature_table(cache)) == len(dl)


def test_folds_file_gives_same_predictions(cohort, run, tmp_path):
    _, paths = run
    folds_file = write_folds(json.loads(paths["folds"].read_text())["folds"], tmp_path / "folds.json")
    p2 = bk.run_baseline(cohort, tmp_path / "again", folds_file=folds_file, n_boot=50, progress=False)
    a = read_predictions(paths["predictions"])
    b = read_predictions(p2["predictions"])
    assert [(r["lesion_id"], r["fold"]) for r in a] == [(r["lesion_id"], r["fold"]) for r in b]
    assert [r["prob"] for r in a] == pytest.approx([r["prob"] for r in b])


def test_cli(cohort, tmp_path, capsys):
    p = argparse.ArgumentParser()
    bk.add_cli_arguments(p)
    args = p.parse_args([str(cohort), "--out", str(tmp_path / "cli"), "--k", "2", "--n-boot", "20", "--label", "malignant"])
    assert bk.cli_main(args) == 0
    text = capsys.readouterr().out
    assert "| baseline_kinetics | gboost_kinetic | kinetic |" in text and "strongest single features (AUC):" in text
    assert (tmp_path / "cli" / "predictions.csv").is_file()


def test_run_errors(cohort, tmp_path):
    with pytest.raises(ValueError, match=r"label must be one of the manifest's labels \[.*\], got 'pcr'"):
        bk.run_baseline(cohort, tmp_path / "x", label="pcr", progress=False)
    data = json.loads(cohort.read_text())
    for pt in data["patients"]:
        pt["labels"]["her2"] = None
    m2 = cohort.parent / "no_her2.json"
    m2.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no lesion has the label 'her2'"):
        bk.run_baseline(m2, tmp_path / "y", label="her2", progress=False)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"), bk.limit_threads(0):
        pass


def test_limit_threads_restores():
    before = torch.get_num_threads()
    with bk.limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_extract_errors(cohort, tmp_path):
    d = load_manifest(cohort).to_datalist(level="lesion")[0]
    with pytest.raises(ValueError, match="has no 'lesion_id'"):
        bk.extract_features([{"patient_id": "P1"}], tmp_path / "a.csv", progress=False)
    with pytest.raises(ValueError, match=r"patient 'PH0000': the datalist entry lacks \['label_map'\]"):
        bk.extract_features([{k: v for k, v in d.items() if k != "label_map"}], tmp_path / "b.csv", progress=False)
    with pytest.raises(ValueError, match=r"lesion 'PH0000-L1': no 'label_value'"):
        bk.extract_features([{k: v for k, v in d.items() if k != "label_value"}], tmp_path / "c.csv", progress=False)
    with pytest.raises(ValueError, match=r"label_value 7 does not occur in .*values present: \[1\]"):
        bk.extract_features([{**d, "label_value": 7}], tmp_path / "d.csv", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bk.read_feature_table(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a feature table"):
        bk.read_feature_table(tmp_path / "bad.csv")


def test_model_errors():
    rows = [{"patient_id": f"P{i}", "lesion_id": f"L{i}", "a": float(i), "re_top_T1post1": 0.5} for i in range(6)]
    y = [0, 1, 0, 1, 0, 1]
    folds = [["P0", "P1"], ["P2", "P3"], ["P4", "P5"]]
    assert bk.model_feature_names([{"re_top_T1post2": 1.0, "re_top_T1post1": 1.0}, {"re_top_T1post1": 2.0}])[-1] == "re_top_T1post1"
    preds = bk.fit_predict_folds(rows, y, folds, ["logreg"], feature_names=["a"])
    assert len(preds) == 6 and all(0 <= r["prob"] <= 1 for r in preds)
    with pytest.raises(ValueError, match="model must be one of .*got 'svm'"):
        bk.make_model("svm")
    with pytest.raises(ValueError, match="no feature rows"):
        bk.model_feature_names([])
    with pytest.raises(ValueError, match="6 feature rows but 5 labels"):
        bk.fit_predict_folds(rows, y[:5], folds, feature_names=["a"])
    with pytest.raises(ValueError, match=r"patient\(s\) \['P4', 'P5'\] are in no fold"):
        bk.fit_predict_folds(rows, y, folds[:2], feature_names=["a"])
    with pytest.raises(ValueError, match="lesion 'L0': feature 'b' is missing or not finite"):
        bk.fit_predict_folds(rows, y, folds, feature_names=["b"])
    with pytest.raises(ValueError, match="fold 0: the training patients hold one class only"):
        bk.fit_predict_folds(rows, [1, 1, 0, 0, 0, 0], [["P0", "P1"], ["P2", "P3", "P4", "P5"]], feature_names=["a"])


def test_variable_phase_counts(tmp_path):
    """Patients with 3..7 post phases: the cache holds every phase, the models use the common ones."""
    from dce_monai.data.phantom import PhantomConfig, generate_cohort

    man = generate_cohort(tmp_path / "c", n_patients=4, seed=5, config=PhantomConfig.tiny(lesions=(1, 1), sample_n_post=True), progress=False)
    dl = load_manifest(man).to_datalist(level="lesion")
    n_post = [sum(k.startswith("T1post") for k in d) for d in dl]
    assert len(set(n_post)) > 1
    bk.extract_features(dl, tmp_path / "f.csv", progress=False)
    rows = bk.read_feature_table(tmp_path / "f.csv")
    assert [r["n_post"] for r in rows] == n_post
    assert any(math.isnan(r.get(f"re_top_T1post{max(n_post)}", math.nan)) for r in rows)
    names = bk.model_feature_names(rows)
    assert [c for c in names if c.startswith("re_top_")] == [f"re_top_T1post{k}" for k in range(1, min(n_post) + 1)]


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["refuse", "skip_invalid"])
def test_invalid_cohort_refused_or_skipped(broken_cohort, tmp_path, skip_invalid):
    from dce_monai.data.manifest import ManifestError
    from dce_monai.metrics.results import read_predictions

    manifest, bad = broken_cohort
    if not skip_invalid:
        with pytest.raises(ManifestError, match=rf"{bad}.*cannot read NIfTI file .*T1post2"):
            bk.run_baseline(manifest, tmp_path / "b", k=2, progress=False)
        assert not (tmp_path / "b" / "features.csv").exists()
        return
    paths = bk.run_baseline(manifest, tmp_path / "b", k=2, progress=False, skip_invalid=True, n_boot=50)
    patients = {r["patient_id"] for r in read_predictions(paths["predictions"])}
    assert bad not in patients and len(patients) == 5


def test_feature_groups_and_single_feature_aucs():
    """Shape separates the classes perfectly, kinetics are noise: the groups show where the score comes from."""
    rng = np.random.default_rng(0)
    y = [i % 2 for i in range(30)]
    rows = []
    for i, lab in enumerate(y):
        r = {"patient_id": f"P{i:02d}", "lesion_id": f"L{i:02d}"}
        r.update({c: float(rng.normal()) for c in bk.SCALAR_FEATURES})
        r["surface_to_volume"] = float(1.0 - lab + 0.1 * rng.random())  # malignant: smaller S/V
        rows.append(r)
    names = list(bk.SCALAR_FEATURES)
    assert bk.feature_group(names, "shape") == list(bk.SHAPE_FEATURES)
    assert set(bk.feature_group(names, "kinetic")) == set(names) - set(bk.SHAPE_FEATURES)
    assert bk.feature_group(names + ["re_top_T1post1"], "kinetic")[-1] == "re_top_T1post1"
    assert bk.feature_group(names, "combined") == names
    fa = bk.feature_aucs(rows, y, names)
    assert fa[0]["feature"] == "surface_to_volume" and fa[0]["auc"] == 0.0 and fa[0]["separation"] == 0.5 and fa[0]["group"] == "shape"
    folds = [[f"P{i:02d}" for i in range(f, 30, 3)] for f in range(3)]
    from dce_monai.metrics.stats import roc_auc

    auc = {}
    for g in bk.FEATURE_GROUPS:
        preds = bk.fit_predict_folds(rows, y, folds, ["logreg"], feature_names=bk.feature_group(names, g), group=g)
        assert {r["model"] for r in preds} == {f"logreg_{g}"}
        auc[g] = roc_auc([r["label"] for r in preds], [r["prob"] for r in preds])
    assert auc["shape"] == 1.0 and auc["combined"] > 0.9 and auc["kinetic"] < 0.8


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bk.feature_group(["a"], "texture"), r"group must be one of \['kinetic', 'shape', 'combined'\], got 'texture'"),
        (lambda: bk.feature_group(["washin_mean"], "shape"), r"feature group 'shape' has no feature among \['washin_mean'\]"),
        (lambda: bk.feature_aucs([{"patient_id": "P", "lesion_id": "L", "a": 1.0}], [1, 0], ["a"]), "1 feature rows but 2 labels"),
        (lambda: bk.feature_aucs([{"patient_id": "P", "lesion_id": "L", "a": 1.0}] * 2, [1, 1], ["a"]), r"need both classes; labels hold only \[1\]"),
        (lambda: bk.feature_aucs([{"patient_id": "P", "lesion_id": "L", "a": math.nan}] * 2, [1, 0], ["a"]), "lesion 'L': feature 'a' is missing or not finite"),
    ],
)
def test_feature_group_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
