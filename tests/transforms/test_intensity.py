from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.intensity import (
    IMAGENET_MEAN,
    ImageNetNormalize,
    ImageNetNormalized,
    ScaleIntensityDCE,
    ScaleIntensityDCEd,
)

AFF = torch.diag(torch.tensor([0.7, 0.7, 2.0, 1.0], dtype=torch.float64))


def _phases():
    rng = np.random.default_rng(0)
    pre = rng.uniform(100, 200, (1, 8, 8, 4)).astype(np.uint16)
    post = (pre * 2.5).astype(np.uint16)
    return pre, post


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_one_scale_keeps_relative_enhancement(kind):
    pre, post = _phases()
    wrap = {"numpy": lambda a: a, "torch": lambda a: torch.as_tensor(a.astype(np.float32)), "meta": lambda a: MetaTensor(torch.as_tensor(a.astype(np.float32)), affine=AFF)}[kind]
    d = ScaleIntensityDCEd(["T1pre", "T1post1"], scale_key="scale")({"T1pre": wrap(pre), "T1post1": wrap(post)})
    re_before = (post.astype(np.float64) - pre) / pre
    re_after = ((d["T1post1"] - d["T1pre"]) / d["T1pre"]).numpy()
    np.testing.assert_allclose(re_after, re_before, rtol=1e-5)
    assert d["scale"] > 0 and float(d["T1post1"].max()) <= 1.05
    # the bug this avoids: per-phase z-scoring makes the two phases indistinguishable
    z = lambda a: (a - a.mean()) / a.std()
    assert np.abs(z(post.astype(float)) - z(pre.astype(float))).max() < 0.01
    if kind == "meta":
        assert torch.equal(d["T1pre"].affine, AFF)


def test_array_form_joint_scale():
    x = torch.stack([torch.full((4, 4, 2), 10.0), torch.full((4, 4, 2), 30.0)])
    out = ScaleIntensityDCE(percentile=100)(x)
    assert float(out[1].max()) == 1.0 and float(out[0].max()) == pytest.approx(1 / 3)


def test_imagenet_normalisation():
    x = MetaTensor(torch.rand(3, 16, 16) * torch.tensor([1.0, 100.0, -5.0]).view(3, 1, 1), affine=torch.eye(3))
    out = ImageNetNormalized()({"image": x})["image"]
    for c in range(3):
        lo = (0 - IMAGENET_MEAN[c]) / [0.229, 0.224, 0.225][c]
        hi = (1 - IMAGENET_MEAN[c]) / [0.229, 0.224, 0.225][c]
        assert lo - 1e-5 <= float(out[c].min()) and float(out[c].max()) <= hi + 1e-5
    assert isinstance(out, MetaTensor)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: ScaleIntensityDCE(percentile=0), ValueError, r"percentile must be in \(0, 100\], got 0"),
        (lambda: ScaleIntensityDCE()(torch.zeros(1, 2, 2, 2)), ValueError, r"no voxel above the floor 0.0"),
        (lambda: ScaleIntensityDCE()(torch.tensor([[[[float("nan")]]]])), ValueError, r"'img' has 1 NaN/Inf voxels"),
        (lambda: ScaleIntensityDCEd(["T1pre"])({"patient_id": "P", "T1post1": torch.ones(1, 2, 2, 2)}), KeyError, r"patient 'P': ScaleIntensityDCEd reference key\(s\) \['T1pre'\] missing"),
        (lambda: ImageNetNormalize()(torch.rand(2, 4, 4)), ValueError, r"needs exactly 3 channels, got 2"),
        (lambda: ImageNetNormalize(lower=50, upper=10), ValueError, r"0 <= lower < upper <= 100"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("kind", ["torch", "meta", "numpy"])
@pytest.mark.parametrize("lower, upper", [(0.5, 99.5), (0.0, 100.0), (10.0, 60.0)])
def test_imagenet_normalisation_equals_monai_composition(kind, lower, upper):
    from monai.transforms import NormalizeIntensity, ScaleIntensityRangePercentiles

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 18, generator=g) * torch.tensor([1.0, 100.0, 5.0]).view(3, 1, 1)
    x[2] = 7.0  # a constant channel maps to 0 before the ImageNet shift
    ref = ScaleIntensityRangePercentiles(lower, upper, 0.0, 1.0, clip=True, channel_wise=True)(x.clone())
    ref = NormalizeIntensity(subtrahend=IMAGENET_MEAN, divisor=(0.229, 0.224, 0.225), channel_wise=True)(ref)
    inp = {"torch": x, "meta": MetaTensor(x), "numpy": x.numpy()}[kind]
    out = ImageNetNormalize(lower, upper)(inp)
    torch.testing.assert_close(torch.as_tensor(out), torch.as_tensor(ref), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("limit, chunk", [(1000, 777), (10**9, 1 << 22), (333, 64)])
def test_chunked_sample_equals_the_concatenated_selection(monkeypatch, masked, limit, chunk):
    """The scale's sample, built a chunk at a time, is exactly ``cat(values)[above floor][::k]``."""
    import dce_monai.transforms.intensity as mod

    monkeypatch.setattr(mod, "SAMPLE_LIMIT", limit)
    monkeypatch.setattr(mod, "_CHUNK", chunk)
    g = torch.Generator().manual_seed(0)
    pre = torch.rand(2, 20, 21, 9, generator=g) * 100 - 10  # about 10 % below the floor 0
    post = torch.rand(1, 20, 21, 9, generator=g) * 300
    mask = (torch.rand(1, 20, 21, 9, generator=g) > 0.3).float() if masked else None
    m = None if mask is None else mask[0] > 0
    naive = torch.cat([(x[:, m] if m is not None else x).flatten() for x in (pre, post)])
    naive = naive[naive > 0]
    naive = naive[:: max(1, naive.numel() // limit)]
    want = float(torch.quantile(naive, 0.99))
    d = {"T1pre": MetaTensor(pre), "T1post1": MetaTensor(post)}
    if mask is not None:
        d["breast_mask"] = mask
    out = ScaleIntensityDCEd(["T1pre"], reference_keys=["T1pre", "T1post1"], scale_key="s", mask_key="breast_mask" if masked else None)(d)
    assert out["s"] == want
    sample = mod._sample_above([(c.flatten(), None if m is None else m.flatten()) for x in (pre, post) for c in x], 0.0)
    assert torch.equal(sample, naive)


@pytest.mark.parametrize("kind", ["meta", "torch", "int32"])
def test_inplace_scaling_gives_the_same_images(kind):
    g = torch.Generator().manual_seed(1)

    def make():
        pre, post = torch.rand(1, 6, 7, 5, generator=g) * 500, torch.rand(1, 6, 7, 5, generator=g) * 900
        if kind == "int32":
            pre, post = pre.int(), post.int()
        if kind == "meta":
            pre, post = MetaTensor(pre), MetaTensor(post)
        return {"T1pre": pre, "T1post1": post, "same": post}

    g.manual_seed(1)
    want = ScaleIntensityDCEd(["T1pre", "T1post1", "same"], reference_keys=["T1pre"])(make())
    g.manual_seed(1)
    d = make()
    got = ScaleIntensityDCEd(["T1pre", "T1post1", "same"], reference_keys=["T1pre"], inplace=True)(d)
    for k in ("T1pre", "T1post1", "same"):
        assert torch.equal(torch.as_tensor(got[k]), torch.as_tensor(want[k])), k
    assert (got["T1pre"].data_ptr() == d["T1pre"].data_ptr()) == (kind != "int32")
