from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.patches import LesionPatchesd

AFF = torch.tensor([[0.8, 0, 0, -40.0], [0, 0.8, 0, -30.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]], dtype=torch.float64)


def _case(kind="meta", other_at=None):
    img = np.random.default_rng(0).normal(size=(3, 64, 60, 10)).astype(np.float32)
    lm = np.zeros((1, 64, 60, 10), np.uint8)
    lm[0, 30:37, 20:25, 3:7] = 1  # lesion 1 on slices 3..6, centre (33, 22)
    if other_at is not None:
        lm[0, other_at[0], other_at[1], other_at[2]] = 2
    wrap = {"numpy": lambda a: a, "torch": torch.as_tensor, "meta": lambda a: MetaTensor(torch.as_tensor(a), affine=AFF)}[kind]
    return {"image": wrap(img), "label_map": wrap(lm), "label_value": 1, "label": 1, "patient_id": "P1", "lesion_id": "P1-L1"}, img


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_one_centred_patch_per_slice(kind):
    d, img = _case(kind)
    out = LesionPatchesd()(d)
    assert [o["slice_index"] for o in out] == [3, 4, 5, 6]
    o = out[0]
    assert o["image"].shape == (3, 50, 50) and o["patch_center"] == [33, 22] and o["label"] == 1
    # centre voxel of the patch is the lesion centre; the crop crosses the y border (22 - 25 < 0): padded
    np.testing.assert_array_equal(o["image"][:, 25, 25].numpy(), img[:, 33, 22, 3])
    assert float(o["image"][:, :, :3].abs().sum()) == 0.0
    assert o["n_patches_kept"] == 4 and o["n_patches_dropped_other_lesion"] == 0
    assert o["image"].meta["lesion_id"] == "P1-L1" and o["image"].meta["slice_index"] == 3
    if kind == "meta":
        np.testing.assert_allclose(o["image"].affine[:2, 2].numpy(), (AFF.numpy() @ [8, -3, 3, 1])[:2])


def test_other_lesion_patches_dropped_and_counted():
    d, _ = _case(other_at=(50, 30, slice(5, 7)))  # inside the 50x50 window on slices 5, 6
    out = LesionPatchesd()(d)
    assert [o["slice_index"] for o in out] == [3, 4]
    assert out[0]["n_patches_dropped_other_lesion"] == 2
    assert len(LesionPatchesd(drop_other_lesions=False)(d)) == 4


def test_mask_input_and_size_mm():
    d, _ = _case()
    d["mask"] = MetaTensor((torch.as_tensor(np.asarray(d.pop("label_map"))) == 1).to(torch.uint8), affine=AFF)
    del d["label_value"]
    out = LesionPatchesd(size_mm=(16.0, 8.0))(d)
    assert out[0]["image"].shape == (3, 20, 10)


@pytest.mark.parametrize(
    "change, kwargs, exc, match",
    [
        (lambda d: d.update(label_value=5), {}, ValueError, r"patient 'P1' lesion 'P1-L1': lesion is empty: label value 5 not found in 'label_map'"),
        (lambda d: d.pop("label_value"), {}, KeyError, r"needs 'label_value' with 'label_map', or 'mask'"),
        (lambda d: d.update(image=d["image"][0]), {}, ValueError, r"'image' must be channel-first with 3 spatial dims"),
        (lambda d: d.update(label_map=d["label_map"][..., :5]), {}, ValueError, r"sequences are on different grids"),
        (lambda d: (d.pop("label_value"), d.update(mask=d["label_map"] * 3)), {}, ValueError, r"'mask' must be binary"),
        (lambda d: None, {"size": (0, 50)}, ValueError, r"size must be two positive integers"),
        (lambda d: None, {"size_mm": (10.0,)}, ValueError, r"size_mm must be two positive numbers"),
        (lambda d: None, {"on_empty": "skip"}, ValueError, r"skip"),
    ],
)
def test_errors(change, kwargs, exc, match):
    d, _ = _case()
    change(d)
    with pytest.raises(exc, match=match):
        LesionPatchesd(**kwargs)(d)


def test_empty_option_and_bare_tensor_mm():
    d, _ = _case()
    d["label_value"] = 9
    assert LesionPatchesd(on_empty="empty")(d) == []
    d, _ = _case("torch")
    with pytest.raises(ValueError, match=r"size_mm needs a MetaTensor image"):
        LesionPatchesd(size_mm=(10.0, 10.0))(d)


def test_allow_missing_keys_returns_the_record() -> None:
    d = {"label_map": np.zeros((1, 4, 4, 2)), "label_value": 1, "lesion_id": "L1"}
    assert LesionPatchesd(allow_missing_keys=True)(d) == [d]
    with pytest.raises(KeyError, match="missing image key 'image'"):
        LesionPatchesd()(d)
