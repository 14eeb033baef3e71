"""Tests for dce_monai.data.phantom.cohort: simulated patients, the cohort writer and the cohort's statistics."""

from __future__ import annotations

import json

import jsonschema
import nibabel as nib
import numpy as np
import pytest

from dce_monai.data.manifest import schema
from dce_monai.data.phantom import (
    BLOOD,
    FIBRO,
    PhantomConfig,
    generate_cohort,
    simulate_patient,
)


@pytest.fixture(scope="module")
def cases():
    return [simulate_patient(i, patient_id=f"P{i}") for i in range(16)]


def test_reproducible_by_seed():
    a, b = simulate_patient(5), simulate_patient(5)
    for k in a.images:
        np.testing.assert_array_equal(a.images[k], b.images[k])
    np.testing.assert_array_equal(a.label_map, b.label_map)
    assert not np.array_equal(a.images["T1post1"], simulate_patient(6).images["T1post1"])


def test_shapes_dtypes_and_storage(cases):
    c = cases[0]
    assert set(c.images) == {"T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4"}
    for img in c.images.values():
        assert img.dtype == np.uint16 and img.shape == c.label_map.shape == (128, 128, 32)
        assert 0 < img.max() <= PhantomConfig().storage_max  # no clipping or overflow
    assert c.times_s == {"T1pre": 0.0, "T1post1": 90.0, "T1post2": 180.0, "T1post3": 270.0, "T1post4": 360.0}
    np.testing.assert_allclose(np.diag(c.affine)[:3], c.spacing_mm)


def test_label_map_matches_lesions(cases):
    for c in cases:
        assert 1 <= len(c.lesions) <= 3
        assert sorted(np.unique(c.label_map[c.label_map > 0]).tolist()) == [les["label_value"] for les in c.lesions]
        assert np.all(c.breast_mask[c.label_map > 0] == 1)  # lesions lie in the breast


def test_malignant_curves_wash_out_more_and_enhance_faster(cases):
    mal = [les for c in cases for les in c.lesions if les["malignant"]]
    ben = [les for c in cases for les in c.lesions if not les["malignant"]]
    assert mal and ben
    frac = lambda ls, t: np.mean([les["curve_type"] == t for les in ls])
    assert frac(mal, "washout") > frac(ben, "washout") + 0.2
    assert frac(ben, "persistent") > frac(mal, "persistent") + 0.2
    initial = lambda les: (les["mean_signal"][1] - les["mean_signal"][0]) / les["mean_signal"][0]
    assert np.median([initial(x) for x in mal]) > 1.0 > np.median([initial(x) for x in ben])  # BI-RADS fast vs not
    # overlap is real: not every malignant lesion washes out
    assert 0 < frac(mal, "washout") < 1


def test_heart_enhances_more_than_breast(cases):
    c = cases[0]
    heart = (c.heart_signal[1] - c.heart_signal[0]) / c.heart_signal[0]
    breast = (c.breast_signal[1] - c.breast_signal[0]) / c.breast_signal[0]
    assert heart > 3 * breast > 0


def test_bias_field_is_smooth_with_zero_mean_log(cases):
    c = cases[0]
    body = c.tissue_map > 0
    logb = np.log(c.bias_field)
    assert abs(logb[body].mean()) < 1e-3
    assert 0.05 < np.abs(logb[body]).max() <= 2 * 0.3  # peak set to bias_strength before centring
    assert np.abs(np.diff(logb, axis=0)).max() < 0.02  # smooth: tiny voxel-to-voxel change


def test_malignancy_separable_but_not_trivially(cases):
    from sklearn.metrics import roc_auc_score

    les = [x for c in cases for x in c.lesions]
    y = [x["malignant"] for x in les]
    # ideal kinetic feature: noise-free delayed-phase change (more negative = more washout)
    washout = [-(x["mean_signal"][-1] - x["mean_signal"][1]) / x["mean_signal"][1] for x in les]
    auc = roc_auc_score(y, washout)
    assert 0.65 < auc < 0.99


def test_her2_undefined_for_benign_only_patients(tiny_cases):
    benign = [c for c in tiny_cases if not c.labels["malignant"]]
    assert benign and all(c.labels["her2"] is None and c.labels["recurrence_event"] == 0 for c in benign)
    assert all(c.labels["her2"] in (0, 1) for c in tiny_cases if c.labels["malignant"])


def test_shortcut_correlation():
    cfg = PhantomConfig.tiny(lesions=(1, 1))
    with_art = [simulate_patient(i, cfg, shortcut=1.0) for i in range(12)]
    assert 0 < sum(c.shortcut_present for c in with_art) < 12
    for c in with_art:
        assert c.shortcut_present == bool(c.labels["malignant"])
    half = [simulate_patient(i, cfg, shortcut=0.5) for i in range(40)]
    rate = np.mean([c.shortcut_present for c in half if c.labels["malignant"]])
    assert 0.2 < rate < 0.8 and not any(c.shortcut_present for c in half if not c.labels["malignant"])
    assert not any(simulate_patient(i, cfg, shortcut=0.0).shortcut_present for i in range(5))


def test_cohort_writes_valid_manifest_and_files(tiny_cohort):
    data = json.loads(tiny_cohort.read_text())
    jsonschema.validate(data, schema())
    p = data["patients"][0]
    lm = nib.load(str(tiny_cohort.parent / p["exam"]["label_map"]))
    assert set(p["exam"]["sequences"]) == {"T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4"}
    for rel in [*p["exam"]["sequences"].values(), p["exam"]["breast_mask"], p["exam"]["bias_field"]]:
        img = nib.load(str(tiny_cohort.parent / rel))
        assert img.shape == lm.shape
        np.testing.assert_allclose(img.affine, lm.affine)
        if rel in p["exam"]["sequences"].values():
            assert img.get_data_dtype() == np.uint16
    np.testing.assert_allclose(np.abs(np.diag(lm.affine))[:3], p["exam"]["spacing_mm"])
    values = sorted(np.unique(np.asarray(lm.dataobj)).tolist())
    assert values == [0] + [les["label_value"] for les in p["lesions"]]
    assert p["lesions"][0]["lesion_id"].startswith(p["patient_id"])


def test_patient_independent_of_cohort_size_and_workers(tmp_path):
    a = json.loads(generate_cohort(tmp_path / "a", 2, seed=3, progress=False).read_text())
    b = json.loads(generate_cohort(tmp_path / "b", 3, seed=3, workers=2, progress=False).read_text())
    assert a["patients"][:2] == b["patients"][:2]
    x = nib.load(str(tmp_path / "a/PH0001/PH0001_T1post2.nii.gz")).get_fdata()
    y = nib.load(str(tmp_path / "b/PH0001/PH0001_T1post2.nii.gz")).get_fdata()
    np.testing.assert_array_equal(x, y)


def test_shortcut_split_cohorts(tmp_path):
    data = json.loads(generate_cohort(tmp_path, 4, seed=1, shortcut_train=1.0, shortcut_test=0.0, test_fraction=0.5, progress=False).read_text())
    assert [p["cohort"] for p in data["patients"]] == ["train", "train", "test", "test"]
    flags = data["dataset"]["generator"]["shortcut_present"]
    assert not flags["PH0002"] and not flags["PH0003"]


def test_fewer_post_phases():
    c = simulate_patient(0, PhantomConfig(n_post=2, post_interval_s=120.0))
    assert set(c.images) == {"T2", "T1pre", "T1post1", "T1post2"} and c.times_s["T1post2"] == 210.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_patients": 0}, r"n_patients must be an integer >= 1, got 0"),
        ({"n_patients": 2, "workers": 0}, r"workers must be an integer >= 1, got 0"),
        ({"n_patients": 2, "test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
        ({"n_patients": 2, "shortcut_train": 1.5}, r"shortcut_train must be in \[0, 1\], got 1.5"),
    ],
)
def test_generate_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_cohort(tmp_path, **kwargs)


def test_simulate_shortcut_error():
    with pytest.raises(ValueError, match=r"shortcut must be in \[0, 1\], got 2"):
        simulate_patient(0, shortcut=2)


def test_tissue_constants_consistent(cases):
    c = cases[0]
    assert (c.tissue_map == BLOOD).any() and (c.tissue_map == FIBRO).any()


# ----------------------------------------------------------------------------- presets, reference CSV, CLI


def test_presets():
    assert PhantomConfig.demo() == PhantomConfig()
    assert PhantomConfig.full().size == "full" and PhantomConfig.full().sample_n_post
    c = simulate_patient(0, PhantomConfig.tiny(n_post=3, field_strength_t=1.5))
    assert c.label_map.shape == (64, 64, 16) and c.spacing_mm == (3.2, 3.2, 6.0)
    assert set(c.images) == {"T2", "T1pre", "T1post1", "T1post2", "T1post3"} and c.field_strength_t == 1.5


# ----------------------------------------------------------------------------- cohort statistics (tiny preset)


@pytest.fixture(scope="module")
def tiny_cases():
    cfg = PhantomConfig.tiny()
    return [simulate_patient(i, cfg) for i in range(100)]


def test_simulated_curves_fall_into_their_birads_class(tiny_cases):
    les = [x for c in tiny_cases for x in c.lesions]
    # the curve type measured from the noise-free mean signal matches the kinetic archetype drawn
    agree = np.mean([x["curve_type"] == x["archetype"] for x in les])
    assert agree > 0.9
    # initial phase: malignant lesions mostly fast (> 100 %), benign mostly not
    initial = {m: [(x["mean_signal"][1] / x["mean_signal"][0] - 1) for x in les if x["malignant"] == m] for m in (0, 1)}
    assert np.mean(np.array(initial[1]) > 1.0) > 0.6 > np.mean(np.array(initial[0]) > 1.0)


def _cv_auc(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    p = cross_val_predict(LogisticRegression(), np.asarray(x), np.asarray(y), cv=5, method="predict_proba")[:, 1]
    return roc_auc_score(y, p)


def test_ideal_features_malignancy_auc_high_but_not_perfect(tiny_cases):
    les = [x for c in tiny_cases for x in c.lesions]
    feats = [
        [(x["mean_signal"][-1] - x["mean_signal"][1]) / x["mean_signal"][1], float(x["irregular"])] for x in les
    ]
    auc = _cv_auc(feats, [x["malignant"] for x in les])
    assert 0.8 < auc < 0.99


def test_outcomes_harder_than_malignancy(tiny_cases):
    mal = [c for c in tiny_cases if c.labels["malignant"]]
    big = [max((x for x in c.lesions if x["malignant"]), key=lambda x: x["volume_mm3"]) for c in mal]
    ideal = [[c.latent["stromal"], float(b["archetype"] == "washout"), np.log(b["volume_mm3"])] for c, b in zip(mal, big)]
    her2 = [c.labels["her2"] for c in mal]
    rec = [c.labels["recurrence_event"] for c in mal]
    assert 0.1 < np.mean(her2) < 0.4  # reference prevalence 0.22
    assert 0.6 < _cv_auc(ideal, her2) < 0.88
    assert 0.6 < _cv_auc(ideal, rec) < 0.88
    assert all(c.labels["recurrence_days"] == 1825.0 for c in mal if not c.labels["recurrence_event"])


def test_motion_truth_is_recorded():
    """Every post phase's true shift (RAS mm) is kept; the masks stay in place."""
    from dce_monai.data.phantom import PhantomConfig, simulate_patient

    still = simulate_patient(0, PhantomConfig.tiny(n_post=2))
    assert still.motion_shift_mm == {}
    moved = simulate_patient(0, PhantomConfig.tiny(n_post=2, motion_mm=3.0))
    assert sorted(moved.motion_shift_mm) == ["T1post1", "T1post2"]
    assert all(len(v) == 3 and any(abs(x) > 0 for x in v) for v in moved.motion_shift_mm.values())
    # anatomy is drawn before the motion: the same masks with and without it
    assert (moved.breast_mask == still.breast_mask).all() and (moved.label_map == still.label_map).all()
