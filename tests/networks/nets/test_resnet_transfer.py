from __future__ import annotations

import pickle

import pytest
import torch

from dce_monai.networks import ResNet34Transfer

SEVEN = ("T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4", "sub")


def torchvision_resnet34_layout():
    """torchvision resnet34 key -> shape, written out (torchvision is not a dependency)."""
    keys = {"conv1.weight": (64, 3, 7, 7)}

    def bn(p, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{p}.{s}"] = (c,)
        keys[f"{p}.num_batches_tracked"] = ()

    bn("bn1", 64)
    c_in = 64
    for li, (n, c) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            keys[f"{p}.conv1.weight"] = (c, c_in if b == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            keys[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if b == 0 and li > 1:
                keys[f"{p}.downsample.0.weight"] = (c, c_in, 1, 1)
                bn(f"{p}.downsample.1", c)
        c_in = c
    keys["fc.weight"], keys["fc.bias"] = (1000, 512), (1000,)
    return keys


def _state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in torchvision_resnet34_layout().items():
        out[k] = torch.tensor(5) if k.endswith("num_batches_tracked") else (torch.rand(s, generator=g) + 0.5 if "running_var" in k else torch.randn(s, generator=g) * 0.05)
    return out


def test_state_dict_has_torchvision_layout():
    net = ResNet34Transfer(out_channels=1000)
    assert {k: tuple(v.shape) for k, v in net.backbone.state_dict().items()} == torchvision_resnet34_layout()


def test_loading_local_weights_reproduces_outputs(tmp_path):
    sd = _state_dict()
    path = tmp_path / "resnet34.pth"
    torch.save(sd, path)
    net = ResNet34Transfer(pretrained_weights=path).eval()
    ref = ResNet34Transfer().eval()
    ref.backbone.load_state_dict({**sd, "fc.weight": net.backbone.fc.weight, "fc.bias": net.backbone.fc.bias})
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(net(x), ref(x))
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(net.backbone.state_dict()[k], v)


def test_conv1x1_adapter_starts_as_the_triplet():
    conv = ResNet34Transfer(in_channels=7, channel_adapter="conv1x1", in_sequences=SEVEN, triplet=("T1pre", "T1post3", "sub")).eval()
    sel = ResNet34Transfer(in_channels=7, channel_adapter="select", in_sequences=SEVEN, triplet=("T1pre", "T1post3", "sub")).eval()
    sel.backbone.load_state_dict(conv.backbone.state_dict())
    x = torch.rand(2, 7, 32, 32)
    assert torch.allclose(conv(x), sel(x), atol=1e-6)
    assert torch.allclose(sel(x), sel.backbone(x[:, [1, 4, 6]]))


def test_freeze_and_amp_channels_last():
    net = ResNet34Transfer(freeze=("stem", "layer1"))
    assert not net.backbone.conv1.weight.requires_grad and not net.backbone.layer1[0].conv1.weight.requires_grad
    assert net.backbone.layer2[0].conv1.weight.requires_grad
    net.unfreeze()
    assert net.backbone.conv1.weight.requires_grad
    net = net.eval().to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_weight_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pretrained weights not found: .* never downloaded"):
        ResNet34Transfer(pretrained_weights=tmp_path / "none.pth")
    bad = _state_dict()
    bad.pop("layer1.0.conv1.weight")
    bad["extra.weight"] = torch.zeros(1)
    bad["conv1.weight"] = torch.zeros(64, 4, 7, 7)
    p = tmp_path / "bad.pth"
    torch.save(bad, p)
    with pytest.raises(ValueError, match=r"missing keys \['layer1.0.conv1.weight'\]; unexpected keys \['extra.weight'\]; shape mismatches \['conv1.weight: file \(64, 4, 7, 7\) vs model \(64, 3, 7, 7\)'\]"):
        ResNet34Transfer(pretrained_weights=p)
    pk = tmp_path / "pickle.pth"
    pk.write_bytes(pickle.dumps({"conv1.weight": object()}))
    with pytest.raises(ValueError, match=r"refused to load: it is not a plain tensor state dict loadable with weights_only=True"):
        ResNet34Transfer(pretrained_weights=pk)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spatial_dims": 3}, r"spatial_dims must be 2, got 3"),
        ({"in_channels": 7}, r"without a channel adapter in_channels must be 3"),
        ({"in_channels": 7, "channel_adapter": "pca", "in_sequences": SEVEN}, r"pca"),
        ({"in_channels": 7, "channel_adapter": "select", "in_sequences": SEVEN[:6]}, r"in_sequences must name all 7 input channels"),
        ({"in_channels": 7, "channel_adapter": "select", "in_sequences": SEVEN, "triplet": ("T1pre", "sub")}, r"triplet must be 3 of the input sequences"),
        ({"freeze": ("layer9",)}, r"layer9"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet34Transfer(**kwargs)
