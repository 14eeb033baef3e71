"""Distributed set-up helpers and the bundles folder."""

from __future__ import annotations

from dce_monai.utils.distributed import is_rank0
from dce_monai.workflows.bundle_utils import BUNDLES_DIR


def test_rank0_without_distributed_and_bundles_dir() -> None:
    assert is_rank0() is True
    assert (BUNDLES_DIR / "breast_dce_maskguided_vgg3d" / "configs" / "train.json").is_file()
