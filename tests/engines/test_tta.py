"""Tests for dce_monai.engines.tta: class probabilities averaged over the 34 variants, and CAMs mapped back with MONAI's inversion."""

from __future__ import annotations

import pytest
import torch
from monai.data import set_track_meta
from monai.transforms import ResizeWithPadOrCrop

from dce_monai.engines.tta import TTA34Inferer
from dce_monai.transforms.augmentation import Augment34, CornerShift


def _echo(x: torch.Tensor) -> torch.Tensor:
    """A "CAM" equal to the input's first channel: mapped back, it must be the input again."""
    return x[:, :1] * 1.0


def test_cam_of_cube_rotations_maps_back_exactly() -> None:
    cube = torch.rand(2, 2, 5, 5, 5)
    torch.testing.assert_close(TTA34Inferer(variants=range(24)).cam(cube, _echo), cube[:, :1])
    x = torch.rand(2, 2, 6, 5, 4)  # non-cubic: the 4 rotations that keep the shape come back exactly
    out = TTA34Inferer(variants=[0, 2, 8, 10]).cam(x, _echo)
    torch.testing.assert_close(out, x[:, :1])
    swapped = TTA34Inferer(variants=[14]).cam(x, _echo)  # X and Y swapped: one X plane cropped away, then padded back
    assert int((swapped == x[:, :1]).all(dim=(0, 1, 3, 4)).sum()) == 5 and int((swapped == 0).all(dim=(0, 1, 3, 4)).sum()) == 1


def test_cam_of_corner_shift_and_rotation() -> None:
    x = torch.rand(1, 1, 12, 12, 4) + 1.0
    shift = TTA34Inferer(variants=[0, 24]).cam(x, _echo)
    keep = torch.zeros_like(x)
    o = CornerShift(0).offsets  # +10 voxels: what moved out of the 12-voxel field of view is lost
    keep[..., : 12 - o[0], : 12 - o[1], : max(0, 4 - o[2])] = 1.0
    torch.testing.assert_close(shift, x * (1 + keep) / 2)
    i, j = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    ramp = (1.0 + 0.1 * i + 0.05 * j)[None, None, :, :, None].expand(1, 1, 12, 12, 4)  # bilinear is exact on a ramp
    rot = TTA34Inferer(variants=[32, 33]).cam(ramp, _echo)
    assert float((rot - ramp)[..., 3:9, 3:9, :].abs().max()) < 1e-4  # interior restored; the corners left the field of view


def test_cam_disabled_and_errors() -> None:
    x = torch.rand(1, 1, 4, 4, 4)
    torch.testing.assert_close(TTA34Inferer(enabled=False).cam(x, _echo), x)
    with pytest.raises(ValueError, match=r"cam_fn must return \(B, K, 4, 4, 4\) maps on the input grid, got shape \(1, 1, 2, 2, 2\)"):
        TTA34Inferer(variants=[0]).cam(x, lambda t: t[..., ::2, ::2, ::2])
    set_track_meta(False)
    try:
        with pytest.raises(ValueError, match="needs the transform trace: call monai.data.set_track_meta"):
            TTA34Inferer(variants=[0]).cam(x, _echo)
    finally:
        set_track_meta(True)


# ---- __call__: class log-probabilities averaged over the variants ----------------------------


class _PoolNet(torch.nn.Module):
    """Global mean and max of each channel -> linear: invariant to every cube rotation of a cube."""

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(2 * channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], dim=1))


def _flat_net(x: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(x)
    return net


def _manual_tta(x: torch.Tensor, net: torch.nn.Module, variants: list[int]) -> torch.Tensor:
    """Reference: the formula ``log(1/V sum_v softmax(net(restore(A_v(x)))))`` written out."""
    restore = ResizeWithPadOrCrop(spatial_size=tuple(x.shape[2:]))
    probs = [torch.softmax(net(torch.stack([torch.as_tensor(restore(Augment34(v)(s))) for s in x])), 1) for v in variants]
    return torch.log(torch.stack(probs).mean(0))


def test_call_equals_formula_over_all_34_variants() -> None:
    x = torch.rand(2, 1, 8, 8, 4)
    net = _flat_net(x)
    with torch.no_grad():
        out = TTA34Inferer()(x, net)
        ref = _manual_tta(x, net, list(range(34)))
    assert out.shape == (2, 2)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2), rtol=0, atol=1e-5)
    with torch.no_grad():  # one variant: exactly that variant's softmax; identity variant: plain softmax
        torch.testing.assert_close(TTA34Inferer(variants=[0])(x, net).exp(), torch.softmax(net(x), 1), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(TTA34Inferer(variants=[5])(x, net), _manual_tta(x, net, [5]), rtol=1e-4, atol=1e-5)


def test_call_rotation_invariant_network_gives_plain_probabilities() -> None:
    """Averaging over the 24 cube rotations of a cube: a network blind to orientation must give
    exactly its plain softmax back (each variant maps to the same input content)."""
    x = torch.rand(3, 2, 6, 6, 6)
    net = _PoolNet()
    with torch.no_grad():
        plain = torch.softmax(net(x), 1)
        out = TTA34Inferer(variants=range(24))(x, net).exp()
    torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-6)
    # a corner shift moves voxels out of the field of view: the max/mean change, so the average differs
    with torch.no_grad():
        shifted = TTA34Inferer(variants=[24])(x + 1.0, net).exp()
    assert not torch.allclose(shifted, torch.softmax(net(x + 1.0), 1), atol=1e-4)


def test_call_variant_subset_order_free_and_batch_independent() -> None:
    x = torch.rand(3, 1, 8, 8, 4)
    net = _flat_net(x)
    with torch.no_grad():
        a = TTA34Inferer(variants=[2, 24, 32])(x, net)
        b = TTA34Inferer(variants=[32, 2, 24])(x, net)
        c = TTA34Inferer(variants=[2, 24, 32])(x[1:2], net)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the mean does not depend on the order
    torch.testing.assert_close(a[1:2], c, rtol=1e-5, atol=1e-6)  # each sample averaged on its own
    assert TTA34Inferer(variants=(3, 7)).variants == [3, 7]
    assert TTA34Inferer().variants == list(range(34))
    assert [type(op).__name__ for op in TTA34Inferer(variants=[0, 33]).ops] == ["Augment34", "Augment34"]


def test_call_disabled_is_plain_inference_with_args() -> None:
    x = torch.rand(2, 1, 8, 8, 4)
    net = _flat_net(x)

    def scaled(t: torch.Tensor, factor: float, *, bias: float = 0.0) -> torch.Tensor:
        return net(t) * factor + bias

    with torch.no_grad():
        torch.testing.assert_close(TTA34Inferer(enabled=False)(x, net), net(x))  # raw logits, not log-softmax
        torch.testing.assert_close(TTA34Inferer(enabled="false")(x, scaled, 2.0, bias=1.0), net(x) * 2.0 + 1.0)
        # enabled: args and kwargs reach the network on every variant
        out = TTA34Inferer(variants=[0])(x, scaled, 2.0, bias=1.0)
    torch.testing.assert_close(out.exp(), torch.softmax(net(x) * 2.0 + 1.0, 1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variants": [40]}, r"variants must be a non-empty subset of 0\.\.33, got \[40\]"),
        ({"variants": [-1]}, r"variants must be a non-empty subset of 0\.\.33, got \[-1\]"),
        ({"variants": []}, r"variants must be a non-empty subset of 0\.\.33, got \[\]"),
        ({"enabled": "maybe"}, r"enabled \(--tta\) must be true or false, got 'maybe'"),
    ],
)
def test_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TTA34Inferer(**kwargs)


def test_enabled_text_values() -> None:
    assert TTA34Inferer(enabled="false").enabled is False
    assert TTA34Inferer(enabled=" True ").enabled is True
    assert TTA34Inferer(enabled=False).enabled is False
