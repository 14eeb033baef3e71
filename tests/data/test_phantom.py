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
    curve_type_from_signal,
    empirical_concentration,
    generate_cohort,
    parker_aif,
    simulate_patient,
    spgr_signal,
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
    frac = lambda ls, t: np.mean([les["curve_type"] == t for les in ls])  # noqa: E731
    assert frac(mal, "washout") > frac(ben, "washout") + 0.2
    assert frac(ben, "persistent") > frac(mal, "persistent") + 0.2
    initial = lambda les: (les["mean_signal"][1] - les["mean_signal"][0]) / les["mean_signal"][0]  # noqa: E731
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


def test_curve_type_rule():
    assert curve_type_from_signal([100, 200, 230]) == "persistent"
    assert curve_type_from_signal([100, 200, 205]) == "plateau"
    assert curve_type_from_signal([100, 200, 170]) == "washout"


def test_physics_functions():
    t = np.array([0, 1.5, 3.0, 6.0])
    c = empirical_concentration(t, 1.0, 3.0, 0.08)
    assert c[0] == 0 and c.argmax() == 1
    assert parker_aif(np.array([0.17046]))[0] > 5  # first-pass peak (mM, plasma)
    s0, s1 = spgr_signal(1.0, 1600.0, 0.0), spgr_signal(1.0, 1600.0, 0.3)
    assert s1 > s0 > 0


def test_malignancy_separable_but_not_trivially(cases):
    from sklearn.metrics import roc_auc_score

    les = [x for c in cases for x in c.lesions]
    y = [x["malignant"] for x in les]
    # ideal kinetic feature: noise-free delayed-phase change (more negative = more washout)
    washout = [-(x["mean_signal"][-1] - x["mean_signal"][1]) / x["mean_signal"][1] for x in les]
    auc = roc_auc_score(y, washout)
    assert 0.65 < auc < 0.99


def test_her2_prevalence_and_undefined_for_benign():
    rows = [simulate_patient(i, PhantomConfig(lesions=(1, 1))) for i in range(16)]
    her2 = [r.labels["her2"] for r in rows if r.labels["malignant"]]
    assert all(r.labels["her2"] is None for r in rows if not r.labels["malignant"])
    assert 0 < np.mean(her2) < 0.7


def test_shortcut_correlation():
    cfg = PhantomConfig(lesions=(1, 1))
    with_art = [simulate_patient(i, cfg, shortcut=1.0) for i in range(10)]
    for c in with_art:
        assert c.shortcut_present == bool(c.labels["malignant"])
    assert not any(simulate_patient(i, cfg, shortcut=0.0).shortcut_present for i in range(5))


def test_cohort_writes_valid_manifest_and_files(tiny_cohort):
    data = json.loads(tiny_cohort.read_text())
    jsonschema.validate(data, schema())
    p = data["patients"][0]
    img = nib.load(str(tiny_cohort.parent / p["exam"]["sequences"]["T1post1"]))
    lm = nib.load(str(tiny_cohort.parent / p["exam"]["label_map"]))
    assert img.get_data_dtype() == np.uint16
    np.testing.assert_allclose(img.affine, lm.affine)
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
        ({"size": "huge"}, r"size must be 'demo' or 'full', got 'huge'"),
        ({"n_post": 0}, r"n_post must be an integer in \[1, 12\], got 0"),
        ({"post_interval_s": 0}, r"must be > 0 s"),
        ({"snr": -1}, r"snr must be > 0, got -1"),
        ({"bias_strength": 1.5}, r"bias_strength must be in \[0, 1\), got 1.5"),
        ({"motion_mm": -1}, r"motion_mm must be >= 0"),
        ({"lesions": (2, 1)}, r"lesions must be \(lo, hi\)"),
        ({"malignant_fraction": 2}, r"malignant_fraction must be in \[0, 1\]"),
        ({"storage_max": 70000}, r"storage_max must be in \[100, 60000\]"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhantomConfig(**kwargs)


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
