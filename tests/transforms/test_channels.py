from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.channels import SelectSequences, SelectSequencesd

AFF = torch.diag(torch.tensor([0.7, 0.7, 2.0, 1.0], dtype=torch.float64))


def _data(kind):
    d = {"patient_id": "P1"}
    for i, n in enumerate(("T2", "T1pre", "T1post1", "T1post3", "sub")):
        arr = np.full((1, 4, 4, 2), i, np.uint16 if n != "sub" else np.float32)
        d[n] = {"numpy": arr, "torch": torch.as_tensor(arr.astype(np.float32)), "meta": MetaTensor(torch.as_tensor(arr.astype(np.float32)), affine=AFF)}[kind]
    return d


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_stack_in_given_order(kind):
    out = SelectSequencesd(("sub", "T1pre", "T1post3"))(_data(kind))["image"]
    assert out.shape == (3, 4, 4, 2) and out.dtype == torch.float32
    assert [float(out[c, 0, 0, 0]) for c in range(3)] == [4.0, 1.0, 3.0]
    assert out.meta["channel_names"] == ["sub", "T1pre", "T1post3"]
    if kind == "meta":
        assert torch.equal(out.affine, AFF)


def test_array_form_picks_by_name_and_drop_inputs():
    d = SelectSequencesd(("T2", "T1pre", "T1post1", "T1post3", "sub"), drop_inputs=True)(_data("meta"))
    assert "T2" not in d
    out = SelectSequences(["T1post3", "T2"])(d["image"])
    assert out.meta["channel_names"] == ["T1post3", "T2"] and float(out[0, 0, 0, 0]) == 3.0 and float(out[1, 0, 0, 0]) == 0.0


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: SelectSequencesd(("T1pre", "T1post4", "sub"))(_data("meta")), KeyError, r"patient 'P1': sequence\(s\) \['T1post4'\] requested but not in the data; present: \['T2', 'T1pre', 'T1post1', 'T1post3', 'sub'\]"),
        (lambda: SelectSequencesd(("T1pre", "PD"))(_data("meta")), ValueError, r"names: unknown sequence name 'PD'"),
        (lambda: SelectSequencesd(("T1pre", "T1pre")), ValueError, r"names must be unique"),
        (lambda: SelectSequences(["T1pre"])(torch.ones(2, 3, 3, 3)), ValueError, r"needs a MetaTensor with meta\['channel_names'\]"),
        (lambda: SelectSequences(["T2"])(SelectSequencesd(("T1pre", "sub"))(_data("meta"))["image"]), ValueError, r"sequence\(s\) \['T2'\] not among the channels; available: \['T1pre', 'sub'\]"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_grid_and_channel_errors():
    d = _data("meta")
    d["sub"] = MetaTensor(torch.zeros(1, 4, 4, 2), affine=AFF * 2)
    with pytest.raises(ValueError, match=r"patient 'P1': sequences are on different grids: the affine of 'sub'"):
        SelectSequencesd(("T1pre", "sub"))(d)
    d = _data("meta")
    d["sub"] = MetaTensor(torch.zeros(2, 4, 4, 2), affine=AFF)
    with pytest.raises(ValueError, match=r"'sub' must have one channel, got shape \(2, 4, 4, 2\)"):
        SelectSequencesd(("T1pre", "sub"))(d)


def test_dict_allow_missing_keys_stacks_what_is_there() -> None:
    aff = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0], dtype=torch.float64))
    d = {n: MetaTensor(torch.full((1, 3, 3, 2), float(i)), affine=aff) for i, n in enumerate(["T1pre", "sub"])}
    out = SelectSequencesd(("T1pre", "T1post3", "sub"), allow_missing_keys=True)(d)
    assert out["image"].shape == (2, 3, 3, 2) and out["image"].meta["channel_names"] == ["T1pre", "sub"]
    assert set(SelectSequencesd(("T1post3",), allow_missing_keys=True)(d)) == {"T1pre", "sub"}
    with pytest.raises(KeyError, match=r"sequence\(s\) \['T1post3'\] requested but not in the data"):
        SelectSequencesd(("T1pre", "T1post3", "sub"))(d)
