"""``dce_monai.workflows.bundle_utils.bundle_workflow``: a bundle by folder or by name, initialised
and property-checked (run here on the seed 1 bundle and the session's ``bundle_cohort``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dce_monai.workflows import bundle_utils as bu

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "breast_dce_transfer_resnet34"


def _overrides(cohort: dict[str, Path], out: Path) -> dict[str, object]:
    """Overrides for a small run of the seed 1 bundle on ``cohort``'s fold 0, writing under ``out``
    (no ``bundle_root``: :func:`bundle_workflow` sets it)."""
    return {"manifest": str(cohort["manifest"]), "folds": str(cohort["folds"]), "fold": 0, "output_dir": str(out / "out"),
            "ckpt_dir": str(out / "models"), "image_size": 32, "batch_size": 4, "val_split": "test"}


def test_bundle_workflow_by_name_and_missing_properties(bundle_cohort, tmp_path):
    over = _overrides(bundle_cohort, tmp_path)
    wf = bu.bundle_workflow("breast_dce_transfer_resnet34", ["train.json"], "train", **over)
    assert Path(wf.parser["bundle_root"]) == BUNDLE and wf.parser.get_parsed_content("max_epochs") == 15
    with pytest.raises(ValueError, match=r"lacks properties .*trainer.* for train"):
        bu.bundle_workflow(BUNDLE, ["inference.json"], "train", **over)
