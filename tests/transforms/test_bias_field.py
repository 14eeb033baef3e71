from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.bias_field import (
    N4BiasFieldCorrection,
    N4BiasFieldCorrectiond,
    _itk_image,
    _shrunk_itk_image,
    bias_correction,
    bspline_basis,
    evaluate_lattice,
    fit_shrink_factors,
    n4_log_bias,
    ras_affine_to_itk,
    shrink_slices,
)

SHAPE, SPACING = (48, 48, 24), (2.0, 2.0, 4.0)
_TH = np.deg2rad(30)
_ROT = np.array([[np.cos(_TH), -np.sin(_TH), 0], [np.sin(_TH), np.cos(_TH), 0], [0, 0, 1]])


def _affine(spacing=SPACING) -> np.ndarray:
    """Non-identity, non-axis-aligned RAS affine (30 degrees about z, offset origin)."""
    a = np.eye(4)
    a[:3, :3] = _ROT @ np.diag(spacing)
    a[:3, 3] = [10.0, -20.0, 5.0]
    return a


def _volume(seed: int = 0, scale: float = 1.0):
    """Ellipsoid with two tissues and a bright blob, times a known smooth bias; returns (observed, log bias, body)."""
    rng = np.random.default_rng(seed)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).astype(float)
    u = (idx - (np.array(SHAPE) - 1) / 2) / (np.array(SHAPE) / 2)
    body = (u**2).sum(-1) < 0.8
    tissue = np.where(u[..., 0] > 0.1, 300.0, 150.0)
    tissue = np.where(((u - [-0.3, 0.2, 0]) ** 2).sum(-1) < 0.06, 500.0, tissue)
    mm = u * np.array(SHAPE) * np.array(SPACING) / 2
    log_bias = scale * (0.4 * mm[..., 0] / 50 + 0.2 * (mm[..., 1] / 50) ** 2 - 0.15 * mm[..., 2] / 50)
    obs = np.where(body, tissue, 5.0) * np.exp(log_bias) + rng.normal(0, 3, SHAPE)
    return obs.astype(np.float32), log_bias, body


def _corr(a, b, m):
    return np.corrcoef(np.asarray(a)[m], np.asarray(b)[m])[0, 1]


@pytest.mark.parametrize("kind", ["meta", "torch", "numpy"])
def test_n4_recovers_known_bias(kind):
    obs, log_bias, body = _volume()
    aff = torch.as_tensor(_affine())
    if kind == "meta":
        x = MetaTensor(torch.as_tensor(obs)[None], affine=aff, meta={"filename_or_obj": "pre.nii.gz"})
        op = N4BiasFieldCorrection(return_log_bias=True)
    else:
        x = torch.as_tensor(obs)[None] if kind == "torch" else obs[None]
        op = N4BiasFieldCorrection(return_log_bias=True, spacing=SPACING)
    out, lb = op(x)
    assert out.shape == (1, *SHAPE) and lb.shape == (1, *SHAPE)
    assert _corr(lb[0], log_bias, body) >= 0.9
    np.testing.assert_allclose(np.asarray(out[0]), obs / np.exp(np.asarray(lb[0])), rtol=1e-5)
    if kind == "meta":
        # the original RAS affine and meta come back unchanged: nothing of the LPS round trip leaks
        assert isinstance(out, MetaTensor) and torch.equal(out.affine, aff) and torch.equal(lb.affine, aff)
        assert out.meta["filename_or_obj"] == "pre.nii.gz"
    else:  # MetaTensor out, as MONAI's transforms return, with the geometry N4 was given
        assert isinstance(out, MetaTensor) and np.allclose(np.diag(out.affine.numpy())[:3], SPACING)
        assert not out.applied_operations


def test_itk_geometry_is_lps_of_the_ras_affine():
    aff = _affine()
    img = _itk_image(np.zeros(SHAPE, np.float32), aff)
    assert list(img.GetLargestPossibleRegion().GetSize()) == list(SHAPE)  # index axes stay (X, Y, Z)
    np.testing.assert_allclose(list(img.GetSpacing()), SPACING)
    for ijk in ([0, 0, 0], [5, 7, 3], [47, 1, 23]):
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        ras = aff @ np.array(ijk + [1.0])
        np.testing.assert_allclose(lps, ras[:3] * [-1, -1, 1], atol=1e-9)
    spacing, origin, direction = ras_affine_to_itk(aff)
    np.testing.assert_allclose(direction @ direction.T, np.eye(3), atol=1e-12)
    assert origin == [-10.0, 20.0, 5.0]


def test_spacing_reaches_itk_anisotropic_changes_result():
    obs, _, _ = _volume()
    iso = MetaTensor(torch.as_tensor(obs)[None], affine=torch.as_tensor(_affine((2.0, 2.0, 1.0))))
    aniso = MetaTensor(torch.as_tensor(obs)[None], affine=torch.as_tensor(_affine()))
    op = N4BiasFieldCorrection(spline_distance_mm=40.0)  # mesh from mm extent: 96 mm vs 24 mm along z
    assert float((op(iso) - op(aniso)).abs().max()) > 1.0
    # the same numbers through a bare tensor with the same spacing give the same mesh
    bare = N4BiasFieldCorrection(spline_distance_mm=40.0, spacing=SPACING)(torch.as_tensor(obs)[None])
    assert float((bare - op(aniso).as_tensor()).abs().max()) < 1e-2 * float(bare.abs().max())


def test_reference_channel_vs_per_channel_and_control_points():
    a, log_a, body = _volume(0)
    b, log_b, _ = _volume(1, scale=-1.0)
    x = MetaTensor(torch.as_tensor(np.stack([a, b])), affine=torch.as_tensor(_affine()))
    out, lb = N4BiasFieldCorrection(reference_channel=None, return_log_bias=True, control_points=(5, 5, 4))(x)
    assert lb.shape == (2, *SHAPE) and _corr(lb[0], log_a, body) >= 0.9 and _corr(lb[1], log_b, body) >= 0.9
    out1, lb1 = N4BiasFieldCorrection(reference_channel=1, return_log_bias=True)(x)
    assert lb1.shape == (1, *SHAPE) and _corr(lb1[0], log_b, body) >= 0.9
    np.testing.assert_allclose(out1[0].numpy(), a / np.exp(lb1[0].numpy()), rtol=1e-5)  # one field for all channels


def test_dict_form_shares_one_field_across_phases():
    obs, log_bias, body = _volume()
    aff = torch.as_tensor(_affine())
    pre = MetaTensor(torch.as_tensor(obs)[None], affine=aff)
    post = MetaTensor(torch.as_tensor(obs * np.where(body, 1.8, 1.0).astype(np.float32))[None], affine=aff)
    mask = torch.as_tensor(body)[None]
    d = {"T1pre": pre, "T1post1": post, "breast_mask": mask, "patient_id": "P"}
    out = N4BiasFieldCorrectiond(["T1pre", "T1post1"], mask_key="breast_mask", log_bias_key="T1pre_log_bias")(d)
    ratio_in = (post / pre).as_tensor()[mask]
    ratio_out = (out["T1post1"] / out["T1pre"]).as_tensor()[mask]
    assert torch.allclose(ratio_in, ratio_out, rtol=1e-4)  # relative enhancement kept
    assert _corr(out["T1pre_log_bias"][0], log_bias, body) >= 0.9
    assert torch.equal(out["T1post1"].affine, aff) and d["T1pre"] is pre



def test_dict_form_without_log_bias_key_gives_the_same_images_and_leaves_the_input():
    obs, _, body = _volume()
    aff = torch.as_tensor(_affine())
    pre = MetaTensor(torch.as_tensor(obs)[None], affine=aff)
    post = MetaTensor(torch.as_tensor(obs * 1.5)[None], affine=aff)
    before = pre.clone()
    kept = N4BiasFieldCorrectiond(["T1pre", "T1post1"], log_bias_key="lb")({"T1pre": pre, "T1post1": post})
    lean = N4BiasFieldCorrectiond(["T1pre", "T1post1"])({"T1pre": pre, "T1post1": post})
    assert "lb" not in lean and torch.equal(pre, before)
    for k in ("T1pre", "T1post1"):
        assert torch.equal(kept[k], lean[k])


def test_bias_correction_step_fits_t1_on_t1pre_and_t2_on_itself():
    obs, _, _ = _volume()
    aff = torch.as_tensor(_affine())
    t2_obs = _volume(seed=1, scale=-1.0)[0]

    def make():
        # torch.tensor copies: an in-place step would otherwise write through to the numpy arrays
        return {"T1pre": MetaTensor(torch.tensor(obs)[None], affine=aff), "T1post3": MetaTensor(torch.tensor(obs * 1.4)[None], affine=aff),
                "T2": MetaTensor(torch.tensor(t2_obs)[None], affine=aff), "label_map": MetaTensor(torch.ones(1, *SHAPE), affine=aff)}

    d = make()
    out = bias_correction(["T1pre", "T1post3", "T2", "label_map"])(d)  # in place by default: d holds the corrected images too
    t1 = N4BiasFieldCorrectiond(["T1pre", "T1post3"])(make())
    t2 = N4BiasFieldCorrectiond(["T2"], reference_key="T2")(make())
    for k, ref in (("T1pre", t1), ("T1post3", t1), ("T2", t2)):
        assert torch.equal(out[k], ref[k]) and torch.equal(d[k], ref[k]), k
    assert out["label_map"] is d["label_map"]
    kept = make()
    copy = bias_correction(["T1pre", "T1post3", "T2"], inplace=False)(kept)
    assert torch.equal(copy["T1pre"], t1["T1pre"]) and torch.equal(kept["T1pre"], make()["T1pre"])
    off = bias_correction(["T1pre", "T1post3", "T2"], enabled=False)(d)
    assert all(off[k] is d[k] for k in d)


def test_dict_checks_every_image_once_and_names_the_bad_key(monkeypatch):
    """The reference is checked by the fit and not again; a NaN in another phase is refused by name, nothing divided."""
    import dce_monai.transforms.bias_field as bf

    obs, _, _ = _volume()
    aff = torch.as_tensor(_affine())
    seen = []
    real = bf.check_finite
    monkeypatch.setattr(bf, "check_finite", lambda x, name, case: (seen.append(name), real(x, name, case))[1])
    d = {"T1pre": MetaTensor(torch.tensor(obs)[None], affine=aff), "T1post1": MetaTensor(torch.tensor(obs * 1.5)[None], affine=aff)}
    N4BiasFieldCorrectiond(["T1pre", "T1post1"])(d)
    assert seen == ["img", "T1post1"]
    bad = {"T1pre": MetaTensor(torch.tensor(obs)[None], affine=aff), "T1post1": MetaTensor(torch.tensor(obs)[None], affine=aff)}
    bad["T1post1"][0, 1, 2, 3] = float("nan")
    before = bad["T1pre"].clone()
    with pytest.raises(ValueError, match=r"'T1post1' has 1 NaN/Inf voxels"):
        N4BiasFieldCorrectiond(["T1pre", "T1post1"])(bad)
    assert torch.equal(bad["T1pre"], before)


@pytest.mark.parametrize(
    "keys, enabled, match",
    [(["T1post1", "T1post3"], True, "fits the T1 field on 'T1pre', which is not among the keys"), (["T1pre"], "yes", "must be true or false, got 'yes'")],
)
def test_bias_correction_step_errors(keys, enabled, match):
    with pytest.raises(ValueError, match=match):
        bias_correction(keys, enabled=enabled)

@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shrink": 0}, r"shrink must be an integer >= 1 or None, got 0"),
        ({"shrink": 2.0}, r"shrink must be an integer >= 1 or None, got 2.0"),
        ({"fit_spacing_mm": 0}, r"fit_spacing_mm must be a number > 0 \(mm\), got 0"),
        ({"fit_spacing_mm": "6"}, r"fit_spacing_mm must be a number > 0 \(mm\), got '6'"),
        ({"iterations": ()}, r"iterations must list >= 1 iterations per level, got \(\)"),
        ({"iterations": (50, 0)}, r"iterations must list >= 1 iterations per level"),
        ({"spline_distance_mm": 0}, r"spline_distance_mm must be > 0, got 0"),
        ({"convergence": -1}, r"convergence must be > 0, got -1"),
        ({"control_points": (3, 4, 4)}, r"control_points must be three integers >= 4"),
        ({"spacing": (1.0, 1.0)}, r"spacing must be three positive numbers \(mm\), got \(1.0, 1.0\)"),
        ({"reference_channel": -1}, r"reference_channel must be a channel index >= 0 or None, got -1"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        N4BiasFieldCorrection(**kwargs)


def test_input_errors():
    x = torch.rand(1, 16, 16, 8) + 1
    op = N4BiasFieldCorrection(spacing=(1, 1, 1))
    with pytest.raises(ValueError, match=r"input: N4BiasFieldCorrection needs the image geometry: pass a MetaTensor .* or give spacing=\(sx, sy, sz\); got a bare Tensor"):
        N4BiasFieldCorrection()(x)
    with pytest.raises(ValueError, match=r"'img' must be channel-first with 3 spatial dims \(C, X, Y, Z\), got shape \(1, 8, 8\)"):
        op(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match=r"'img' has 1 NaN/Inf voxels"):
        op(torch.tensor([[[[float("nan")]]]]))
    with pytest.raises(ValueError, match=r"reference_channel=2 but the image has 1 channel"):
        N4BiasFieldCorrection(spacing=(1, 1, 1), reference_channel=2)(x)
    with pytest.raises(ValueError, match=r"'mask' must be binary \(values 0/1\), found other values \[2.0\]"):
        op(x, torch.full((1, 16, 16, 8), 2.0))
    with pytest.raises(ValueError, match=r"'mask' must have shape \(1, 16, 16, 8\), got \(1, 16, 16, 4\)"):
        op(x, torch.ones(1, 16, 16, 4))
    with pytest.raises(ValueError, match=r"'mask' is empty"):
        op(x, torch.zeros(1, 16, 16, 8))
    with pytest.raises(ValueError, match=r"input: the N4 fitting mask is empty"):
        op(torch.zeros(1, 16, 16, 8))
    with pytest.raises(KeyError, match=r"patient 'P': missing N4 reference key 'T1pre'; available: \['T2', 'patient_id'\]"):
        N4BiasFieldCorrectiond(["T2"])({"T2": x, "patient_id": "P"})
    with pytest.raises(KeyError, match=r"missing N4 mask key 'body'"):
        N4BiasFieldCorrectiond(["T1pre"], mask_key="body", spacing=(1, 1, 1))({"T1pre": x})
    with pytest.raises(ValueError, match=r"'T1post1' has spatial shape \(16, 16, 4\), the N4 reference 'T1pre' \(16, 16, 8\)"):
        N4BiasFieldCorrectiond(["T1pre", "T1post1"], spacing=(1, 1, 1), iterations=(2,))({"T1pre": x, "T1post1": torch.ones(1, 16, 16, 4)})
    with pytest.raises(ValueError, match=r"reference_channel is not an option of N4BiasFieldCorrectiond"):
        N4BiasFieldCorrectiond(["T1pre"], reference_channel=1)


@pytest.mark.parametrize(
    ("spacing", "fit", "expected"),
    [((0.7, 0.7, 2.0), 6.0, [9, 9, 3]), ((1.6, 1.6, 3.0), 6.0, [4, 4, 2]), ((0.35, 0.35, 1.0), 6.0, [17, 17, 6]), ((8.0, 8.0, 8.0), 6.0, [1, 1, 1])],
)
def test_fit_shrink_factors_keep_the_fitting_grid_in_mm(spacing, fit, expected):
    factors = fit_shrink_factors(spacing, fit)
    assert factors == expected
    # the fitting voxel stays near the target whatever the acquisition's resolution
    assert all(f * s <= max(1.5 * fit, s) for f, s in zip(factors, spacing))
    assert fit_shrink_factors(spacing, fit, shape=(40, 16, 4)) == [min(expected[0], 5), min(expected[1], 2), 1]


@pytest.mark.parametrize(
    ("args", "match"),
    [(((1.0, 1.0, 1.0), 0.0), r"fit_spacing_mm must be > 0, got 0.0"), (((1.0, 0.0, 1.0), 6.0), r"spacing must be positive \(mm\), got \[1.0, 0.0, 1.0\]")],
)
def test_fit_shrink_factors_errors(args, match):
    with pytest.raises(ValueError, match=match):
        fit_shrink_factors(*args)


def test_fit_spacing_drives_the_shrink_and_explicit_shrink_overrides_it():
    obs, log_bias, body = _volume()
    aff = _affine()
    fine = n4_log_bias(obs, aff, fit_spacing_mm=0.5, iterations=(10, 10))  # every factor 1
    assert np.array_equal(fine, n4_log_bias(obs, aff, shrink=1, iterations=(10, 10)))
    coarse = n4_log_bias(obs, aff, fit_spacing_mm=8.0, iterations=(10, 10))  # factors (4, 4, 2)
    assert not np.array_equal(coarse, fine)
    assert not np.array_equal(coarse, n4_log_bias(obs, aff, shrink=3, fit_spacing_mm=8.0, iterations=(10, 10)))  # shrink wins
    assert _corr(coarse, log_bias, body) >= 0.9
    with pytest.raises(ValueError, match=r"spline_order must be an integer in 1..5, got 0"):
        n4_log_bias(obs, aff, spline_order=0)


def test_itk_libraries_load_only_when_a_transform_runs():
    """Importing the transforms leaves ITK's compiled modules unloaded (their first use costs seconds)."""
    import subprocess
    import sys

    code = (
        "import sys, dce_monai.transforms\n"
        "heavy = lambda: sorted(m for m in sys.modules if m.startswith('itk.') and m.endswith('Python'))\n"
        "print(len(heavy()))\n"
        "import numpy as np\n"
        "from dce_monai.transforms.bias_field import n4_log_bias\n"
        "n4_log_bias(np.random.default_rng(0).uniform(50, 100, (16, 16, 8)).astype('float32'), np.eye(4), iterations=(1,))\n"
        "print(len(heavy()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout.split()
    assert out[0] == "0" and int(out[1]) > 0


@pytest.mark.parametrize("shape", [(48, 48, 24), (37, 50, 11), (9, 16, 8)])
@pytest.mark.parametrize("factors", [(4, 4, 2), (3, 5, 1), (7, 2, 3)])
def test_numpy_shrink_is_itks_shrink_image_filter(shape, factors):
    """Same voxels and geometry as itk.shrink_image_filter, without the full-size ITK image."""
    import itk

    arr = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    axis_aligned = np.diag([*SPACING, 1.0])
    axis_aligned[:3, 3] = [10.0, -20.0, 5.0]
    for aff in (axis_aligned, _affine()):
        ref = itk.shrink_image_filter(_itk_image(arr, aff), shrink_factors=list(factors))
        ours = _shrunk_itk_image(arr, aff, factors)
        np.testing.assert_allclose(np.array(ours.GetSpacing()), np.array(ref.GetSpacing()), rtol=1e-12)
        np.testing.assert_allclose(np.array(ours.GetOrigin()), np.array(ref.GetOrigin()), atol=1e-9)
        assert np.array_equal(itk.array_from_matrix(ours.GetDirection()), itk.array_from_matrix(ref.GetDirection()))
        assert np.array_equal(itk.array_from_image(ours), itk.array_from_image(ref))  # oblique too: ITK's own rounding
    # the closed-form rule gives the same voxels on an axis-aligned grid (on an oblique one ITK's
    # float round trip may keep the neighbour where the centred offset is a half voxel)
    ref = itk.shrink_image_filter(_itk_image(arr, axis_aligned), shrink_factors=list(factors))
    assert np.array_equal(arr[shrink_slices(shape, factors)].transpose(2, 1, 0), itk.array_from_image(ref))


@pytest.mark.parametrize("order", [3, 2])
def test_separable_lattice_evaluation_is_itks_reconstruct_bias_field(order):
    """evaluate_lattice gives ITK's ReconstructBiasField of the fitted lattice on the full grid."""
    import itk

    obs, _, _ = _volume()
    aff = _affine()
    small = itk.shrink_image_filter(_itk_image(obs, aff), shrink_factors=[4, 4, 2])
    small_m = itk.shrink_image_filter(_itk_image(np.ones(SHAPE, np.uint8), aff), shrink_factors=[4, 4, 2])
    n4 = itk.N4BiasFieldCorrectionImageFilter[type(small), type(small_m), type(small)].New()
    n4.SetInput(small)
    n4.SetMaskImage(small_m)
    n4.SetNumberOfFittingLevels(2)
    n4.SetMaximumNumberOfIterations([10, 10])
    n4.SetSplineOrder(order)
    n4.SetNumberOfControlPoints([order + 2] * 3)
    n4.Update()
    lat = n4.GetLogBiasFieldControlPointLattice()
    size = [int(v) for v in lat.GetLargestPossibleRegion().GetSize()]
    lattice = np.array([[[lat.GetPixel([i, j, k])[0] for k in range(size[2])] for j in range(size[1])] for i in range(size[0])])
    n4.SetInput(_itk_image(obs, aff))
    ref = itk.array_from_image(n4.ReconstructBiasField(lat)).transpose(2, 1, 0)
    ours = evaluate_lattice(lattice, SHAPE, order)
    assert np.abs(ref).max() > 0.05 and np.abs(ours - ref).max() < 5e-5  # float32 rounding (ITK evaluates in float)
    np.testing.assert_allclose(bspline_basis(17, 7, order).sum(axis=1), 1.0, atol=1e-12)


def test_n4_matches_the_itk_pipeline_it_replaces():
    """n4_log_bias (numpy shrink + separable evaluation) equals ITK shrink + N4 + ReconstructBiasField."""
    import itk

    obs, _, _ = _volume()
    aff = _affine()
    mask = obs > np.percentile(obs, 99) * 0.05
    img, m = _itk_image(obs, aff), _itk_image(mask.view(np.uint8), aff)
    factors = fit_shrink_factors(img.GetSpacing(), 8.0, SHAPE)
    small, small_m = (itk.shrink_image_filter(x, shrink_factors=factors) for x in (img, m))
    n4 = itk.N4BiasFieldCorrectionImageFilter[type(small), type(small_m), type(small)].New()
    n4.SetInput(small)
    n4.SetMaskImage(small_m)
    n4.SetNumberOfFittingLevels(2)
    n4.SetMaximumNumberOfIterations([50, 50])
    n4.SetConvergenceThreshold(1e-3)
    n4.SetNumberOfControlPoints([4, 4, 4])
    n4.Update()
    n4.SetInput(img)
    ref = itk.array_from_image(n4.ReconstructBiasField(n4.GetLogBiasFieldControlPointLattice())).transpose(2, 1, 0)
    assert np.abs(n4_log_bias(obs, aff) - ref).max() < 5e-5  # float32 rounding of a field of amplitude ~0.4


@pytest.mark.parametrize("kind", ["meta", "torch", "int32"])
def test_inplace_dict_form_gives_the_same_images(kind):
    obs, _, _ = _volume()
    aff = torch.as_tensor(_affine())

    def make():
        pre, post = torch.tensor(obs)[None], torch.tensor(obs * 1.3)[None]
        if kind == "int32":
            pre, post = pre.round().int(), post.round().int()
        if kind != "torch":
            pre, post = MetaTensor(pre, affine=aff), MetaTensor(post, affine=aff)
        return {"T1pre": pre, "T1post1": post, "same": post}

    kw = {} if kind != "torch" else {"spacing": SPACING}
    want = N4BiasFieldCorrectiond(["T1pre", "T1post1", "same"], **kw)(make())
    d = make()
    got = N4BiasFieldCorrectiond(["T1pre", "T1post1", "same"], inplace=True, **kw)(d)
    for k in ("T1pre", "T1post1", "same"):
        assert torch.equal(torch.as_tensor(got[k]), torch.as_tensor(want[k])), k
        assert got[k].dtype == torch.float32
    assert torch.equal(torch.as_tensor(got["same"]), torch.as_tensor(got["T1post1"]))  # one tensor under two keys: divided once
    shares = kind != "int32"  # float32 storage is reused; other dtypes get a new float32 tensor
    assert (got["T1post1"].data_ptr() == d["T1post1"].data_ptr()) == shares
