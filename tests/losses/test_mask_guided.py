from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dce_monai.losses import MaskGuidedLoss, soft_dice
from dce_monai.networks import VGG3DCAM


def test_lambda_zero_is_plain_ce_and_perfect_cam_dice_zero():
    logits, y = torch.randn(3, 2), torch.tensor([0, 1, 1])
    mask = (torch.rand(3, 1, 8, 8, 4) > 0.5).float()
    parts = MaskGuidedLoss(lambda_dice=0).compute(logits, y, torch.rand(3, 1, 8, 8, 4), mask)
    assert torch.equal(parts["loss"], F.cross_entropy(logits, y))
    perfect = MaskGuidedLoss().compute(logits, y, mask, mask)
    assert float(perfect["dice_term"]) < 1e-4
    assert torch.allclose(perfect["loss"], F.cross_entropy(logits, y) + 10 * perfect["dice_term"])


def test_gradient_reaches_conv_features_through_cam():
    net = VGG3DCAM(channels=(4, 8), dropout=0.0)
    x, y = torch.rand(2, 1, 16, 16, 8), torch.tensor([0, 1])
    mask = torch.zeros(2, 1, 16, 16, 8)
    mask[:, :, 4:10, 4:10, 2:6] = 1
    loss = MaskGuidedLoss(lambda_dice=1.0)
    # only the Dice term: CE contributes nothing to conv gradients through this path
    term = loss.compute(net(x).detach(), y, net.cam(x, class_idx=y), mask)["dice_term"]
    term.backward()
    assert net.blocks[0][0].weight.grad.abs().sum() > 0


def test_mask_resampled_to_cam_size():
    cam = torch.ones(1, 1, 4, 4, 2)
    mask = torch.ones(1, 1, 16, 16, 8)
    assert float(MaskGuidedLoss().compute(torch.zeros(1, 2), torch.tensor([1]), cam, mask)["dice"]) == pytest.approx(1.0)
    assert soft_dice(torch.zeros(1, 4), torch.zeros(1, 4)).item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: MaskGuidedLoss(lambda_dice=-1), r"lambda_dice must be >= 0, got -1"),
        (lambda: MaskGuidedLoss(cam_class="random"), r"random"),
        (lambda: MaskGuidedLoss().compute(torch.zeros(2, 2), torch.zeros(2), torch.zeros(2, 1, 4, 4, 4), torch.zeros(3, 1, 4, 4, 4)), r"batch sizes differ"),
        (lambda: MaskGuidedLoss().compute(torch.zeros(2, 2), torch.zeros(2), torch.zeros(2, 1, 4, 4, 4), torch.zeros(2, 4, 4, 4)), r"same number of dims"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _toy(n, seed):
    """Volumes with a bright lesion (masked) and a label-correlated distractor blob elsewhere."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, 8, generator=g) * 0.2
    y = torch.randint(0, 2, (n,), generator=g)
    mask = torch.zeros(n, 1, 16, 16, 8)
    for i in range(n):
        cx, cy = int(torch.randint(3, 8, (1,), generator=g)), int(torch.randint(3, 13, (1,), generator=g))
        mask[i, 0, cx : cx + 4, cy - 2 : cy + 2, 2:6] = 1
        x[i, 0][mask[i, 0] > 0] += 0.5 + 0.5 * y[i]  # malignant lesions enhance more
        if y[i] == 1:
            x[i, 0, 12:16, 12:16, 0:3] += 1.5  # shortcut artefact far from the lesion
    return x, y, mask


def _train(lambda_dice):
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(8, 16), dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = MaskGuidedLoss(lambda_dice=lambda_dice)
    x, y, mask = _toy(24, 0)
    for _ in range(40):
        opt.zero_grad()
        loss_fn(net(x), y, net.cam(x, class_idx=y), mask).backward()
        opt.step()
    net.eval()
    xt, yt, mt = _toy(16, 1)
    with torch.no_grad():
        cam = net.cam(xt, class_idx=yt)
    return float((cam * mt).sum() / cam.sum())


def test_mask_guidance_moves_attention_into_the_lesion():
    guided, unguided = _train(10.0), _train(0.0)
    assert guided > unguided + 0.1, (guided, unguided)
