"""Lockstep groups and their summed loss: a member trains as it would alone."""

from __future__ import annotations

import pytest
import torch

from dce_monai.losses import LockstepLoss
from dce_monai.networks.nets import Lockstep, ResNet34Transfer, triplet_group

NAMES = ("T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4", "sub")


def test_member_trains_as_alone():
    """Two SGD steps of a group member equal two steps of the same network alone, bit for bit."""
    trips = [("T1pre", "T1post3", "sub"), ("T2", "T1pre", "sub")]
    group = triplet_group(NAMES, trips, init_seed=3, input_range=(0.0, 2.0))
    alone = ResNet34Transfer(in_channels=3, init_seed=3, input_range=(0.0, 2.0))
    ga = torch.optim.SGD(group.parameters(), lr=0.01, momentum=0.9)
    aa = torch.optim.SGD(alone.parameters(), lr=0.01, momentum=0.9)
    loss_g, loss_a = LockstepLoss(), torch.nn.CrossEntropyLoss()
    idx = torch.tensor([NAMES.index(c) for c in trips[0]])
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        x, y = torch.rand(4, 7, 32, 32, generator=gen) * 2, torch.tensor([0, 1, 1, 0])
        ga.zero_grad()
        loss_g(group(x), y).backward()
        ga.step()
        aa.zero_grad()
        loss_a(alone(x.index_select(1, idx)), y).backward()
        aa.step()
    sd_g = {k.split(".", 2)[2]: v for k, v in group.state_dict().items() if k.startswith("members.0.")}
    sd_a = alone.state_dict()
    assert all(torch.equal(sd_g[k], v) for k, v in sd_a.items() if k in sd_g) and len(sd_a) > 100
    assert group.names == ["T1pre+T1post3+sub", "T2+T1pre+sub"] and len(group) == 2


def test_input_range_maps_to_imagenet():
    net = ResNet34Transfer(in_channels=3, input_range=(0.0, 2.0))
    x = torch.tensor([0.0, 1.0, 5.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    got = net._adapt(x)[0, :, 0, 0]
    want = (torch.tensor([0.0, 0.5, 1.0]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(got, want)
    assert "input_lo_hi" in net.state_dict() and "input_lo_hi" not in ResNet34Transfer().state_dict()


def test_init_seed_keeps_global_rng():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = ResNet34Transfer(init_seed=1)
    after = torch.rand(1)
    b = ResNet34Transfer(in_channels=7, channel_adapter="select", in_sequences=NAMES, init_seed=1)
    assert torch.equal(before, after)
    assert all(torch.equal(v, b.backbone.state_dict()[k]) for k, v in a.backbone.state_dict().items())


def test_scripted_with_input_range():
    net = ResNet34Transfer(in_channels=3, input_range=(0.0, 2.0)).eval()
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(torch.jit.script(net)(x), net(x))


@pytest.mark.parametrize(
    "build, err, match",
    [(lambda: Lockstep([]), ValueError, "at least one member"),
     (lambda: Lockstep([torch.nn.Identity()], names=["a", "b"]), ValueError, "2 names for 1 members"),
     (lambda: ResNet34Transfer(input_range=(1.0, 1.0)), ValueError, r"input_range must be \(lo, hi\)"),
     (lambda: LockstepLoss()(torch.zeros(3), torch.zeros(3)), ValueError, "member axis 1")],
)
def test_errors(build, err, match):
    with pytest.raises(err, match=match):
        build()
