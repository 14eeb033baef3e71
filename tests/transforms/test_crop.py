"""Tests for dce_monai.transforms.crop (BoundingBoxCrop[d])."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.crop import (
    BoundingBoxCrop,
    BoundingBoxCropd,
    mask_bounding_box,
)

AFF = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0], dtype=torch.float64))


def _data(kind: str) -> tuple[object, object]:
    img = np.random.default_rng(0).random((1, 16, 16, 8)).astype(np.float32)
    m = np.zeros((1, 16, 16, 8), dtype=np.float32)
    m[0, 4:8, 4:8, 2:4] = 1
    if kind == "numpy":
        return img, m
    if kind == "torch":
        return torch.as_tensor(img), torch.as_tensor(m)
    return MetaTensor(torch.as_tensor(img), affine=AFF), MetaTensor(torch.as_tensor(m), affine=AFF)


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_shape_and_content(kind: str) -> None:
    img, m = _data(kind)
    out = BoundingBoxCrop((4, 4, 2), margin=0, mode="nearest")(img, m)
    assert tuple(out.shape) == (1, 4, 4, 2)
    ref = np.asarray(img)[:, 4:8, 4:8, 2:4]
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-6)


def test_box_margin_voxel_and_mm() -> None:
    _, m = _data("meta")
    assert mask_bounding_box(m, margin=1) == ([3, 3, 1], [9, 9, 5])
    # 3 mm margin: 2 voxels in x/y (2 mm spacing -> ceil(1.5)), 1 voxel in z (3 mm spacing)
    assert mask_bounding_box(m, margin=3, margin_unit="mm") == ([2, 2, 1], [10, 10, 5])
    # clipped to the image
    assert mask_bounding_box(m, margin=10) == ([0, 0, 0], [16, 16, 8])


def test_affine_and_invertible() -> None:
    img, m = _data("meta")
    out = BoundingBoxCrop((8, 8, 4), margin=2)(img, m)
    aff = np.asarray(out.affine)
    np.testing.assert_allclose(np.diag(aff)[:3], [2.0, 2.0, 4.5])
    np.testing.assert_allclose(aff[:3, 3], [4.0, 4.0, 0.75])
    assert [op["class"] for op in out.applied_operations] == ["BoundingBoxCrop"]  # one entry, MONAI's steps inside
    assert [op["class"] for op in out.applied_operations[0]["extra_info"]["sub"]] == ["SpatialCrop", "Resize"]


def test_dict_mask_nearest_and_aligned() -> None:
    img, m = _data("meta")
    d = {"sub": img, "mask": m, "patient_id": "P1"}
    out = BoundingBoxCropd(["sub", "mask"], "mask", (8, 8, 4), margin=2, mode=["trilinear", "nearest"])(d)
    assert out["sub"].shape == (1, 8, 8, 4)
    assert set(torch.unique(out["mask"]).tolist()) <= {0.0, 1.0}
    assert out["mask"].sum() > 0
    np.testing.assert_allclose(np.asarray(out["sub"].affine), np.asarray(out["mask"].affine))


def test_dict_inverse() -> None:
    img, m = _data("meta")
    t = BoundingBoxCropd(["sub", "mask"], "mask", (4, 4, 2), margin=0, mode="nearest")
    out = t({"sub": img, "mask": m})
    back = t.inverse(out)
    assert back["sub"].shape == (1, 16, 16, 8)
    np.testing.assert_allclose(np.asarray(back["sub"].affine), np.asarray(AFF))
    np.testing.assert_allclose(np.asarray(back["mask"]), np.asarray(m))
    assert len(back["sub"].applied_operations) == 0
    with pytest.raises(RuntimeError, match="getting the most recently applied invertible transform Flip"):
        from monai.transforms import Flip

        BoundingBoxCrop((4, 4, 2)).inverse(Flip(0)(MetaTensor(torch.zeros(1, 4, 4, 2))))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spatial_size": 8}, "spatial_size must be"),
        ({"spatial_size": (8, 0, 4)}, "spatial_size must be"),
        ({"spatial_size": (8, 8, 4), "margin": -1}, "margin must be"),
        ({"spatial_size": (8, 8, 4), "margin": "x"}, "margin must be"),
        ({"spatial_size": (8, 8, 4), "margin_unit": "cm"}, "cm"),
        ({"spatial_size": (8, 8, 4), "mode": "cubic"}, "cubic"),
    ],
)
def test_init_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BoundingBoxCrop(**kwargs)


def test_call_errors() -> None:
    img, m = _data("meta")
    t = BoundingBoxCrop((8, 8, 4))
    with pytest.raises(ValueError, match="must be non-empty|empty"):
        t(img, m * 0, case="patient 'P1'")
    with pytest.raises(ValueError, match="binary"):
        t(img, m * 2)
    with pytest.raises(ValueError, match="3 spatial dims"):
        t(img[0], m)
    other = MetaTensor(m.as_tensor(), affine=torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="affine|grid"):
        t(img, other)
    with pytest.raises(ValueError, match="margin must be"):
        mask_bounding_box(m, margin=-2)


def test_dict_errors() -> None:
    img, m = _data("meta")
    with pytest.raises(ValueError, match="mask_key must be"):
        BoundingBoxCropd(["sub"], "", (8, 8, 4))
    t = BoundingBoxCropd(["sub"], "mask", (8, 8, 4))
    with pytest.raises(ValueError, match="patient 'P7'.*mask key 'mask' not found"):
        t({"sub": img, "patient_id": "P7"})
    with pytest.raises(ValueError, match="patient 'P7'.*'mask'"):
        t({"sub": img, "mask": m * 0, "patient_id": "P7"})


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_lesion_maskd(kind: str) -> None:
    from dce_monai.transforms.crop import LesionMaskd

    lm = np.zeros((1, 6, 6, 2), dtype=np.float32)
    lm[0, 1:3, 1:3, 0] = 2
    lm[0, 4, 4, 1] = 1
    cand = np.zeros_like(lm)
    cand[0, 1, 1, 0] = 1
    conv = {"numpy": np.asarray, "torch": torch.as_tensor, "meta": lambda a: MetaTensor(torch.as_tensor(a), affine=AFF)}[kind]
    d = {"label_map": conv(lm), "label_value": 2, "cand": conv(cand), "lesion_id": "L9"}
    assert LesionMaskd()(d)["mask"].sum().item() == 4
    assert LesionMaskd(intersect_key="cand")(d)["mask"].sum().item() == 1
    d["cand"] = conv(cand * 0)
    with pytest.raises(ValueError, match="lesion 'L9'.*'cand' has no voxel inside lesion 2"):
        LesionMaskd(intersect_key="cand")(d)
    assert LesionMaskd(intersect_key="cand", on_empty="lesion")(d)["mask"].sum().item() == 4
    with pytest.raises(ValueError, match="label_value=5 does not occur"):
        LesionMaskd()({**d, "label_value": 5})
    with pytest.raises(ValueError, match="key 'label_value' not found"):
        LesionMaskd()({"label_map": conv(lm)})
    with pytest.raises(ValueError, match="drop"):
        LesionMaskd(on_empty="drop")
    assert set(LesionMaskd(allow_missing_keys=True)({"label_map": conv(lm)})) == {"label_map"}
    skipped = LesionMaskd(allow_missing_keys=True)({"label_value": 2})
    assert "mask" not in skipped and skipped == {"label_value": 2}


# ----------------------------------------------------------------------------- composing like MONAI's own


def _box_data(kind: str):
    img = np.random.default_rng(1).random((1, 20, 16, 12)).astype(np.float32)
    m = np.zeros((1, 20, 16, 12), dtype=np.float32)
    m[0, 4:12, 6:14, 2:10] = 1  # an 8 x 8 x 8 box
    conv = {"numpy": np.asarray, "torch": torch.as_tensor, "meta": lambda a: MetaTensor(torch.as_tensor(a), affine=AFF)}[kind]
    return conv(img), conv(m)


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
@pytest.mark.parametrize("mode", ["trilinear", "nearest"])
def test_local_inverse_one_entry(kind: str, mode: str) -> None:
    img, m = _box_data(kind)
    t = BoundingBoxCrop((4, 4, 4), margin=0, mode=mode)
    out = t(img, m)
    assert isinstance(out, MetaTensor) and [e["class"] for e in out.applied_operations] == ["BoundingBoxCrop"]
    back = t.inverse(out)
    assert back.shape == (1, 20, 16, 12) and not back.applied_operations
    torch.testing.assert_close(back.affine, AFF if kind == "meta" else torch.eye(4, dtype=torch.float64))
    inside = torch.as_tensor(np.asarray(m)) > 0
    assert float(back.as_tensor()[~inside].abs().max()) == 0.0  # outside the box: padded back with 0
    assert float(back.as_tensor()[inside].abs().sum()) > 0


@pytest.mark.parametrize("mode, size", [("trilinear", (4, 4, 4)), ("nearest", (8, 8, 8)), ("trilinear", (8, 8, 4))])
def test_lazy_equals_eager(lazy_check, mode: str, size: tuple[int, int, int]) -> None:
    """Exact 2x down-sampling (linear voxel centres fall between two voxels of the box) or a
    plain crop: one pending operation resamples like crop + resize. (Nearest 2x down-sampling
    samples exactly half-way between voxels, where eager and lazy may round differently.)"""
    img, m = _box_data("meta")
    t = BoundingBoxCrop(size, margin=0, mode=mode)
    overrides = {"mode": "nearest" if mode == "nearest" else "bilinear", "padding_mode": "zeros"}
    lazy_check(t, lambda: t(img, m), t(img, m), overrides=overrides, atol=1e-5)
    d = {"sub": img, "mask": m}
    td = BoundingBoxCropd(["sub", "mask"], "mask", size, mode=mode)
    lazy_check(td, lambda: td(dict(d)), td(dict(d)), key="sub", overrides=overrides)


def test_dict_compose_inverse_and_invertd() -> None:
    """``BoundingBoxCropd`` between MONAI transforms: ``Compose.inverse`` and ``Invertd`` map a
    prediction on the crop (e.g. a CAM) back to the input grid."""
    from monai.transforms import Compose, Flipd, Invertd, Rotate90d

    img, m = _box_data("meta")
    pre = Compose([Flipd(["sub", "mask"], 0), BoundingBoxCropd(["sub", "mask"], "mask", (8, 8, 8), mode=["trilinear", "nearest"]), Rotate90d(["sub", "mask"])])
    d = pre({"sub": img, "mask": m})
    assert [e["class"] for e in d["sub"].applied_operations] == ["Flip", "BoundingBoxCropd", "Rotate90"]
    back = pre.inverse(d)
    inside = m.as_tensor() > 0
    torch.testing.assert_close(back["sub"].as_tensor()[inside], img.as_tensor()[inside])  # the box comes back exactly
    torch.testing.assert_close(back["mask"].as_tensor(), m.as_tensor())
    d = pre({"sub": img, "mask": m})  # inverse popped the trace of the tensors it was given
    d["cam"] = d["sub"] * 0 + 1.0
    cam = Invertd("cam", pre, orig_keys="sub")(d)["cam"]
    assert cam.shape == (1, 20, 16, 12) and torch.equal(cam.as_tensor() > 0, inside)
    torch.testing.assert_close(cam.affine, AFF)


def test_dict_allow_missing_keys() -> None:
    img, m = _box_data("meta")
    t = BoundingBoxCropd(["sub", "T2"], "mask", (4, 4, 4), allow_missing_keys=True)
    out = t({"sub": img, "mask": m})
    assert "T2" not in out and out["sub"].shape == (1, 4, 4, 4)
    assert t.inverse(out)["sub"].shape == (1, 20, 16, 12)


def test_in_lazy_compose_equals_eager() -> None:
    """In ``Compose(lazy=True)`` the pending ``Flipd`` is applied before the box is read from the
    mask (``requires_current_data``); crop + resize and the following ``Rotate90d`` then resample once."""
    from monai.transforms import Compose, Flipd, Rotate90d

    img, m = _box_data("meta")
    steps = lambda: [Flipd(["sub", "mask"], 0), BoundingBoxCropd(["sub", "mask"], "mask", (4, 4, 4)), Rotate90d(["sub", "mask"])]  # noqa: E731
    eager = Compose(steps())({"sub": img, "mask": m})
    lazy_pipe = Compose(steps(), lazy=True, overrides={"sub": {"mode": "bilinear", "padding_mode": "zeros"}, "mask": {"mode": "bilinear", "padding_mode": "zeros"}})
    lazy = lazy_pipe({"sub": img, "mask": m})
    for k in ("sub", "mask"):
        torch.testing.assert_close(lazy[k].as_tensor(), eager[k].as_tensor(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(lazy[k].affine, eager[k].affine)
        assert [e["lazy"] for e in lazy[k].applied_operations] == [True, True, True]
    back = lazy_pipe.inverse(lazy)
    assert back["sub"].shape == (1, 20, 16, 12) and not back["sub"].applied_operations
