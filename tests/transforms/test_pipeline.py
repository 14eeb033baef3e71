"""A composed pipeline from files, as a user would write it with MONAI's Compose."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Resized

from dce_monai.data.manifest import load_manifest
from dce_monai.transforms import (
    AXIAL_ONLY_ROTATIONS,
    BoundingBoxCropd,
    EnhancementMapsd,
    EnhancementThresholdMaskd,
    FuzzyCMeansMaskd,
    ImageNetNormalized,
    LesionPatchesd,
    N4BiasFieldCorrectiond,
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


# ----------------------------------------------------------------------------- trace kept across intensity steps


def _phases(kind: str = "meta") -> dict:
    """Three tiny phases (1, 12, 10, 6) with an enhancing block, on an LPS-like affine."""
    rng = np.random.default_rng(0)
    pre = 100.0 + 10.0 * rng.random((1, 12, 10, 6)).astype(np.float32)
    post1, post2 = pre.copy(), pre.copy()
    post1[0, 3:8, 2:6, 1:5] *= 2.2
    post2[0, 3:8, 2:6, 1:5] *= 1.8
    aff = torch.tensor([[-1.5, 0, 0, 20.0], [0, -1.5, 0, 10.0], [0, 0, 2.0, -4.0], [0, 0, 0, 1]], dtype=torch.float64)
    body = np.ones((1, 12, 10, 6), np.float32)
    conv = {"numpy": np.asarray, "torch": torch.as_tensor, "meta": lambda a: MetaTensor(torch.as_tensor(a), affine=aff)}[kind]
    return {"T1pre": conv(pre), "T1post1": conv(post1), "T1post2": conv(post2), "breast_mask": conv(body), "patient_id": "P0"}


def _intensity_steps() -> list:
    return [
        N4BiasFieldCorrectiond(["T1pre", "T1post1", "T1post2"], shrink=2, iterations=(3,), spacing=(1.5, 1.5, 2.0)),
        Subtractd(),
        EnhancementMapsd(noise_floor=1.0),
        EnhancementThresholdMaskd(breast_mask_key="breast_mask"),
        FuzzyCMeansMaskd(candidate_key="breast_mask", output_key="fcm_mask", n_clusters=2, membership_threshold=None),
        ScaleIntensityDCEd(["T1pre", "T1post1", "T1post2", "sub"], reference_keys=["T1pre"]),
        SelectSequencesd(("T1pre", "T1post1", "sub")),
        ImageNetNormalized(),
    ]


OUT_KEYS = ("T1pre", "sub", "washin", "curve_type", "re_T1post2", "mask", "fcm_mask", "image")


def test_intensity_steps_keep_the_trace_and_meta() -> None:
    """Each intensity/kinetic step keeps the affine, meta and ``applied_operations`` of its input,
    so a spatial transform before it can still be inverted after it."""
    from monai.transforms import Compose, Flipd

    flip = Flipd(["T1pre", "T1post1", "T1post2", "breast_mask", "image"], spatial_axis=0, allow_missing_keys=True)
    d = Compose([flip, *_intensity_steps()])(_phases("meta"))
    ref = _phases("meta")["T1pre"]
    for k in OUT_KEYS:
        assert isinstance(d[k], MetaTensor), k
        assert [e["class"] for e in d[k].applied_operations] == ["Flip"], k
        torch.testing.assert_close(d[k].affine, Flipd("T1pre", 0)({"T1pre": ref})["T1pre"].affine)
    assert d["image"].meta["channel_names"] == ["T1pre", "T1post1", "sub"] and d["sub"].meta["channel_names"] == ["sub"]
    assert "channel_names" not in d["T1post1"].meta  # outputs' meta are copies: inputs not renamed
    back = flip.inverse({"image": d["image"]})["image"]  # the Flip entry is found and undone
    assert not back.applied_operations
    torch.testing.assert_close(back.affine, ref.affine)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_intensity_steps_return_metatensors_for_plain_input(kind: str) -> None:
    """As MONAI's transforms: ndarray/Tensor in, MetaTensor out (identity affine)."""
    from monai.transforms import Compose

    d = Compose(_intensity_steps())(_phases(kind))
    for k in OUT_KEYS:
        assert isinstance(d[k], MetaTensor) and not d[k].applied_operations, k


def test_intensity_steps_honour_set_track_meta_false() -> None:
    from monai.data import set_track_meta
    from monai.transforms import Compose

    set_track_meta(False)
    try:
        d = Compose(_intensity_steps())(_phases("meta"))
    finally:
        set_track_meta(True)
    for k in OUT_KEYS:
        assert type(d[k]) is torch.Tensor, k


def test_orientation_scale_crop_inverted_end_to_end() -> None:
    """``Orientationd -> ScaleIntensityDCEd -> BoundingBoxCropd -> Invertd``: a prediction on the
    crop (here the scaled crop itself) maps back onto the file's grid."""
    from monai.transforms import Compose, Invertd, Orientationd

    d = _phases("meta")
    d["mask"] = MetaTensor((d["T1post1"].as_tensor() > 1.5 * d["T1pre"].as_tensor()).float(), affine=d["T1pre"].affine)
    keys = ["T1pre", "T1post1", "mask"]
    pre = Compose(
        [
            Orientationd(keys, axcodes="RAS"),
            ScaleIntensityDCEd(["T1pre", "T1post1"], reference_keys=["T1pre"], scale_key="scale"),
            BoundingBoxCropd(keys, "mask", (14, 12, 12), margin=1, mode=["trilinear", "trilinear", "nearest"]),
        ]
    )
    out = pre(dict(d))
    assert [e["class"] for e in out["T1post1"].applied_operations] == ["Orientation", "BoundingBoxCropd"]
    out["pred"] = out["T1post1"] * out["scale"]  # back in scanner units
    back = Invertd(["pred", "mask"], pre, orig_keys="T1post1", nearest_interp=[False, True])(out)
    assert back["pred"].shape == d["T1post1"].shape
    torch.testing.assert_close(back["pred"].affine, d["T1post1"].affine)
    torch.testing.assert_close(back["mask"].as_tensor(), d["mask"].as_tensor())
    assert float(back["pred"][:, :2].abs().max()) == 0.0 and float(back["pred"][:, 9:].abs().max()) == 0.0  # outside the box
    core = (slice(None), slice(4, 7), slice(3, 5), slice(2, 4))  # the enhancing block less its rim
    rel = (back["pred"][core] - d["T1post1"][core]).abs() / d["T1post1"][core]
    assert float(rel.max()) < 0.05  # 2x trilinear up-sampling and back: the input inside the box


def test_docs_pipeline_inverted_end_to_end(tiny_cohort):
    """The pipeline of docs/transforms.md ("Composing with MONAI's own transforms") on phantom files."""
    from monai.transforms import ConcatItemsd, Invertd, Orientationd

    keys = ["T1pre", "T1post1", "breast_mask"]
    preprocessing = Compose(
        [
            LoadImaged(keys, image_only=True),
            EnsureChannelFirstd(keys),
            Orientationd(keys, axcodes="RAS"),
            Subtractd(),
            EnhancementThresholdMaskd(breast_mask_key="breast_mask"),
            ScaleIntensityDCEd(["T1pre", "T1post1", "sub"], reference_keys=["T1pre"]),
            ConcatItemsd(["T1post1", "sub"], "image"),
            BoundingBoxCropd(["image", "mask"], "mask", (32, 32, 16), margin=10, margin_unit="mm", mode=["trilinear", "nearest"]),
            RandAugment34d(["image", "mask"], prob=0.5, mode=["bilinear", "nearest"], variants=AXIAL_ONLY_ROTATIONS + tuple(range(24, 34))),
        ]
    )
    record = load_manifest(tiny_cohort).to_datalist(level="patient")[0]
    steps = preprocessing.transforms
    file_grid = Compose([steps[0], steps[1], steps[3], steps[4]])(dict(record))  # the mask computed on the file's grid
    raw = LoadImaged("T1post1", image_only=True)(dict(record))["T1post1"]
    truth = file_grid["mask"].as_tensor().float()

    def mapped_back(prob: float, seed: int) -> tuple[dict, int]:
        steps[-1].prob = prob
        steps[-1].set_random_state(seed)
        d = preprocessing(dict(record))
        assert d["image"].shape[1:] == (32, 32, 16)
        d["cam"] = torch.sigmoid(d["image"][:1])
        return Invertd(["cam", "mask"], preprocessing, orig_keys="image", nearest_interp=[False, True])(d), d["augmentation_variant"]

    plain, _ = mapped_back(0.0, 0)  # no augmentation: crop + resize there and back
    assert plain["mask"].shape == truth.shape and float(truth.sum()) > 100
    dice = float(2 * (plain["mask"].as_tensor() * truth).sum() / (plain["mask"].as_tensor().sum() + truth.sum()))
    assert dice > 0.7, dice  # nearest down-sampling of the whole enhancing region to 32 x 32 x 16 and back
    variants = set()
    for seed in (0, 1, 7, 11):  # draws: none, a corner shift, a cube rotation, +10 deg
        back, variant = mapped_back(0.5, seed)
        variants.add(variant)
        assert back["cam"].shape[1:] == tuple(raw.shape)
        torch.testing.assert_close(back["cam"].affine, raw.affine.to(torch.float64))
        got, ref = back["mask"].as_tensor(), plain["mask"].as_tensor()
        if variant < 24:  # cube rotations (and no variant): undone exactly
            assert torch.equal(got, ref) and torch.equal(back["cam"].as_tensor(), plain["cam"].as_tensor())
        elif variant < 32:  # corner shifts: undone, less what left the field of view
            assert bool((got <= ref).all()) and float(got.sum()) > 0
        else:  # +-10 deg: nearest interpolation there and back
            assert float(2 * (got * ref).sum() / (got.sum() + ref.sum())) > 0.8
    assert variants == {-1, 28, 6, 32}


def test_array_forms_keep_the_trace() -> None:
    from monai.transforms import Flip

    from dce_monai.transforms import (
        EnhancementMaps,
        EnhancementThresholdMask,
        FuzzyCMeansMask,
        ImageNetNormalize,
        ScaleIntensityDCE,
        SelectSequences,
        Subtract,
    )

    p = {k: Flip(0)(v) for k, v in _phases("meta").items() if k != "patient_id"}
    stack = MetaTensor(torch.cat([p["T1pre"], p["T1post1"], p["T1post2"]]), affine=p["T1pre"].affine)
    stack.applied_operations = list(p["T1pre"].applied_operations)
    stack.meta["channel_names"] = ["T1pre", "T1post1", "T1post2"]
    outs = {
        "Subtract": Subtract()(p["T1post1"], p["T1pre"]),
        "EnhancementMaps": EnhancementMaps(noise_floor=1.0)(stack)["washin"],
        "EnhancementThresholdMask": EnhancementThresholdMask()(p["T1pre"], p["T1post1"]),
        "FuzzyCMeansMask": FuzzyCMeansMask(n_clusters=2)(p["T1post1"]),
        "ScaleIntensityDCE": ScaleIntensityDCE()(stack),
        "ImageNetNormalize": ImageNetNormalize()(stack),
        "SelectSequences": SelectSequences(("T1post2", "T1pre"))(stack),
    }
    for name, out in outs.items():
        assert isinstance(out, MetaTensor) and [e["class"] for e in out.applied_operations] == ["Flip"], name
        torch.testing.assert_close(out.affine, p["T1pre"].affine)
    assert outs["SelectSequences"].meta["channel_names"] == ["T1post2", "T1pre"]
    assert stack.meta["channel_names"] == ["T1pre", "T1post1", "T1post2"]  # the input is not renamed


def test_batch_decollate_invertd() -> None:
    """MONAI's inference pattern: a DataLoader batch of our outputs, ``decollate_batch``, then
    ``Invertd`` per item maps predictions back to each input's grid."""
    from monai.data import DataLoader, Dataset, decollate_batch
    from monai.transforms import Flipd, Invertd

    rng = np.random.default_rng(0)
    data = []
    for _ in range(4):
        img = rng.random((1, 10, 10, 10)).astype(np.float32)
        m = np.zeros_like(img)
        m[0, 2:8, 3:7, 2:9] = 1
        data.append({"image": img, "mask": m})
    pre = Compose(
        [
            Flipd(["image", "mask"], 0),
            BoundingBoxCropd(["image", "mask"], "mask", (8, 8, 8), mode=["trilinear", "nearest"]),
            RandAugment34d(["image", "mask"], prob=0.5, mode=["bilinear", "nearest"]),
        ]
    )
    batch = next(iter(DataLoader(Dataset(data, pre), batch_size=4, generator=torch.Generator().manual_seed(3))))
    assert -1 in batch["augmentation_variant"].tolist() and int((batch["augmentation_variant"] >= 0).sum()) >= 1
    batch["pred"] = batch["mask"] * 2.0
    for item, src in zip(decollate_batch(batch), data):
        back = Invertd(["pred", "mask"], pre, orig_keys="image", nearest_interp=[True, True])(item)
        assert back["pred"].shape == (1, 10, 10, 10)
        torch.testing.assert_close(back["mask"].as_tensor(), torch.as_tensor(src["mask"]))
        torch.testing.assert_close(back["pred"].as_tensor(), 2.0 * torch.as_tensor(src["mask"]))
