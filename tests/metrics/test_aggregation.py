from __future__ import annotations

import numpy as np
import pytest
import torch

from dce_monai.metrics import aggregate_by_lesion, attention_fraction


def test_max_and_mean():
    ids, s, y = aggregate_by_lesion([0.1, 0.9, 0.3, 0.2], ["A", "A", "B", "B"], [1, 1, 0, 0])
    assert ids == ["A", "B"] and np.allclose(s, [0.9, 0.3]) and y.tolist() == [1, 0]
    _, s, _ = aggregate_by_lesion([0.1, 0.9, 0.3, 0.2], ["A", "A", "B", "B"], reduction="mean")
    assert np.allclose(s, [0.5, 0.25])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([0.1, 0.2], ["A", "A"], [0, 1]), {}, r"lesion 'A': its patches carry different labels \[0, 1\]"),
        (([0.1], ["A", "B"]), {}, r"must have the same length"),
        (([0.1], ["A"]), {"reduction": "median"}, r"median"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        aggregate_by_lesion(*args, **kwargs)


def test_attention_fraction():
    cam = torch.zeros(2, 1, 4, 4)
    cam[0, 0, :2] = 1.0
    cam[1, 0] = 1.0
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, 0, :2] = 1
    assert torch.allclose(attention_fraction(cam, mask), torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match=r"cam and mask must have the same shape"):
        attention_fraction(cam, mask[:, :, :2])
