from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.augmentation import (
    AXIAL_ONLY_ROTATIONS,
    N_VARIANTS,
    Augment34,
    Augment34d,
    AxialRotation,
    CornerShift,
    CubeSymmetry,
    RandAugment34d,
    expand_34,
    variant_names,
)

AFF = torch.tensor([[0.0, -0.7, 0, 10], [0.8, 0, 0, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]], dtype=torch.float64)


def _cube(seed=0, n=5):
    return MetaTensor(torch.as_tensor(np.random.default_rng(seed).permutation(n**3).reshape(1, n, n, n).astype(np.float32)), affine=AFF)


def _key(t):
    return t.as_tensor().numpy().tobytes()


def test_24_rotations_form_the_cube_group():
    x = _cube()
    outs = [CubeSymmetry(i)(x.clone()) for i in range(24)]
    keys = [_key(o) for o in outs]
    assert len(set(keys)) == 24 and keys[0] == _key(x)  # distinct, identity first
    index = {k: i for i, k in enumerate(keys)}
    for i in range(24):
        for j in range(24):  # closed under composition
            assert _key(CubeSymmetry(j)(CubeSymmetry(i)(x.clone()))) in index
        # every element has an inverse in the set
        assert any(_key(CubeSymmetry(j)(outs[i].clone())) == keys[0] for j in range(24))
    # exact: values are a permutation of the input's (no interpolation)
    assert all(np.array_equal(np.sort(o.numpy().ravel()), np.sort(x.numpy().ravel())) for o in outs)


@pytest.mark.parametrize("index", range(24))
def test_rotation_inverse_restores_data_and_affine(index):
    x = MetaTensor(torch.rand(2, 6, 5, 4), affine=AFF)
    op = CubeSymmetry(index)
    y = op(x.clone())
    if index:
        assert not torch.equal(y.affine, AFF)
    back = op.inverse(y)
    assert torch.equal(back.as_tensor(), x.as_tensor()) and torch.allclose(back.affine, AFF)


def test_axial_only_rotations_keep_slices_axial():
    x = MetaTensor(torch.rand(1, 6, 5, 4), affine=AFF)
    for i in range(24):
        keeps = CubeSymmetry(i)(x.clone()).shape[3] == 4
        assert keeps == (i in AXIAL_ONLY_ROTATIONS)


@pytest.mark.parametrize("index", range(8))
def test_corner_shifts_move_by_exactly_s(index):
    x = torch.zeros(1, 30, 30, 30)
    x[0, 15, 15, 15] = 1.0
    op = CornerShift(index, shift=10)
    y = op(MetaTensor(x, affine=AFF))
    pos = np.argwhere(y[0].numpy() == 1.0)[0]
    assert tuple(pos - 15) == op.offsets and set(np.abs(op.offsets)) == {10}
    shift = torch.eye(4, dtype=torch.float64)
    shift[:3, 3] = -torch.tensor(op.offsets, dtype=torch.float64)
    assert torch.allclose(y.affine, AFF @ shift) and y.shape == x.shape  # the field of view moved
    world = lambda aff, p: (aff @ torch.tensor([*map(float, p), 1.0], dtype=torch.float64))[:3]  # noqa: E731
    assert torch.allclose(world(y.affine, pos), world(AFF, (15, 15, 15)))  # the content did not
    assert float(y.sum()) == 1.0  # background fill, nothing else
    back = op.inverse(y)
    assert torch.equal(back.as_tensor(), x) and torch.allclose(back.affine, AFF) and not back.applied_operations


def test_axial_rotation_shape_slices_and_nearest_masks():
    img = torch.zeros(1, 32, 32, 6)
    img[0, 8:24, 12:20, :] = 1.0
    rot = AxialRotation(10.0, mode="nearest")(MetaTensor(img, affine=AFF))
    assert rot.shape == img.shape and set(torch.unique(rot).tolist()) <= {0.0, 1.0}
    assert torch.equal(rot[..., 0], rot[..., 5])  # in-plane: every slice rotated the same
    assert not torch.equal(rot.as_tensor(), img)
    assert abs(float(rot.sum()) - float(img.sum())) / float(img.sum()) < 0.1


def test_34_variants_distinct_and_named():
    x = _cube(n=12)
    outs = expand_34({"image": x}, ["image"])
    assert len(outs) == N_VARIANTS == len({_key(o["image"]) for o in outs}) == len(variant_names())
    assert variant_names()[24] == "shift_+10+10+10" and variant_names()[33] == "rot_-10"
    assert [o["augmentation_variant"] for o in outs] == list(range(34))


def test_image_and_mask_stay_aligned():
    img = MetaTensor(torch.rand(2, 24, 24, 24), affine=AFF)
    mask = (torch.rand(1, 24, 24, 24) > 0.7).float()
    for i in range(32):
        d = Augment34d(["image", "mask"], i, mode=("bilinear", "nearest"))({"image": img.clone(), "mask": MetaTensor(mask.clone(), affine=AFF)})
        masked = Augment34d(["image"], i)({"image": img * mask})["image"]
        assert torch.equal((d["image"] * d["mask"]).as_tensor(), masked.as_tensor())
    d = Augment34d(["image", "mask"], 32, mode=("bilinear", "nearest"))({"image": img, "mask": MetaTensor(mask, affine=AFF)})
    assert set(torch.unique(d["mask"]).tolist()) <= {0.0, 1.0}


def test_random_variant_reproducible_and_global_rng_untouched():
    x = {"image": _cube(n=12)}
    state = np.random.get_state()[1].copy()
    a = RandAugment34d(["image"]).set_random_state(3)
    b = RandAugment34d(["image"]).set_random_state(3)
    va = [a(x)["augmentation_variant"] for _ in range(10)]
    assert va == [b(x)["augmentation_variant"] for _ in range(10)] and len(set(va)) > 3
    assert np.array_equal(np.random.get_state()[1], state)
    assert RandAugment34d(["image"], prob=0.0)(x)["augmentation_variant"] == -1
    only = RandAugment34d(["image"], variants=AXIAL_ONLY_ROTATIONS).set_random_state(0)
    assert all(only(x)["augmentation_variant"] in AXIAL_ONLY_ROTATIONS for _ in range(8))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: CubeSymmetry(24), r"cube rotation index must be an integer in \[0, 23\], got 24"),
        (lambda: CornerShift(8), r"corner shift index must be an integer in \[0, 7\], got 8"),
        (lambda: CornerShift(0, shift=0), r"shift must be a positive integer number of voxels, got 0"),
        (lambda: Augment34(34), r"augmentation variant index must be an integer in \[0, 33\], got 34"),
        (lambda: Augment34d(["a", "b"], 0, mode=("nearest",)), r"mode must be one string or one per key \(2\)"),
        (lambda: RandAugment34d(["a"], prob=2.0), r"prob must be in \[0, 1\], got 2.0"),
        (lambda: RandAugment34d(["a"], variants=[40]), r"variants must be a non-empty subset of 0..33"),
        (lambda: CubeSymmetry(1)(torch.rand(1, 5, 5)), r"'img' must be channel-first with 3 spatial dims"),
        (lambda: Augment34d(["image"], 0)({"image": torch.rand(5, 5), "patient_id": "P"}), r"patient 'P': 'image' must be channel-first with 3 spatial dims"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_axial_rotation_inverse_restores_affine_and_centre():
    img = MetaTensor(torch.zeros(1, 32, 32, 4), affine=AFF)
    img[0, 12:20, 12:20, :] = 1.0
    op = AxialRotation(10.0)
    back = op.inverse(op(img.clone()))
    assert torch.allclose(back.affine, AFF) and back.shape == img.shape
    assert float((back - img).abs()[0, 14:18, 14:18].max()) < 1e-4  # interior restored; edges interpolated
