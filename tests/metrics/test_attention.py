"""Tests for dce_monai.metrics.attention: the fraction of CAM mass inside a mask."""

from __future__ import annotations

import pytest
import torch

from dce_monai.metrics.attention import attention_fraction


def test_attention_fraction():
    cam = torch.zeros(2, 1, 4, 4)
    cam[0, 0, :2] = 1.0
    cam[1, 0] = 1.0
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, 0, :2] = 1
    assert torch.allclose(attention_fraction(cam, mask), torch.tensor([1.0, 0.5]))


def test_weighted_mass_negative_clipped_and_empty_cam():
    cam = torch.tensor([[[[3.0, 1.0], [-5.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # (2, 1, 2, 2)
    mask = torch.tensor([[[[1, 0], [1, 1]]], [[[1, 1], [1, 1]]]], dtype=torch.bool)
    out = attention_fraction(cam, mask)
    # sample 0: negative voxel clipped to 0, so inside = 3 of total 4; sample 1: no mass -> 0, not NaN
    torch.testing.assert_close(out, torch.tensor([0.75, 0.0]))
    x = torch.rand(3, 1, 4, 4, 2)
    m = (torch.rand(3, 1, 4, 4, 2) > 0.5)
    torch.testing.assert_close(attention_fraction(x, m) + attention_fraction(x, ~m), torch.ones(3))  # inside + outside = all


def test_shape_error():
    with pytest.raises(ValueError, match=r"^cam and mask must have the same shape, got \(2, 1, 4, 4\) and \(2, 1, 2, 4\)\.$"):
        attention_fraction(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 4))
