from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from dce_monai.handlers import AttentionInMask
from dce_monai.metrics import attention_fraction
from dce_monai.networks import VGG3DCAM


def test_attention_metric_equals_function():
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(4, 8)).eval()
    batch = {"image": torch.rand(2, 1, 16, 16, 8), "label": torch.tensor([0, 1]), "mask": torch.zeros(2, 1, 16, 16, 8)}
    batch["mask"][:, :, :8] = 1
    engine = Engine(lambda e, b: b)
    AttentionInMask(net).attach(engine, "attention_in_mask")
    engine.run([batch], max_epochs=1)
    with torch.no_grad():
        ref = attention_fraction(net.cam(batch["image"], class_idx=batch["label"]), batch["mask"]).mean()
    assert engine.state.metrics["attention_in_mask"] == pytest.approx(float(ref))


def test_errors():
    with pytest.raises(TypeError, match=r"needs a network with cam"):
        AttentionInMask(torch.nn.Linear(1, 1))
    m = AttentionInMask(VGG3DCAM(channels=(4,)))
    with pytest.raises(ValueError, match=r"no sample was seen"):
        m.compute()


@pytest.mark.parametrize("training", [True, False], ids=["train_mode", "eval_mode"])
def test_measuring_leaves_the_network_as_found(training):
    """A MONAI evaluator restores training mode after its forward, before metrics update: the
    metric must not run the network in training mode (BatchNorm running statistics would move)."""
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(4, 8)).train(training)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = {"image": torch.rand(3, 1, 16, 16, 8), "label": torch.tensor([0, 1, 1]), "mask": torch.ones(3, 1, 16, 16, 8)}
    engine = Engine(lambda e, b: b)
    AttentionInMask(net).attach(engine, "attention_in_mask")
    engine.run([batch, batch], max_epochs=2)
    assert net.training is training
    assert all(m.training is training for m in net.modules())
    moved = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert moved == []
    with torch.no_grad():
        ref = attention_fraction(net.eval().cam(batch["image"], class_idx=batch["label"]), batch["mask"]).mean()
    assert engine.state.metrics["attention_in_mask"] == pytest.approx(float(ref))
