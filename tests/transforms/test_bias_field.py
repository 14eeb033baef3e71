from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.data.phantom import simulate_patient
from dce_monai.transforms.bias_field import N4BiasFieldCorrection, N4BiasFieldCorrectiond


@pytest.fixture(scope="module")
def case():
    return simulate_patient(0)


def _corr(a, b, m):
    return np.corrcoef(a[m], b[m])[0, 1]


def test_n4_recovers_phantom_bias_and_keeps_affine(case):
    aff = torch.as_tensor(case.affine)
    x = MetaTensor(torch.as_tensor(case.images["T1pre"].astype(np.float32))[None], affine=aff, meta={"filename_or_obj": "pre.nii.gz"})
    body = case.tissue_map > 0
    out, lb = N4BiasFieldCorrection(return_log_bias=True)(x, torch.as_tensor(body)[None])
    assert _corr(lb[0].numpy(), np.log(case.bias_field), body) >= 0.9
    assert torch.equal(out.affine, aff) and out.meta["filename_or_obj"] == "pre.nii.gz" and out.shape == x.shape
    # the corrected image is flatter inside fat than the input
    fat = case.tissue_map == 1
    cv = lambda a: a[fat].std() / a[fat].mean()  # noqa: E731
    assert cv(out[0].numpy()) < cv(x[0].numpy())


def test_dict_form_shares_one_field_across_phases(case):
    aff = torch.as_tensor(case.affine)
    d = {k: MetaTensor(torch.as_tensor(case.images[k].astype(np.float32))[None], affine=aff) for k in ("T1pre", "T1post1")}
    d["body"] = torch.as_tensor(case.tissue_map > 0)[None]
    out = N4BiasFieldCorrectiond(["T1pre", "T1post1"], mask_key="body", log_bias_key="log_bias")(d)
    body = torch.as_tensor(case.tissue_map > 0)[None]
    ratio_in = (d["T1post1"] / d["T1pre"]).as_tensor()[body & (d["T1pre"].as_tensor() > 0)]
    ratio_out = (out["T1post1"] / out["T1pre"]).as_tensor()[body & (d["T1pre"].as_tensor() > 0)]
    assert torch.allclose(ratio_in, ratio_out, rtol=1e-4)  # relative enhancement kept
    assert "log_bias" in out and torch.equal(out["T1post1"].affine, aff)


def test_bare_tensor_needs_spacing():
    x = torch.rand(1, 16, 16, 8) + 1
    with pytest.raises(ValueError, match=r"needs the image geometry: pass a MetaTensor .* or give spacing"):
        N4BiasFieldCorrection()(x)
    out = N4BiasFieldCorrection(spacing=(2.0, 2.0, 3.0), iterations=(5,))(x)
    assert out.shape == x.shape and not isinstance(out, MetaTensor)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shrink": 0}, r"shrink must be an integer >= 1, got 0"),
        ({"iterations": ()}, r"iterations must list >= 1 iterations per level"),
        ({"spline_distance_mm": 0}, r"spline_distance_mm must be > 0"),
        ({"spacing": (1.0, 1.0)}, r"spacing must be three positive numbers"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        N4BiasFieldCorrection(**kwargs)


def test_input_errors():
    with pytest.raises(ValueError, match=r"'img' must be channel-first with 3 spatial dims"):
        N4BiasFieldCorrection(spacing=(1, 1, 1))(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match=r"'img' has 1 NaN/Inf voxels"):
        N4BiasFieldCorrection(spacing=(1, 1, 1))(torch.tensor([[[[float("nan")]]]]))
    with pytest.raises(ValueError, match=r"reference_channel=2 but the image has 1 channel"):
        N4BiasFieldCorrection(spacing=(1, 1, 1), reference_channel=2)(torch.rand(1, 4, 4, 4))
    with pytest.raises(KeyError, match=r"patient 'P': missing N4 reference key 'T1pre'"):
        N4BiasFieldCorrectiond(["T2"])({"T2": torch.rand(1, 4, 4, 4), "patient_id": "P"})
