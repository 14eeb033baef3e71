"""Output transforms the bundles give MONAI's handlers and metrics."""

from __future__ import annotations

import pytest
import torch

from dce_monai.handlers import outputs as ho


def test_positive_prob_softmax_and_sigmoid() -> None:
    torch.testing.assert_close(ho.positive_prob(torch.tensor([[1.0, 3.0]])), torch.softmax(torch.tensor([1.0, 3.0]), 0)[1:])
    torch.testing.assert_close(ho.positive_prob(torch.tensor([0.0, 2.0])), torch.softmax(torch.tensor([0.0, 2.0]), 0)[1:])  # one sample
    torch.testing.assert_close(ho.positive_prob(torch.tensor([[0.0], [2.0]])), torch.sigmoid(torch.tensor([0.0, 2.0])))  # one logit


def test_output_transforms() -> None:
    out = [{"pred": torch.tensor([0.0, 1.0]), "label": torch.tensor([1]), "pred_lesion_id": "A", "image": torch.ones(1, 2, 2), "pred_mask": torch.zeros(1, 2, 2)},
           {"pred": torch.tensor([1.0, 0.0]), "label": torch.tensor([0]), "pred_lesion_id": "B", "image": torch.zeros(1, 2, 2), "pred_mask": torch.ones(1, 2, 2)}]
    probs, labels, ids = ho.lesion_auc_output(out)
    torch.testing.assert_close(probs, torch.sigmoid(torch.tensor([1.0, -1.0])))  # softmax of two logits = sigmoid of their difference
    assert labels.tolist() == [1, 0] and ids == ["A", "B"]
    with pytest.raises(KeyError, match=r"evaluator output lacks 'pred_lesion_id' \(has \['label', 'pred'\]\); copy lesion_id into it with CopyItemsd"):
        ho.lesion_auc_output({"pred": torch.zeros(2), "label": 0})
    image, label, mask = ho.attention_output(out)
    assert image.shape == (2, 1, 2, 2) and label.tolist() == [1, 0] and mask[:, 0, 0, 0].tolist() == [0.0, 1.0]
    with pytest.raises(KeyError, match=r"attention_output: evaluator output lacks \['pred_mask'\]"):
        ho.attention_output([{"image": 1, "label": 0}])
    assert ho.first_image(out)[0][0] is out[0]["image"] and ho.first_image(out)[1] == [None, None]
    assert ho.no_output(out) == [None, None] and ho.no_output({"pred": 0}) == [None]
    assert ho.loss_parts([{"loss": torch.tensor(1.5), "ce": 1.0, "dice": 0.5}]) == {"train_loss": 1.5, "train_ce": 1.0, "train_cam_dice": 0.5}
    assert ho.loss_parts({"loss": 2.0}) == {"train_loss": 2.0}
