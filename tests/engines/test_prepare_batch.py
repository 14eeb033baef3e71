"""PatchBatch: seed 1's device-side augmentation + resize, as a trainer's prepare_batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from dce_monai.engines.prepare_batch import PatchBatch, augment_resize, fold_generator


def test_augment_resize_identity_flip_and_rotation():
    x = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(augment_resize(x, 24), F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False))
    torch.testing.assert_close(augment_resize(x, 10), x)
    fl = torch.tensor([[True, False], [False, True]])
    out = augment_resize(x, 10, flips=fl)
    torch.testing.assert_close(out[0], torch.flip(x[0], dims=[-1]))
    torch.testing.assert_close(out[1], torch.flip(x[1], dims=[-2]))
    half = augment_resize(x, 10, angles_rad=torch.tensor([math.pi, math.pi]))
    torch.testing.assert_close(half, torch.flip(x, dims=[-2, -1]), atol=1e-5, rtol=1e-5)


def test_augment_resize_is_per_channel():
    """A channel's output does not depend on the other channels: a triplet selected after the
    transform equals the transform of the triplet (the search's lock-step group relies on it)."""
    x = torch.rand(4, 7, 12, 12, generator=torch.Generator().manual_seed(2))
    ang = torch.tensor([0.3, -1.0, 2.0, 0.0])
    fl = torch.tensor([[True, False], [False, True], [True, True], [False, False]])
    idx = torch.tensor([1, 4, 6])
    assert torch.equal(augment_resize(x, 32, ang, fl).index_select(1, idx), augment_resize(x.index_select(1, idx), 32, ang, fl))


@pytest.mark.parametrize("kind", ["tensor", "meta"])
def test_patch_batch_eval_resizes_only(kind):
    x = torch.rand(3, 3, 20, 20)
    batch = {"image": MetaTensor(x) if kind == "meta" else x, "label": torch.tensor([[0], [1], [1]])}
    img, y = PatchBatch(image_size=40)(batch, "cpu")
    assert type(img) is torch.Tensor and img.shape == (3, 3, 40, 40) and y.tolist() == [0, 1, 1] and y.dtype == torch.int64
    torch.testing.assert_close(img, F.interpolate(x, size=(40, 40), mode="bilinear", align_corners=False))


def test_patch_batch_draws_are_seeded_per_fold():
    batch = {"image": torch.rand(8, 3, 16, 16), "label": torch.zeros(8, dtype=torch.long)}
    a = PatchBatch(32, augment=True, seed=0, fold=1)(batch)[0]
    b = PatchBatch(32, augment=True, seed=0, fold=1)(batch)[0]
    c = PatchBatch(32, augment=True, seed=0, fold=2)(batch)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert fold_generator(0, 1).initial_seed() == fold_generator(0, 1).initial_seed() != fold_generator(1, 1).initial_seed()


def test_patch_batch_restores_from_its_generator_state():
    batch = {"image": torch.rand(4, 3, 16, 16), "label": torch.zeros(4, dtype=torch.long)}
    p = PatchBatch(32, augment=True)
    p(batch)
    state = p.generator.get_state()
    nxt = p(batch)[0]
    p.generator.set_state(state)
    assert torch.equal(p(batch)[0], nxt)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"image_size": 8}, "image_size must be an integer >= 16"), ({"image_size": 32.5}, "image_size must be an integer"),
     ({"image_size": 32, "rotate_deg": 270}, r"rotate_deg must be in \[0, 180\]")],
)
def test_patch_batch_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchBatch(**kwargs)


def test_patch_batch_missing_key():
    with pytest.raises(ValueError, match=r"PatchBatch: the batch has no 'label' \(keys: \['image'\]\)"):
        PatchBatch(32)({"image": torch.zeros(1, 3, 8, 8)})
