"""Contract tests over every network: shape, gradients, NaN, eval determinism, TorchScript, config build."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

SEVEN = ["T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4", "sub"]
CASES = [
    ("dce_monai.networks.ResNet34Transfer", {"in_channels": 3}, (2, 3, 32, 32)),
    ("dce_monai.networks.ResNet34Transfer", {"in_channels": 7, "channel_adapter": "conv1x1", "in_sequences": SEVEN, "triplet": ["T1pre", "T1post3", "sub"]}, (2, 7, 48, 40)),
    ("dce_monai.networks.ResNet34Transfer", {"in_channels": 7, "channel_adapter": "select", "in_sequences": SEVEN, "out_channels": 3}, (2, 7, 32, 32)),
    ("dce_monai.networks.VGG3DCAM", {"in_channels": 1, "channels": [4, 8, 8, 16]}, (2, 1, 32, 32, 16)),
    ("dce_monai.networks.VGG3DCAM", {"in_channels": 3, "channels": [4, 8, 16], "out_channels": 3}, (2, 3, 24, 20, 12)),
]


def _build(target, kwargs):
    return ConfigParser({"net": {"_target_": target, **kwargs}}).get_parsed_content("net")


@pytest.mark.parametrize("target, kwargs, shape", CASES)
def test_contract(target, kwargs, shape):
    torch.manual_seed(0)
    net = _build(target, kwargs)
    x = torch.rand(shape)
    out = net(x)
    assert out.shape == (shape[0], kwargs.get("out_channels", 2)) and torch.isfinite(out).all()
    out.sum().backward()
    no_grad = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not no_grad, no_grad
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x)
        traced = torch.jit.trace(net, x)
        assert torch.equal(a, b) and torch.allclose(traced(x), a, atol=1e-5)
        scripted = torch.jit.script(net)  # what `monai.bundle ckpt_export` does without --use_trace
        assert torch.allclose(scripted(x), a, atol=1e-5)
