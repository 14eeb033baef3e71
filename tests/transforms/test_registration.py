from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.data.phantom import PhantomConfig, simulate_patient
from dce_monai.transforms import RegisterPhases, RegisterPhasesd, Subtractd
from dce_monai.transforms.registration import phase_registration


@pytest.fixture(scope="module")
def moved():
    """Tiny phantom (64x64x16 at 3.2x3.2x6 mm), 2 post phases moved with 3 mm SD, and its data dict."""
    c = simulate_patient(1, PhantomConfig.tiny(motion_mm=3.0, n_post=2))
    d = {k: _meta(v, c.affine, filename_or_obj=f"{k}.nii.gz") for k, v in c.images.items() if k != "T2"}
    d["patient_id"] = "PH0001"
    return c, d


def _meta(arr, affine, **meta):
    return MetaTensor(torch.as_tensor(np.asarray(arr, np.float32))[None], affine=torch.as_tensor(affine), meta=meta)


def _artefact(c, phase, img):
    """Mean squared subtraction (phase - T1pre) over body voxels away from lesions and the heart.

    The blood pool's enhancement is real signal, far larger than the motion artefact.
    """
    from scipy import ndimage

    body = (c.tissue_map > 0) & (c.tissue_map != 5)
    near = ndimage.binary_dilation(c.label_map > 0, iterations=2)
    keep = body & ~near
    sub = np.asarray(img, np.float64) - c.images["T1pre"].astype(np.float64)
    return float((sub[keep] ** 2).mean())


def test_dict_recovers_the_phantom_shifts(moved):
    # measured on this patient: errors 0.36 and 0.31 mm (voxels are 3.2 x 3.2 x 6 mm)
    c, d = moved
    out = RegisterPhasesd(info_key="registration")(dict(d))
    assert sorted(out["registration"]) == ["T1post1", "T1post2"]
    for phase, truth in c.motion_shift_mm.items():
        info = out[phase].meta["registration"]
        err = np.linalg.norm(np.asarray(info["translation_mm"]) - truth)
        assert err < 1.0, (phase, truth, info["translation_mm"])
        assert np.abs(info["rotation_rad"]).max() < np.deg2rad(1.0)
        assert info["metric"] < info["metric_identity"]  # Mattes MI: lower is better
        m = np.asarray(info["fixed_to_moving"])
        assert m.shape == (4, 4) and np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-6)
        before = _artefact(c, phase, c.images[phase])
        after = _artefact(c, phase, out[phase][0])
        assert after < 0.5 * before, (phase, before, after)
        # geometry and meta: the fixed grid, the moving image's other meta
        assert torch.equal(out[phase].affine, d["T1pre"].affine)
        assert out[phase].meta["filename_or_obj"] == f"{phase}.nii.gz"
        assert out[phase].dtype == torch.float32 and out[phase].shape == d["T1pre"].shape
    assert out["T1pre"] is d["T1pre"]
    # subtraction runs after it
    assert "sub" in Subtractd()(out)


def test_array_dict_parity_and_translation_option(moved):
    c, d = moved
    arr = RegisterPhases()(d["T1post1"], fixed=d["T1pre"])
    dic = RegisterPhasesd(keys=["T1post1"])(dict(d))
    np.testing.assert_allclose(arr.numpy(), dic["T1post1"].numpy(), rtol=1e-5, atol=1e-3)
    assert dic["T1post2"] is d["T1post2"]  # not listed, untouched
    tr = RegisterPhases(transform="translation")(d["T1post1"], fixed=d["T1pre"])
    info = tr.meta["registration"]
    assert info["transform"] == "translation" and info["rotation_rad"] == [0.0, 0.0, 0.0]
    assert np.linalg.norm(np.asarray(info["translation_mm"]) - c.motion_shift_mm["T1post1"]) < 1.0
    # cubic B-spline resampling: same estimate, values kept in the phase's range
    bs = RegisterPhases(interpolation="bspline")(d["T1post1"], fixed=d["T1pre"])
    np.testing.assert_allclose(bs.meta["registration"]["translation_mm"], arr.meta["registration"]["translation_mm"], atol=1e-6)
    assert float(bs.min()) >= float(d["T1post1"].min()) and float(bs.max()) <= float(d["T1post1"].max())
    assert np.corrcoef(bs.numpy().ravel(), arr.numpy().ravel())[0, 1] > 0.99
    # a cap on the metric samples (16,384 voxels would be sampled at full resolution here)
    capped = RegisterPhases(max_samples=5000)(d["T1post1"], fixed=d["T1pre"]).meta["registration"]
    assert np.linalg.norm(np.asarray(capped["translation_mm"]) - c.motion_shift_mm["T1post1"]) < 1.0
    assert capped["translation_mm"] != arr.meta["registration"]["translation_mm"]
    # two channels: one estimate per channel
    two = MetaTensor(torch.cat([d["T1post1"].as_tensor(), d["T1post2"].as_tensor()]), affine=d["T1post1"].affine)
    both = RegisterPhases()(two, fixed=d["T1pre"])
    assert both.shape[0] == 2 and len(both.meta["registration"]) == 2
    np.testing.assert_allclose(both[0].numpy(), arr[0].numpy(), rtol=1e-5, atol=1e-3)


def test_moving_on_another_voxel_order_is_resampled_to_the_fixed_grid(moved):
    # T1pre stored in LPS order (as MAMA-MIA ships it) against itself in RAS order: the
    # registration must find the identity and return the RAS image
    c, d = moved
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [c.images["T1pre"].shape[0] - 1, c.images["T1pre"].shape[1] - 1]
    lps = _meta(c.images["T1pre"][::-1, ::-1, :].copy(), c.affine @ flip)
    out = RegisterPhases()(lps, fixed=d["T1pre"])
    assert np.linalg.norm(out.meta["registration"]["translation_mm"]) < 0.3
    assert torch.equal(out.affine, d["T1pre"].affine)
    pre = c.images["T1pre"].astype(np.float32)
    assert np.abs(out[0].numpy() - pre).mean() < 0.02 * pre.mean()


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_bare_tensors_are_refused(moved, kind):
    _, d = moved
    x = d["T1post1"].as_tensor()
    x = x.numpy() if kind == "numpy" else x
    with pytest.raises(ValueError, match=r"RegisterPhases needs the geometry of 'img'.*bare"):
        RegisterPhases()(x, fixed=d["T1pre"])
    with pytest.raises(ValueError, match=r"RegisterPhases needs the geometry of 'fixed'"):
        RegisterPhases()(d["T1post1"], fixed=d["T1pre"].as_tensor())


def test_bad_inputs(moved):
    _, d = moved
    two = MetaTensor(torch.cat([d["T1pre"].as_tensor()] * 2), affine=d["T1pre"].affine)
    with pytest.raises(ValueError, match=r"the fixed image 'fixed' must have one channel"):
        RegisterPhases()(d["T1post1"], fixed=two)
    bad = d["T1post1"].clone()
    bad[0, 1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match=r"'img' has 1 NaN/Inf voxels"):
        RegisterPhases()(bad, fixed=d["T1pre"])
    with pytest.raises(ValueError, match=r"patient 'PH0001': registration of 'T1post1' to 'T1pre' moved it by .* mm.*max_translation_mm=0.1"):
        RegisterPhasesd(max_translation_mm=0.1)(dict(d))
    with pytest.raises(ValueError, match=r"'sub' is already in the data: RegisterPhasesd must run before subtraction"):
        RegisterPhasesd()({**d, "sub": d["T1pre"]})
    with pytest.raises(KeyError, match=r"patient 'PH0001': missing fixed key 'T1pre'"):
        RegisterPhasesd()({k: v for k, v in d.items() if k != "T1pre"})
    with pytest.raises(KeyError, match=r"no post-contrast phase \(T1post<k>\) to register"):
        RegisterPhasesd()({"patient_id": "PH0001", "T1pre": d["T1pre"]})
    with pytest.raises(KeyError, match=r"missing phase key\(s\) \['T1post7'\]"):
        RegisterPhasesd(keys=["T1post1", "T1post7"])(dict(d))


def test_rotation_limit(moved):
    # a 20-degree in-plane rotation of T1pre is recovered by the rigid model and refused by a 10-degree limit
    from scipy import ndimage

    c, d = moved
    rot = ndimage.rotate(c.images["T1pre"].astype(np.float32), 20, axes=(0, 1), reshape=False, order=1, mode="nearest")
    img = _meta(rot, c.affine)
    out = RegisterPhases(max_rotation_deg=None)(img, fixed=d["T1pre"])
    assert abs(np.degrees(np.abs(out.meta["registration"]["rotation_rad"]).max()) - 20) < 2.0
    with pytest.raises(ValueError, match=r"rotated it by .* degrees, more than max_rotation_deg=10"):
        RegisterPhases(max_rotation_deg=10)(img, fixed=d["T1pre"], name="T1post1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transform": "affine"}, "affine"),
        ({"interpolation": "nearest"}, "nearest"),
        ({"shrink_factors": []}, "shrink_factors must be a non-empty sequence of integers >= 1"),
        ({"shrink_factors": (4, 0, 1)}, "shrink_factors must be a non-empty sequence of integers >= 1"),
        ({"smoothing_sigmas": (1.0, 0.0)}, r"smoothing_sigmas must give one sigma >= 0 \(voxels\) per level \(3 levels\)"),
        ({"smoothing_sigmas": (1.0, -1.0, 0.0)}, "smoothing_sigmas must give one sigma >= 0"),
        ({"iterations": 0}, "iterations must be an integer >= 1"),
        ({"histogram_bins": 4}, "histogram_bins must be an integer >= 8"),
        ({"sampling_fraction": 0.0}, r"sampling_fraction must be in \(0, 1\]"),
        ({"max_samples": 10}, "max_samples must be an integer >= 1000"),
        ({"max_translation_mm": -1}, "max_translation_mm must be > 0 or None"),
        ({"max_rotation_deg": 0}, "max_rotation_deg must be > 0 or None"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RegisterPhases(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fixed_key": ""}, "fixed_key must be a non-empty string"),
        ({"keys": ["T1pre", "T1post1"]}, r"fixed_key 'T1pre' is also in keys"),
        ({"info_key": ""}, "info_key must be a non-empty string or None"),
        ({"iterations": 0}, "iterations must be an integer >= 1"),
    ],
)
def test_dict_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RegisterPhasesd(**kwargs)


@pytest.mark.parametrize("enabled, registers", [(None, False), (False, False), (True, True)])
def test_phase_registration_follows_the_manifest(bundle_cohort, enabled, registers):
    t = phase_registration(bundle_cohort["manifest"], ["T1pre", "T1post1", "label_map"], enabled=enabled)
    assert isinstance(t, RegisterPhasesd) is registers  # the phantom manifest does not ask for registration
    if registers:
        assert list(t.keys) == ["T1post1"]
    with pytest.raises(ValueError, match=r"register_phases must be null, true or false, got 'yes'"):
        phase_registration(bundle_cohort["manifest"], ["T1post1"], enabled="yes")
