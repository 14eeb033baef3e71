"""A composed pipeline from files, as a user would write it with MONAI's Compose."""

from __future__ import annotations

from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Resized

from dce_monai.data.manifest import load_manifest
from dce_monai.transforms import (
    EnhancementThresholdMaskd,
    FuzzyCMeansMaskd,
    ImageNetNormalized,
    LesionPatchesd,
    RandAugment34d,
    ScaleIntensityDCEd,
    SelectSequencesd,
    Subtractd,
)

PHASES = ["T1pre", "T1post1", "T1post2", "T1post3", "T1post4"]


def test_seed1_patches_from_files(tiny_cohort):
    dl = load_manifest(tiny_cohort).to_datalist(level="lesion")
    pipe = Compose(
        [
            LoadImaged(PHASES + ["label_map"], image_only=True),
            EnsureChannelFirstd(PHASES + ["label_map"]),
            Subtractd(),
            ScaleIntensityDCEd(PHASES + ["sub"], reference_keys=["T1pre"]),
            SelectSequencesd(("T1pre", "T1post3", "sub")),
            LesionPatchesd(size_mm=(35.0, 35.0)),  # seed 1's 50 voxels at ~0.7 mm
            Resized("image", (64, 64)),
            ImageNetNormalized(),
        ]
    )
    per_lesion = [pipe(d) for d in dl]
    assert all(isinstance(p, list) for p in per_lesion) and sum(map(len, per_lesion)) >= len(dl)
    i = next(i for i, p in enumerate(per_lesion) if p)
    p = per_lesion[i][0]
    assert p["image"].shape == (3, 64, 64) and p["image"].meta["channel_names"] == ["T1pre", "T1post3", "sub"]
    assert p["lesion_id"] == dl[i]["lesion_id"] and p["label"] == dl[i]["label"]


def test_seed2_masks_and_augmentation_from_files(tiny_cohort):
    d = load_manifest(tiny_cohort).to_datalist(level="patient")[0]
    pipe = Compose(
        [
            LoadImaged(["T1pre", "T1post1", "breast_mask"], image_only=True),
            EnsureChannelFirstd(["T1pre", "T1post1", "breast_mask"]),
            Subtractd(),
            EnhancementThresholdMaskd(breast_mask_key="breast_mask"),
            FuzzyCMeansMaskd(candidate_key="breast_mask", output_key="fcm_mask", membership_threshold=None),
            RandAugment34d(["sub", "mask"], mode=("bilinear", "nearest"), variants=list(range(24, 34))).set_random_state(0),
        ]
    )
    out = pipe(d)
    assert out["mask"].shape == out["sub"].shape and out["fcm_mask"].sum() > 0
    assert 24 <= out["augmentation_variant"] < 34
