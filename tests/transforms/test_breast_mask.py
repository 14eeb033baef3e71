from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.data.phantom import PhantomConfig, simulate_patient
from dce_monai.transforms import BreastMask, BreastMaskd
from dce_monai.transforms.breast_mask import LEFT, RIGHT


@pytest.fixture(scope="module")
def cases():
    """Two tiny phantom patients (64x64x16 at 3.2x3.2x6 mm)."""
    return [simulate_patient(s, PhantomConfig.tiny()) for s in (0, 1)]


def _meta(arr, affine, **meta):
    return MetaTensor(torch.as_tensor(np.asarray(arr, np.float32))[None], affine=torch.as_tensor(affine), meta=meta)


def _dice(a, b):
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _lps(arr, affine):
    """The same volume stored in LPS voxel order (x and y flipped), as MAMA-MIA ships it."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [arr.shape[0] - 1, arr.shape[1] - 1]
    return arr[::-1, ::-1, :].copy(), affine @ flip


def _permuted(arr, affine, perm=(1, 2, 0)):
    """The same volume with its voxel axes permuted (e.g. stored as sagittal slices)."""
    p = np.eye(4)
    p[:3, :3] = np.eye(3)[:, perm]
    return np.transpose(arr, perm).copy(), affine @ p


@pytest.mark.parametrize("idx", [0, 1])
def test_dice_against_the_phantom_breast_mask(cases, idx):
    # measured: Dice 0.987 (patient 0) and 0.987 (patient 1) with the default 3x3x3 median
    c = cases[idx]
    m = BreastMask()(_meta(c.images["T1pre"], c.affine))
    assert _dice(m[0], c.breast_mask) >= 0.97
    lesions = c.label_map > 0
    assert (np.asarray(m[0])[lesions] > 0).all()  # every lesion voxel inside the mask
    assert m.meta["breast_mask"]["cleft_slices"] > 0


@pytest.mark.parametrize("store", ["ras", "lps", "permuted"])
def test_orientation_is_read_from_the_affine(cases, store):
    c = cases[0]
    ref = BreastMask(split=True)(_meta(c.images["T1pre"], c.affine))[0].numpy()
    arr, aff = c.images["T1pre"], c.affine
    if store == "lps":
        arr, aff = _lps(arr, aff)
        expect = ref[::-1, ::-1, :]
    elif store == "permuted":
        arr, aff = _permuted(arr, aff)
        expect = np.transpose(ref, (1, 2, 0))
    else:
        expect = ref
    out = BreastMask(split=True)(_meta(arr, aff))
    np.testing.assert_array_equal(out[0].numpy(), expect)  # same voxels, same left/right labels
    np.testing.assert_allclose(out.affine.numpy(), aff)


def test_split_labels_patient_left_and_right(cases):
    c = cases[1]
    m = BreastMask(split=True)(_meta(c.images["T1pre"], c.affine))[0].numpy()
    assert set(np.unique(m)) == {0, LEFT, RIGHT}
    world_x = c.affine[0, 0] * np.arange(m.shape[0]) + c.affine[0, 3]  # RAS: +x is the patient's right
    xs = np.nonzero(m)[0]
    left_x, right_x = world_x[xs[m[m > 0] == LEFT]], world_x[xs[m[m > 0] == RIGHT]]
    assert left_x.max() < right_x.min()
    whole = BreastMask()(_meta(c.images["T1pre"], c.affine))[0].numpy()
    np.testing.assert_array_equal(whole, (m > 0).astype(np.uint8))


def test_output_meta_dtype_and_chest_margin(cases):
    c = cases[0]
    img = _meta(c.images["T1pre"], c.affine, filename_or_obj="PH0000_T1pre.nii.gz")
    m = BreastMask()(img)
    assert isinstance(m, MetaTensor) and m.dtype == torch.uint8 and m.shape == img.shape
    assert torch.equal(m.affine, img.affine)
    assert m.meta["filename_or_obj"] == "PH0000_T1pre.nii.gz"
    assert set(m.meta["breast_mask"]) == {"threshold", "cleft_slices", "cut_y_mm", "volume_ml"}
    smaller = BreastMask(chest_margin_mm=10.0)(img)
    assert 0 < smaller.sum() < m.sum()
    assert smaller.meta["breast_mask"]["cut_y_mm"] == pytest.approx(m.meta["breast_mask"]["cut_y_mm"] + 10.0, abs=1e-6)
    # a fixed threshold above all tissue leaves nothing to segment
    with pytest.raises(ValueError, match="no voxel above the air/body threshold"):
        BreastMask(threshold=1e9)(img)


def test_dict_form_parity_and_overwrite(cases):
    c = cases[0]
    pre = _meta(c.images["T1pre"], c.affine)
    d = BreastMaskd(split=True)({"patient_id": "PH0000", "T1pre": pre})
    np.testing.assert_array_equal(d["breast_mask"].numpy(), BreastMask(split=True)(pre).numpy())
    shipped = MetaTensor(torch.zeros_like(pre.as_tensor(), dtype=torch.uint8), affine=pre.affine)
    kept = BreastMaskd()({"T1pre": pre, "breast_mask": shipped})
    assert kept["breast_mask"] is shipped
    redone = BreastMaskd(overwrite=True, output_key="breast_mask")({"T1pre": pre, "breast_mask": shipped})
    assert redone["breast_mask"].sum() > 0
    other = BreastMaskd(output_key="body_breasts")({"T1pre": pre})
    assert "body_breasts" in other and "breast_mask" not in other
    # no image needed when the mask is already there
    assert BreastMaskd()({"breast_mask": shipped})["breast_mask"] is shipped


def test_no_cleft_is_an_error():
    # a single ellipsoid body: no two breasts, no cleft
    shape = (40, 40, 10)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    body = (((idx - [19.5, 19.5, 4.5]) / [15, 12, 8]) ** 2).sum(-1) <= 1
    img = np.where(body, 1000.0, 10.0) + np.random.default_rng(0).normal(0, 5, shape)
    with pytest.raises(ValueError, match=r"patient 'P9': 'T1pre': no inter-mammary cleft in any slice"):
        BreastMaskd()({"patient_id": "P9", "T1pre": _meta(img, np.diag([2.0, 2.0, 4.0, 1.0]))})


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_bare_tensor_is_refused(cases, kind):
    arr = cases[0].images["T1pre"].astype(np.float32)[None]
    x = arr if kind == "numpy" else torch.from_numpy(arr)
    with pytest.raises(ValueError, match=r"BreastMask needs the orientation of 'img'.*bare"):
        BreastMask()(x)


def test_bad_inputs(cases):
    c = cases[0]
    pre = _meta(c.images["T1pre"], c.affine)
    two = MetaTensor(torch.cat([pre.as_tensor(), pre.as_tensor()]), affine=pre.affine)
    with pytest.raises(ValueError, match=r"'T1pre' must have one channel"):
        BreastMask()(two, name="T1pre")
    with pytest.raises(ValueError, match=r"must be channel-first with 3 spatial dims"):
        BreastMask()(pre[0])
    flat = MetaTensor(torch.full_like(pre.as_tensor(), 7.0), affine=pre.affine)
    with pytest.raises(ValueError, match=r"the image is constant \(value 7\)"):
        BreastMask()(flat)
    bad = pre.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        BreastMask()(bad)
    with pytest.raises(KeyError, match=r"patient 'P1': missing image key 'T1pre' to compute 'breast_mask'"):
        BreastMaskd()({"patient_id": "P1", "T1post1": pre})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"median_size": 2}, "median_size must be an odd integer >= 1"),
        ({"median_size": 0}, "median_size must be an odd integer >= 1"),
        ({"threshold": float("nan")}, "threshold must be a finite number or None"),
        ({"min_cleft_depth_mm": 0}, "min_cleft_depth_mm must be a number > 0"),
        ({"chest_margin_mm": float("inf")}, "chest_margin_mm must be a finite number"),
        ({"min_component_fraction": 1.5}, r"min_component_fraction must be in \[0, 1\]"),
        ({"split": "yes"}, "split must be True or False"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BreastMask(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_key": ""}, "image_key must be a non-empty string"),
        ({"output_key": None}, "output_key must be a non-empty string"),
        ({"output_key": "T1pre"}, "output_key must differ from image_key"),
        ({"overwrite": 1}, "overwrite must be True or False"),
        ({"median_size": 4}, "median_size must be an odd integer"),
    ],
)
def test_dict_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BreastMaskd(**kwargs)
