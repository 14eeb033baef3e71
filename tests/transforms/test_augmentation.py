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


# ----------------------------------------------------------------------------- composing like MONAI's own

KINDS = ("numpy", "torch", "meta")


def _as(kind, arr):
    if kind == "numpy":
        return np.asarray(arr)
    t = torch.as_tensor(np.asarray(arr))
    return MetaTensor(t, affine=AFF) if kind == "meta" else t


def _vol(shape=(1, 9, 8, 7), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _exact_ops():
    return [CubeSymmetry(i) for i in (0, 1, 5, 13, 17, 23)] + [CornerShift(i, shift=2) for i in (0, 3, 7)] + [Augment34(i, shift=2) for i in (0, 6, 19, 25, 31)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", _exact_ops(), ids=lambda o: f"{type(o).__name__}{getattr(o, 'index', '')}")
def test_exact_ops_one_entry_and_local_inverse(kind, op):
    x = _as(kind, _vol())
    y = op(x)
    assert isinstance(y, MetaTensor) and [e["class"] for e in y.applied_operations] == [type(op).__name__]
    back = op.inverse(y)
    assert not back.applied_operations and isinstance(back, MetaTensor)
    keep = op.inverse(op(MetaTensor(torch.ones(1, 9, 8, 7))))  # voxels that stayed in the field of view
    torch.testing.assert_close(back.as_tensor(), torch.as_tensor(np.asarray(x)) * keep.as_tensor())
    torch.testing.assert_close(back.affine, AFF if kind == "meta" else torch.eye(4, dtype=torch.float64))
    if not isinstance(op, CornerShift) and not (isinstance(op, Augment34) and op.index >= 24):
        assert bool(keep.all())  # rotations lose nothing


@pytest.mark.parametrize("kind", KINDS)
def test_axial_rotation_one_entry_and_local_inverse(kind):
    x = np.zeros((1, 24, 24, 3), np.float32)
    x[0, 8:16, 8:16] = 1.0
    op = AxialRotation(-10.0)
    y = op(_as(kind, x))
    assert [e["class"] for e in y.applied_operations] == ["AxialRotation"] and y.dtype == torch.float32
    back = op.inverse(y)
    assert not back.applied_operations and float((back[0, 10:14, 10:14] - 1).abs().max()) < 1e-4


def test_compose_inverse_with_monai_flip_restores_input():
    """``Flip`` before and after ours: each inverse pops its own entry (no silent mix-up)."""
    from monai.transforms import Compose, Flip

    x = MetaTensor(torch.as_tensor(_vol((2, 8, 8, 8))), affine=AFF)
    pipe = Compose([Flip(0), CubeSymmetry(5), CornerShift(2, shift=2), Flip(2), Augment34(17)])
    y = pipe(x.clone())
    assert [e["class"] for e in y.applied_operations] == ["Flip", "CubeSymmetry", "CornerShift", "Flip", "Augment34"]
    back = pipe.inverse(y)
    keep = pipe.inverse(pipe(MetaTensor(torch.ones(2, 8, 8, 8), affine=AFF)))
    assert not back.applied_operations and int(keep.sum()) == 2 * 6**3  # a 2-voxel shift loses 2 planes per axis
    torch.testing.assert_close(back.as_tensor(), x.as_tensor() * keep.as_tensor())
    torch.testing.assert_close(back.affine, AFF)


@pytest.mark.parametrize("kind", KINDS)
def test_invertd_round_trip_dict_transforms(kind):
    """``Invertd`` maps a prediction made on augmented data back to the input grid (TTA, CAMs)."""
    from monai.transforms import Compose, Flipd, Invertd

    img = _vol((1, 10, 10, 10))
    pre = Compose(
        [
            Flipd(["image", "mask"], spatial_axis=1),
            Augment34d(["image", "mask"], 13, mode=("bilinear", "nearest")),
            RandAugment34d(["image", "mask"], prob=0.5, variants=range(32), shift=2, mode=("bilinear", "nearest")),
            Augment34d(["image", "mask"], 29, shift=3),
        ]
    )
    ones = MetaTensor(torch.ones(1, 10, 10, 10), affine=AFF)
    applied = set()
    for seed in range(6):  # both branches of the random step
        pre.transforms[2].set_random_state(seed)
        d = pre({"image": _as(kind, img), "mask": _as(kind, (img > 0.5).astype(np.float32))})
        applied.add(d["image"].applied_operations[2]["extra_info"]["variant"])
        d["pred"] = d["image"] * 2  # a voxel-wise "network output" on the augmented grid
        back = Invertd(["pred", "mask"], pre, orig_keys="image", nearest_interp=False)(d)
        pre.transforms[2].set_random_state(seed)
        keep = pre.inverse(pre({"image": ones.clone(), "mask": ones.clone()}))["image"]
        assert 0.3 < float(keep.mean()) < 1
        torch.testing.assert_close(back["pred"].as_tensor(), 2 * torch.as_tensor(img) * keep.as_tensor())
        torch.testing.assert_close(back["mask"].as_tensor(), torch.as_tensor((img > 0.5).astype(np.float32)) * keep.as_tensor())
        aff = AFF if kind == "meta" else torch.eye(4, dtype=torch.float64)
        torch.testing.assert_close(back["pred"].affine, aff)
    assert -1 in applied and len(applied) > 2  # skipped and applied draws


@pytest.mark.parametrize("index", [0, 3, 9, 14, 22, 24, 27, 30, 32, 33])
def test_augment34_lazy_equals_eager(lazy_check, index):
    x = MetaTensor(torch.as_tensor(_vol((2, 9, 8, 7))), affine=AFF)
    op = Augment34(index, shift=2)
    overrides = {"mode": "bilinear", "padding_mode": "zeros"} if index >= 32 else None
    lazy_check(op, lambda: op(x.clone()), op(x.clone()), overrides=overrides, atol=1e-4)


@pytest.mark.parametrize("op", [CubeSymmetry(7), CornerShift(5, shift=3), AxialRotation(10.0)], ids=lambda o: type(o).__name__)
def test_parts_lazy_equal_eager(lazy_check, op):
    x = MetaTensor(torch.as_tensor(_vol((1, 12, 10, 6))), affine=AFF)
    overrides = {"mode": "bilinear", "padding_mode": "zeros"} if isinstance(op, AxialRotation) else None
    lazy_check(op, lambda: op(x.clone()), op(x.clone()), overrides=overrides, atol=1e-4)


def test_lazy_compose_resamples_once():
    """In ``Compose(lazy=True)`` a cube rotation, a corner shift and MONAI's ``Rotate90d`` fold into one
    resampling that equals the eager chain; ``Compose.inverse`` still undoes it."""
    from monai.transforms import Compose, Rotate90d

    x = MetaTensor(torch.as_tensor(_vol((1, 8, 8, 8))), affine=AFF)
    steps = lambda: [Augment34d("image", 7), Rotate90d("image", 1, (0, 2)), Augment34d("image", 26, shift=2)]  # noqa: E731
    eager = Compose(steps())({"image": x.clone()})["image"]
    lazy_pipe = Compose(steps(), lazy=True)
    lazy = lazy_pipe({"image": x.clone()})["image"]
    torch.testing.assert_close(lazy.as_tensor(), eager.as_tensor())
    torch.testing.assert_close(lazy.affine, eager.affine)
    assert [e["class"] for e in lazy.applied_operations] == ["Augment34d", "Rotate90", "Augment34d"]
    assert all(e["lazy"] for e in lazy.applied_operations)
    back = lazy_pipe.inverse({"image": lazy})["image"]
    keep = lazy_pipe.inverse(lazy_pipe({"image": MetaTensor(torch.ones(1, 8, 8, 8), affine=AFF)}))["image"]
    torch.testing.assert_close(back.as_tensor(), x.as_tensor() * keep.as_tensor())
    torch.testing.assert_close(back.affine, AFF)


@pytest.mark.parametrize("seed", range(6))
def test_rand_augment34d_lazy_equals_eager(lazy_check, seed):
    x = {"image": MetaTensor(torch.as_tensor(_vol((1, 8, 8, 8))), affine=AFF), "label": 1}
    kw = {"prob": 0.5, "variants": list(range(32)), "shift": 2}
    eager = RandAugment34d("image", **kw).set_random_state(seed)(x)
    lazy_op = RandAugment34d("image", **kw).set_random_state(seed)
    done = lazy_check(lazy_op, lambda: lazy_op(x), eager, key="image")
    assert done.applied_operations[-1]["do_transforms"] == (eager["augmentation_variant"] != -1)
    inv = lazy_op.inverse({"image": done})["image"]
    keep = lazy_op.inverse(lazy_op.set_random_state(seed)({"image": MetaTensor(torch.ones(1, 8, 8, 8), affine=AFF)}))["image"]
    torch.testing.assert_close(inv.as_tensor(), x["image"].as_tensor() * keep.as_tensor())


def test_rand_augment34d_same_keys_and_types_whether_applied_or_not():
    x = {"image": _vol((1, 6, 6, 6)), "mask": (_vol((1, 6, 6, 6)) > 0.5).astype(np.uint8)}
    seen = set()
    op = RandAugment34d(["image", "mask"], prob=0.5, mode=("bilinear", "nearest")).set_random_state(0)
    for _ in range(30):
        out = op(x)
        applied = out["augmentation_variant"] != -1
        seen.add(applied)
        assert set(out) == {"image", "mask", "augmentation_variant"} and isinstance(out["augmentation_variant"], int)
        for k in ("image", "mask"):  # tensors, float32 (the variant set includes the interpolating rotations)
            assert isinstance(out[k], MetaTensor) and out[k].dtype == torch.float32
            assert [e["class"] for e in out[k].applied_operations] == ["RandAugment34d"]
            assert out[k].applied_operations[0]["do_transforms"] == applied
    assert seen == {True, False}
    exact = RandAugment34d("mask", prob=0.5, variants=range(32)).set_random_state(0)
    assert {exact(x)["mask"].dtype for _ in range(10)} == {torch.uint8}  # no interpolation: dtype kept


def test_dataloader_collates_rand_augment34d_for_many_seeds():
    from monai.data import DataLoader, Dataset

    data = [{"image": _vol((1, 8, 8, 8), seed=i), "mask": (_vol((1, 8, 8, 8), seed=i) > 0.5).astype(np.float32), "label": i % 2} for i in range(6)]
    variants_seen = set()
    for seed in range(12):
        t = RandAugment34d(["image", "mask"], prob=0.5, mode=("bilinear", "nearest"))
        loader = DataLoader(Dataset(data, t), batch_size=6, num_workers=0, generator=torch.Generator().manual_seed(seed))
        batch = next(iter(loader))  # MONAI's DataLoader seeds the transform from ``generator``
        assert batch["image"].shape == (6, 1, 8, 8, 8) and batch["mask"].shape == (6, 1, 8, 8, 8)
        assert batch["augmentation_variant"].shape == (6,)
        variants_seen.update(batch["augmentation_variant"].tolist())
    assert -1 in variants_seen and len(variants_seen) > 10


def test_allow_missing_keys_and_lazy_fill_error():
    x = {"image": MetaTensor(torch.as_tensor(_vol((1, 6, 6, 6))), affine=AFF)}
    for t in (Augment34d(["image", "mask"], 5, allow_missing_keys=True), RandAugment34d(["image", "mask"], allow_missing_keys=True).set_random_state(0)):
        out = t(x)
        assert "mask" not in out and len(out["image"].applied_operations) == 1
        assert not t.inverse(out)["image"].applied_operations
    with pytest.raises(KeyError, match="mask"):
        Augment34d(["image", "mask"], 5)(x)
    with pytest.raises(ValueError, match=r"CornerShift: lazy execution pads with zeros .* fill must be 0, got fill=-1"):
        CornerShift(0, 2, fill=-1.0, lazy=True)(x["image"])


def test_track_meta_off_returns_plain_tensors():
    from monai.data import set_track_meta

    set_track_meta(False)
    try:
        for op in (CubeSymmetry(3), CornerShift(1, 2), AxialRotation(10.0), Augment34(30, shift=2)):
            out = op(_vol((1, 6, 6, 6)))
            assert type(out) is torch.Tensor
        d = RandAugment34d("image", prob=0.0)({"image": _vol((1, 6, 6, 6))})
        assert type(d["image"]) is torch.Tensor and d["augmentation_variant"] == -1
    finally:
        set_track_meta(True)


def test_transforms_pickle_after_use_and_keep_their_draws():
    import pickle

    x = {"image": MetaTensor(torch.as_tensor(_vol((1, 6, 6, 6))), affine=AFF)}
    rand = RandAugment34d("image", prob=0.5).set_random_state(4)
    ops = [CubeSymmetry(3), CornerShift(2, 2), AxialRotation(10.0), Augment34(30, shift=2)]
    for op in ops:
        op(x["image"])
    rand(x)
    for op in ops:
        again = pickle.loads(pickle.dumps(op))
        torch.testing.assert_close(again(x["image"]).as_tensor(), op(x["image"]).as_tensor())
    twin = pickle.loads(pickle.dumps(rand))
    assert [twin(x)["augmentation_variant"] for _ in range(8)] == [rand(x)["augmentation_variant"] for _ in range(8)]
