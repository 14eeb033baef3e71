"""Tests for dce_monai.transforms.utils: the input checks and meta helpers shared by the transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, set_track_meta
from monai.transforms import Rotate90, SpatialPad

from dce_monai.transforms.utils import (
    case_label,
    check_binary_mask,
    check_finite,
    check_real_dtype,
    check_same_grid,
    check_spatial_dims,
    fresh_tensor,
    names_in,
    record_as_one,
    spatial_shape,
    to_float_tensor,
    wrap_like,
)


@pytest.fixture()
def no_meta():  # type: ignore[no-untyped-def]
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(True)


def test_case_label() -> None:
    assert case_label(None) == "input"
    assert case_label({}) == "input"
    assert case_label({"image": 1}) == "input"
    assert case_label({"patient_id": "PH0003"}) == "patient 'PH0003'"
    assert case_label({"lesion_id": "L1", "patient_id": "PH0003", "x": 0}) == "patient 'PH0003' lesion 'L1'"


def test_spatial_shape_and_names_in() -> None:
    assert spatial_shape(np.zeros((2, 4, 5, 6))) == (4, 5, 6)
    assert spatial_shape(torch.zeros(1, 3, 2)) == (3, 2)
    assert names_in({"a": 1, "b": 2}, ["a", "c", "d"]) == ["c", "d"]
    assert names_in({"a": 1}, ["a"]) == []


def test_check_spatial_dims() -> None:
    check_spatial_dims(torch.zeros(1, 2, 3, 4), 3)
    check_spatial_dims(np.zeros((2, 3, 4)), 2)
    with pytest.raises(ValueError, match=r"^patient 'P1': 'T1pre' must be channel-first with 3 spatial dims \(C, X, Y, Z\), got shape \(64, 64\)\.$"):
        check_spatial_dims(np.zeros((64, 64)), 3, "T1pre", "patient 'P1'")
    with pytest.raises(ValueError, match=r"^input: 'img' must be channel-first with 2 spatial dims \(C, X, Y\), got shape \(1, 2, 3, 4\)\.$"):
        check_spatial_dims(np.zeros((1, 2, 3, 4)), 2)
    with pytest.raises(ValueError, match=r"must be channel-first with 4 spatial dims \(C, 4 spatial\)"):
        check_spatial_dims(np.zeros((1, 2)), 4)
    with pytest.raises(ValueError, match=r"^input: 'mask' is empty: shape \(1, 0, 3, 4\) has a zero-size axis\.$"):
        check_spatial_dims(np.zeros((1, 0, 3, 4)), 3, "mask")


def test_check_same_grid() -> None:
    check_same_grid({})
    check_same_grid({"a": np.zeros((1, 4, 4, 2)), "b": np.zeros((2, 4, 4, 2))})  # channels may differ
    with pytest.raises(ValueError, match=r"^case 7: sequences are on different grids: 'T1pre' has spatial shape \(4, 4, 2\) but 'T1post' has \(4, 4, 3\)\.$"):
        check_same_grid({"T1pre": np.zeros((1, 4, 4, 2)), "T1post": np.zeros((1, 4, 4, 3))}, case="case 7")
    a = MetaTensor(torch.zeros(1, 4, 4, 2))
    shifted = torch.eye(4, dtype=torch.float64)
    shifted[0, 3] = 0.5
    b = MetaTensor(torch.zeros(1, 4, 4, 2), affine=shifted)
    with pytest.raises(ValueError, match=r"^input: sequences are on different grids: the affine of 'b' differs from that of 'a' by up to 0\.5 mm\.$"):
        check_same_grid({"a": a, "b": b})
    check_same_grid({"a": a, "b": b}, atol_mm=0.6)  # within tolerance
    shifted[0, 3] = 1e-4
    check_same_grid({"a": a, "b": MetaTensor(torch.zeros(1, 4, 4, 2), affine=shifted)})  # under the default 1e-3 mm
    check_same_grid({"a": a, "b": np.zeros((1, 4, 4, 2))})  # no affine on a plain array: shape only


def test_check_real_dtype_and_finite() -> None:
    for ok in (np.zeros(3, np.uint16), np.ones(3, bool), torch.zeros(3, dtype=torch.int64), [1.0, 2.0]):
        check_real_dtype(ok)
        check_finite(ok)
    with pytest.raises(TypeError, match=r"^patient 'P1': 'T1pre': image data must be real-valued, got complex dtype complex64; take \.real or \.abs\(\) first\.$"):
        check_real_dtype(np.zeros(3, np.complex64), "T1pre", "patient 'P1'")
    with pytest.raises(TypeError, match=r"^input: 'img': image data must be real-valued, got complex dtype torch\.complex64; take \.real"):
        check_real_dtype(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"^input: 'x': image data must be numeric, got dtype <U1\.$"):
        check_real_dtype(np.array(["a"]), "x")
    with pytest.raises(TypeError, match=r"image data must be numeric, got dtype object"):
        check_finite(np.array([None, 1.0], dtype=object))
    bad = np.ones((1, 2, 2, 2), np.float32)
    bad[0, 0, 0, 0] = np.nan
    bad[0, 1, 1, 1] = -np.inf
    with pytest.raises(ValueError, match=r"^patient 'P2': 'sub' has 2 NaN/Inf voxels; clean or mask them first\.$"):
        check_finite(bad, "sub", "patient 'P2'")
    with pytest.raises(ValueError, match=r"has 1 NaN/Inf voxels"):
        check_finite(torch.tensor([0.0, float("inf")]))


def test_check_binary_mask() -> None:
    check_binary_mask(np.array([0, 1, 1], np.uint8))
    check_binary_mask(torch.tensor([False, True]))
    check_binary_mask(np.zeros(3), allow_empty=True)
    with pytest.raises(ValueError, match=r"^lesion 'L1': 'mask' must be binary \(values 0/1\), found other values \[2\]\.$"):
        check_binary_mask(np.array([0, 1, 2]), case="lesion 'L1'")
    with pytest.raises(ValueError, match=r"found other values \[2, 3, 4, 5, 6\] \.\.\.\.$"):
        check_binary_mask(torch.arange(10))
    with pytest.raises(ValueError, match=r"found other values \[0\.5\]"):
        check_binary_mask(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"^input: 'roi' is empty \(no foreground voxel\)\.$"):
        check_binary_mask(np.zeros((1, 2, 2)), "roi")
    with pytest.raises(ValueError, match=r"is empty \(no foreground voxel\)"):
        check_binary_mask(torch.zeros(3, dtype=torch.bool))


def test_to_float_tensor() -> None:
    u = np.array([0, 65535], np.uint16)
    t = to_float_tensor(u)
    assert t.dtype == torch.float32 and t.tolist() == [0.0, 65535.0]
    assert float(to_float_tensor(u)[0] - to_float_tensor(u)[1]) == -65535.0  # no unsigned wrap-around
    assert to_float_tensor(np.array([4294967295], np.uint32)).dtype == torch.float32
    assert to_float_tensor([1, 2]).tolist() == [1.0, 2.0]
    m = MetaTensor(torch.ones(1, 2, 2, dtype=torch.int16), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    mf = to_float_tensor(m)
    assert isinstance(mf, MetaTensor) and mf.dtype == torch.float32 and float(mf.affine[0, 0]) == 2.0
    with pytest.raises(TypeError, match=r"image data must be real-valued, got complex dtype complex128"):
        to_float_tensor(np.zeros(2, np.complex128))
    with pytest.raises(TypeError, match=r"image data must be numeric, got dtype <U"):
        to_float_tensor(np.array(["1"]))


def test_wrap_like_carries_meta(no_meta: None) -> None:
    out = torch.full((1, 2, 2), 3.0)
    assert type(wrap_like(out, MetaTensor(torch.zeros(1, 2, 2)))) is torch.Tensor  # tracking off: plain tensor


def test_wrap_like_and_fresh_tensor_with_meta() -> None:
    aff = torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))
    ref = Rotate90()(MetaTensor(torch.rand(1, 4, 4, 2), affine=aff, meta={"patient_id": "P9"}))
    out = wrap_like(MetaTensor(torch.full((1, 4, 4, 2), 7.0)), ref)
    assert isinstance(out, MetaTensor) and torch.equal(out.as_tensor(), torch.full((1, 4, 4, 2), 7.0))
    torch.testing.assert_close(out.affine, ref.affine)
    assert out.meta["patient_id"] == "P9" and len(out.applied_operations) == 1
    plain = wrap_like(torch.ones(1, 2, 2), np.zeros((1, 2, 2)))
    assert isinstance(plain, MetaTensor) and torch.equal(plain.affine, torch.eye(4, dtype=plain.affine.dtype))

    fresh = fresh_tensor(ref)
    assert fresh is not ref and torch.equal(fresh.as_tensor(), ref.as_tensor())
    fresh.applied_operations.append({"class": "X"})
    assert len(ref.applied_operations) == 1 and len(fresh.applied_operations) == 2  # the input's trace is not mutated
    assert fresh_tensor(np.zeros((1, 2), np.float64), dtype=torch.float32).dtype == torch.float32


def test_fresh_tensor_no_meta(no_meta: None) -> None:
    out = fresh_tensor(MetaTensor(torch.ones(1, 2, 2)))
    assert type(out) is torch.Tensor


class _Two(Rotate90):
    """A transform made of two MONAI spatial sub-transforms, recorded as one entry."""


def _two_subs(img: MetaTensor, lazy: bool) -> MetaTensor:
    out = Rotate90(lazy=lazy)(img)
    return SpatialPad(spatial_size=(6, 6, 2), lazy=lazy)(out)


def test_record_as_one_folds_entries() -> None:
    x = MetaTensor(torch.rand(1, 4, 4, 2))
    out = record_as_one(_Two(), _two_subs(x, lazy=False), 2, lazy=False, variant=3)
    ops = out.applied_operations
    assert len(ops) == 1 and ops[0]["class"] == "_Two"
    info = ops[0]["extra_info"]
    assert info["variant"] == 3 and [s["class"] for s in info["sub"]] == ["Rotate90", "SpatialPad"]
    assert list(ops[0]["orig_size"]) == [4, 4, 2]
    zero = record_as_one(_Two(), MetaTensor(torch.rand(1, 4, 4, 2)), 0, lazy=False)  # skipped: identity entry
    assert len(zero.applied_operations) == 1 and zero.applied_operations[0]["extra_info"]["sub"] == []


def test_record_as_one_lazy_combines_affines() -> None:
    x = MetaTensor(torch.rand(1, 4, 4, 2))
    out = _two_subs(x, lazy=True)
    subs = list(out.pending_operations)
    expected = torch.as_tensor(subs[0]["lazy_affine"], dtype=torch.float64) @ torch.as_tensor(subs[1]["lazy_affine"], dtype=torch.float64)
    out = record_as_one(_Two(), out, 2, lazy=True)
    assert len(out.pending_operations) == 1 and not out.applied_operations
    pending = out.pending_operations[0]
    torch.testing.assert_close(torch.as_tensor(pending["lazy_affine"], dtype=torch.float64), expected)
    assert list(pending["lazy_shape"]) == [6, 6, 2]


def test_record_as_one_passthrough(no_meta: None) -> None:
    t = torch.zeros(1, 2, 2, 2)
    assert record_as_one(_Two(), t, 2, lazy=False) is t


@pytest.mark.parametrize("kind", ["torch", "numpy", "noncontiguous"])
@pytest.mark.parametrize("shape", [(1, 50, 6, 7), (3, 4), (40,)])
def test_check_finite_counts_every_bad_voxel_across_slabs(kind, shape):
    from dce_monai.transforms.utils import check_finite

    t = torch.zeros(shape)
    flat = t.view(-1)
    for i in (0, flat.numel() // 3, flat.numel() - 1):  # first, middle and last voxel: different slabs
        flat[i] = float("nan") if i % 2 else float("inf")
    x = t.numpy() if kind == "numpy" else (t.transpose(0, -1) if kind == "noncontiguous" else t)
    with pytest.raises(ValueError, match=r"^P: 'k' has 3 NaN/Inf voxels"):
        check_finite(x, "k", "P")
    check_finite(torch.tensor(2.0), "k", "P")


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("kind", ["meta", "torch", "int32", "numpy"])
def test_divide_keys(kind, inplace):
    from dce_monai.transforms.utils import divide_keys

    base = torch.arange(1.0, 25.0).reshape(1, 2, 3, 4)
    v = {"meta": MetaTensor(base.clone()), "torch": base.clone(), "int32": base.int(), "numpy": base.numpy().copy()}[kind]
    d = {"a": v, "b": v}  # one tensor under two keys
    divide_keys(d, ["a", "b"], torch.tensor(2.0), inplace)
    for k in ("a", "b"):
        assert d[k].dtype == torch.float32 and torch.equal(torch.as_tensor(d[k]), base / 2), k
    shares = inplace and kind in ("meta", "torch")
    assert (d["a"].data_ptr() == torch.as_tensor(v).data_ptr()) == shares
