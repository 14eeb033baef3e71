from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.subtraction import Subtract, Subtractd

AFFINE = torch.tensor([[0.0, -0.7, 0, 10], [0.8, 0, 0, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]], dtype=torch.float64)


def _wrap(arr: np.ndarray, kind: str):
    if kind == "numpy":
        return arr
    if kind == "torch":
        return torch.as_tensor(arr.astype(np.int32))  # torch has no uint16 arithmetic; int32 keeps the values
    return MetaTensor(torch.as_tensor(arr.astype(np.int32)), affine=AFFINE, meta={"filename_or_obj": "post.nii.gz"})


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_subtract_uint16_exact_and_no_overflow(kind):
    pre = np.full((1, 4, 4, 3), 1000, np.uint16)
    post = np.full((1, 4, 4, 3), 900, np.uint16)  # post < pre: uint16 would wrap to 65436
    post[0, 0, 0, 0] = 65535
    pre[0, 3, 3, 2] = 0
    out = Subtract()(_wrap(post, kind), _wrap(pre, kind))
    expected = post.astype(np.float64) - pre.astype(np.float64)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), expected)
    assert float(out[0, 1, 1, 1]) == -100.0 and float(out[0, 0, 0, 0]) == 64535.0
    assert out.meta["channel_names"] == ["sub"]
    if kind == "meta":
        assert torch.equal(out.affine, AFFINE) and out.meta["filename_or_obj"] == "post.nii.gz"


def test_subtractd_any_pair_and_meta_of_minuend():
    pre = MetaTensor(torch.full((1, 4, 4, 3), 10.0), affine=AFFINE, meta={"filename_or_obj": "pre"})
    post2 = MetaTensor(torch.full((1, 4, 4, 3), 25.0), affine=AFFINE, meta={"filename_or_obj": "post2"})
    d = Subtractd()({"T1pre": pre, "T1post1": pre + 5, "patient_id": "P1"})
    assert torch.all(d["sub"] == 5) and torch.equal(d["sub"].affine, AFFINE)
    d = Subtractd("T1post2", "T1pre", "sub2")({"T1pre": pre, "T1post2": post2})
    assert torch.all(d["sub2"] == 15) and d["sub2"].meta["channel_names"] == ["sub2"] and d["sub2"].meta["filename_or_obj"] == "post2"
    assert d["T1pre"] is pre  # inputs untouched
    assert "sub" not in Subtractd(allow_missing_keys=True)({"T1pre": pre})


def test_subtract_multichannel_names():
    out = Subtract()(torch.ones(2, 2, 2, 2) * 3, torch.ones(2, 2, 2, 2))
    assert out.meta["channel_names"] == ["sub_0", "sub_1"] and torch.all(out == 2)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: Subtract(output_name=""), TypeError, r"output_name must be a non-empty string, got ''"),
        (
            lambda: Subtractd()({"T1pre": torch.ones(1, 2, 2, 2), "patient_id": "P1"}),
            KeyError,
            r"patient 'P1': Subtractd needs key\(s\) \['T1post1'\]; available: \['T1pre', 'patient_id'\]",
        ),
        (
            lambda: Subtractd()({"T1pre": torch.ones(1, 4, 4, 2), "T1post1": torch.ones(1, 4, 4, 3), "patient_id": "P1"}),
            ValueError,
            r"patient 'P1': sequences are on different grids: 'T1post1' has spatial shape \(4, 4, 3\) but 'T1pre' has \(4, 4, 2\)",
        ),
        (
            lambda: Subtractd()({"T1pre": MetaTensor(torch.ones(1, 2, 2, 2)), "T1post1": MetaTensor(torch.ones(1, 2, 2, 2), affine=AFFINE)}),
            ValueError,
            r"input: sequences are on different grids: the affine of 'T1pre' differs from that of 'T1post1'",
        ),
        (lambda: Subtract()(torch.ones(2, 2, 2, 2), torch.ones(1, 2, 2, 2)), ValueError, r"'minuend' has 2 channel\(s\) but 'subtrahend' has 1"),
        (
            lambda: Subtract()(torch.tensor([[[[float("inf")]]]]), torch.ones(1, 1, 1, 1)),
            ValueError,
            r"'minuend' has 1 NaN/Inf voxels",
        ),
    ],
)
def test_subtract_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
