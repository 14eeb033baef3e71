"""Distributed set-up helpers and the bundles folder."""

from __future__ import annotations

import pytest

from dce_monai.utils import distributed as ud
from dce_monai.utils.distributed import is_rank0
from dce_monai.workflows.bundle_utils import BUNDLES_DIR


def test_rank0_without_distributed_and_bundles_dir() -> None:
    assert is_rank0() is True
    assert (BUNDLES_DIR / "breast_dce_maskguided_vgg3d" / "configs" / "train.json").is_file()


def test_init_distributed_outside_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match="init_distributed needs torchrun's environment"):
        ud.init_distributed()
    with pytest.raises(ValueError, match="mpi"):
        ud.init_distributed("mpi")
    assert ud.is_rank0()
