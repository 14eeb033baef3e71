"""Tests for dce_monai.engines.tta: CAM test-time augmentation mapped back with MONAI's inversion."""

from __future__ import annotations

import pytest
import torch
from monai.data import set_track_meta

from dce_monai.engines.tta import TTA34Inferer
from dce_monai.transforms.augmentation import CornerShift


def _echo(x: torch.Tensor) -> torch.Tensor:
    """A "CAM" equal to the input's first channel: mapped back, it must be the input again."""
    return x[:, :1] * 1.0


def test_cam_of_cube_rotations_maps_back_exactly() -> None:
    cube = torch.rand(2, 2, 5, 5, 5)
    torch.testing.assert_close(TTA34Inferer(variants=range(24)).cam(cube, _echo), cube[:, :1])
    x = torch.rand(2, 2, 6, 5, 4)  # non-cubic: the 4 rotations that keep the shape come back exactly
    out = TTA34Inferer(variants=[0, 2, 8, 10]).cam(x, _echo)
    torch.testing.assert_close(out, x[:, :1])
    swapped = TTA34Inferer(variants=[14]).cam(x, _echo)  # X and Y swapped: one X plane cropped away, then padded back
    assert int((swapped == x[:, :1]).all(dim=(0, 1, 3, 4)).sum()) == 5 and int((swapped == 0).all(dim=(0, 1, 3, 4)).sum()) == 1


def test_cam_of_corner_shift_and_rotation() -> None:
    x = torch.rand(1, 1, 12, 12, 4) + 1.0
    shift = TTA34Inferer(variants=[0, 24]).cam(x, _echo)
    keep = torch.zeros_like(x)
    o = CornerShift(0).offsets  # +10 voxels: what moved out of the 12-voxel field of view is lost
    keep[..., : 12 - o[0], : 12 - o[1], : max(0, 4 - o[2])] = 1.0
    torch.testing.assert_close(shift, x * (1 + keep) / 2)
    i, j = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    ramp = (1.0 + 0.1 * i + 0.05 * j)[None, None, :, :, None].expand(1, 1, 12, 12, 4)  # bilinear is exact on a ramp
    rot = TTA34Inferer(variants=[32, 33]).cam(ramp, _echo)
    assert float((rot - ramp)[..., 3:9, 3:9, :].abs().max()) < 1e-4  # interior restored; the corners left the field of view


def test_cam_disabled_and_errors() -> None:
    x = torch.rand(1, 1, 4, 4, 4)
    torch.testing.assert_close(TTA34Inferer(enabled=False).cam(x, _echo), x)
    with pytest.raises(ValueError, match=r"cam_fn must return \(B, K, 4, 4, 4\) maps on the input grid, got shape \(1, 1, 2, 2, 2\)"):
        TTA34Inferer(variants=[0]).cam(x, lambda t: t[..., ::2, ::2, ::2])
    set_track_meta(False)
    try:
        with pytest.raises(ValueError, match="needs the transform trace: call monai.data.set_track_meta"):
            TTA34Inferer(variants=[0]).cam(x, _echo)
    finally:
        set_track_meta(True)
