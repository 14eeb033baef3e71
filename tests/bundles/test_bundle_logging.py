"""The bundles' training logs show small learning rates (seed 2 trains at 2.5e-5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


@pytest.mark.parametrize("bundle", ["breast_dce_maskguided_vgg3d", "breast_dce_transfer_resnet34"])
def test_train_stats_show_small_learning_rates(bundle: str) -> None:
    from monai.handlers.stats_handler import DEFAULT_KEY_VAL_FORMAT

    cfg = json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())
    stats = [h for h in cfg["train"]["handlers"] if h.get("_target_") == "StatsHandler"]
    assert len(stats) == 1
    fmt = stats[0].get("key_var_format", DEFAULT_KEY_VAL_FORMAT)
    assert fmt.format("lr", 2.5e-5) == "lr: 2.5e-05 "
    assert fmt.format("lr", 1e-3 * 0.05**2) == "lr: 2.5e-06 "  # seed 1 after two StepLR decays
    assert fmt.format("train_loss", 0.693147) == "train_loss: 0.6931 "
