from __future__ import annotations

import pytest
import torch
from monai.visualize import CAM

from dce_monai.networks import VGG3DCAM


def _net(**kw):
    torch.manual_seed(0)
    return VGG3DCAM(channels=(4, 8, 8, 16), **kw)


def test_cam_mean_equals_logit_and_upsampled():
    net = _net().eval()
    x = torch.rand(2, 1, 32, 32, 16)
    raw = net.cam(x, class_idx=1, normalize=False, upsample=False)
    assert torch.allclose(raw.mean((1, 2, 3, 4)), net(x)[:, 1], atol=1e-5)
    cam = net.cam(x)
    assert cam.shape == (2, 1, 32, 32, 16)
    # default: the predicted class's map, trilinearly upsampled to the input grid, min-max per sample
    cls = net(x).argmax(1)
    up = torch.nn.functional.interpolate(net.cam(x, class_idx=cls, normalize=False, upsample=False), size=(32, 32, 16), mode="trilinear", align_corners=False)
    lo, hi = up.amin((1, 2, 3, 4), keepdim=True), up.amax((1, 2, 3, 4), keepdim=True)
    torch.testing.assert_close(cam, (up - lo) / (hi - lo + 1e-6), rtol=1e-5, atol=1e-6)
    assert torch.allclose(cam.amin((1, 2, 3, 4)), torch.zeros(2)) and torch.allclose(cam.amax((1, 2, 3, 4)), torch.ones(2), atol=1e-2)  # eps in the denominator


def test_cam_not_inverted_hot_region_is_one():
    net = _net().eval()
    x = torch.rand(1, 1, 32, 32, 16)
    raw = net.cam(x, class_idx=0, normalize=False)
    cam = net.cam(x, class_idx=0)
    hot, cold = raw.flatten().argmax(), raw.flatten().argmin()
    assert cam.flatten()[hot] == cam.max() and float(cam.max()) > 0.99  # max -> 1, not 0
    assert float(cam.flatten()[cold]) == 0.0


def test_cam_is_differentiable_and_per_sample_classes():
    net = _net()
    x = torch.rand(2, 1, 16, 16, 8)
    cam = net.cam(x, class_idx=torch.tensor([0, 1]))
    cam.sum().backward()
    assert net.blocks[0][0].weight.grad is not None and net.blocks[0][0].weight.grad.abs().sum() > 0


def test_monai_cam_works_on_it():
    net = _net().eval()
    x = torch.rand(1, 1, 32, 32, 16)
    cam = CAM(nn_module=net, target_layers="blocks.3", fc_layers="fc")(x)
    assert cam.shape == (1, 1, 32, 32, 16)


def test_checkpointing_same_result():
    a = _net(use_checkpoint=True, dropout=0.0).train()
    b = _net(dropout=0.0).train()
    x = torch.rand(2, 1, 16, 16, 8)
    ya, yb = a(x), b(x)
    assert torch.allclose(ya, yb, atol=1e-6)
    ya.sum().backward()
    yb.sum().backward()
    assert torch.allclose(a.blocks[0][0].weight.grad, b.blocks[0][0].weight.grad, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spatial_dims": 2}, r"spatial_dims must be 3, got 2"),
        ({"in_channels": 0}, r"in_channels and out_channels must be >= 1"),
        ({"channels": ()}, r"channels must be a non-empty sequence"),
        ({"convs_per_block": 0}, r"convs_per_block must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGG3DCAM(**kwargs)


def test_class_idx_errors():
    net = _net().eval()
    x = torch.rand(2, 1, 16, 16, 8)
    with pytest.raises(ValueError, match=r"class_idx must be in \[0, 1\], got 5"):
        net.cam(x, class_idx=5)
    with pytest.raises(ValueError, match=r"class_idx must have one class per sample \(2\), got 3"):
        net.cam(x, class_idx=torch.tensor([0, 1, 1]))
