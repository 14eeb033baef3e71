"""PreciseBatchNorm: BatchNorm running statistics of the final weights, nothing else changed."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from dce_monai.handlers.precise_bn import PreciseBatchNorm


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def _prep(batch, device=None, non_blocking=False):
    return batch["image"].to(device), batch["label"]


@pytest.mark.parametrize("sizes", [[4, 4, 4], [4, 4, 1]])
def test_statistics_are_the_batch_average_and_weights_unchanged(sizes):
    net = _net()
    gen = torch.Generator().manual_seed(1)
    loader = [{"image": torch.randn(n, 3, 8, 8, generator=gen) * 2 + 1, "label": torch.zeros(n)} for n in sizes]
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    PreciseBatchNorm(net, loader, _prep)(None)
    bn = net[1]
    # a one-sample last batch joins the one before it
    groups = [torch.cat([b["image"] for b in loader[:2]])] + [loader[2]["image"]] if sizes[-1] > 1 else \
        [loader[0]["image"], torch.cat([loader[1]["image"], loader[2]["image"]])]
    means = [net[0](g).mean(dim=(0, 2, 3)) for g in (groups if sizes[-1] == 1 else [b["image"] for b in loader])]
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0), atol=1e-5, rtol=1e-5)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items())
    assert not net[1].training or net.training  # mode restored (train by default)


@pytest.mark.parametrize("event, fired", [("completed", Events.COMPLETED), ("epoch_completed", Events.EPOCH_COMPLETED)])
def test_attach_events(event, fired):
    net = _net()
    h = PreciseBatchNorm(net, [{"image": torch.randn(2, 3, 8, 8), "label": torch.zeros(2)}], _prep, event=event)
    eng = Engine(lambda e, b: None)
    h.attach(eng)
    assert eng.has_event_handler(h, fired)


def test_bad_event():
    with pytest.raises(ValueError, match="iteration"):
        PreciseBatchNorm(_net(), [], _prep, event="iteration")
