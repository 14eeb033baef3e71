"""Tests for the seed 2 bundle ``bundles/breast_dce_maskguided_vgg3d``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "breast_dce_maskguided_vgg3d"
CONFIGS = BUNDLE / "configs"
META = str(CONFIGS / "metadata.json")
# validation on the held-out fold only to exercise the validation handlers (TensorBoard, CAMs); the
# bundle's default validates nothing during training and keeps the last epoch
TINY = {"max_epochs": 1, "spatial_size": [32, 32, 16], "batch_size": 2, "vgg_channels": [4, 8], "num_workers": 0, "val_split": "test"}


def _workflow(files: list[str], root: Path, cohort: dict, **overrides: object) -> ConfigWorkflow:
    cfg = [str(CONFIGS / f) for f in files]
    kw = {"manifest": str(cohort["manifest"]), "folds": str(cohort["folds"]), "fold": 0, **TINY, **overrides}
    return ConfigWorkflow(
        config_file=cfg if len(cfg) > 1 else cfg[0], meta_file=META, logging_file=str(CONFIGS / "logging.conf"),
        workflow_type="train" if files == ["train.json"] else "infer", bundle_root=str(root), **kw,
    )


def _run(wf: ConfigWorkflow) -> None:
    wf.initialize()
    assert wf.check_properties() in (None, [])
    wf.run()
    wf.finalize()


def test_bundle_files_complete() -> None:
    for f in ("metadata.json", "train.json", "evaluate.json", "inference.json", "multi_gpu_train.json", "logging.conf"):
        assert (CONFIGS / f).is_file(), f
    assert (BUNDLE / "docs" / "README.md").is_file() and (BUNDLE / "models" / ".gitkeep").is_file()
    assert "Apache License" in (BUNDLE / "LICENSE").read_text()
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["channel_def"] == {"0": "T1post1"}
    assert {"version", "changelog", "monai_version", "pytorch_version", "numpy_version", "references", "task"} <= set(meta)


@pytest.fixture(scope="module")
def trained(bundle_cohort: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mg")
    _run(_workflow(["train.json"], root, bundle_cohort, variant="mask_guided"))
    return root


@pytest.mark.parametrize("variant", ["no_mask", "mask_only"])
def test_train_other_variants(variant: str, bundle_cohort: dict, tmp_path: Path) -> None:
    wf = _workflow(["train.json"], tmp_path, bundle_cohort, variant=variant)
    _run(wf)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert type(trainer).__name__ == "SupervisedTrainer" and trainer.state.epoch == 1
    assert (tmp_path / "models" / "model.pt").is_file()


def test_mask_guided_trains_resumes_and_logs(trained: Path, bundle_cohort: dict) -> None:
    assert (trained / "models" / "model.pt").is_file()
    assert list((trained / "eval" / "train_state").glob("checkpoint_epoch=1.pt"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for ev in (trained / "eval").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train_loss", "val_auc", "lr"} <= tags, tags
    assert {"val_auc_sensitivity", "val_auc_specificity", "val_attention_in_mask"} <= tags, tags
    assert {"train_ce", "train_cam_dice"} <= tags, tags  # the mask-guided loss's two parts

    def _tags(sub: str, kind: str) -> set[str]:
        found: set[str] = set()
        for ev in (trained / "eval" / sub).glob("events.out.tfevents.*"):
            acc = EventAccumulator(str(ev), size_guidance={"images": 0, "tensors": 0})
            acc.Reload()
            found |= set(acc.Tags()[kind])
        return found

    assert "val_cam/0" in _tags("cam", "images")  # CAM overlays of the first validation batch
    assert any("val_lesion_pr_curve" in t for t in _tags("pr_curve", "tensors"))
    wf = _workflow(["train.json"], trained, bundle_cohort, variant="mask_guided", max_epochs=2)
    _run(wf)
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert type(trainer).__name__ == "MaskGuidedTrainer"
    assert trainer.state.epoch == 2
    assert list((trained / "eval" / "train_state").glob("checkpoint_epoch=2.pt"))


def test_evaluate_and_inference(trained: Path, bundle_cohort: dict) -> None:
    from dce_monai.metrics.results import read_predictions

    _run(_workflow(["train.json", "inference.json", "evaluate.json"], trained, bundle_cohort, variant="mask_guided"))
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    assert {k: metrics[k] for k in ("experiment", "model", "fold", "split", "channels")} == {
        "experiment": "maskguided_vgg3d", "model": "mask_guided", "fold": 0, "split": "test", "channels": ["T1post1"]}
    assert 0.0 <= metrics["metrics"]["attention_in_mask"] <= 1.0  # voxel-wise: not recomputable from the CSV
    # metrics.json must be what its own predictions.csv gives: one row per held-out lesion (fold 0's
    # patients, labels from the manifest), per-lesion AUC and threshold-0.5 figures recomputed here
    from dce_monai.data.folds import read_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.metrics.stats import binary_metrics

    held = read_predictions(trained / "eval" / "predictions.csv")
    test_patients = set(read_folds(bundle_cohort["folds"])[0])
    truth = {str(d["lesion_id"]): int(d["label"]) for d in load_manifest(bundle_cohort["manifest"]).to_datalist(level="lesion")
             if d["patient_id"] in test_patients}
    assert sorted(r["lesion_id"] for r in held) == sorted(truth)
    assert all(int(r["label"]) == truth[r["lesion_id"]] for r in held)
    ref = binary_metrics([int(r["label"]) for r in held], [float(r["prob"]) for r in held], threshold=0.5)
    got = metrics["metrics"]
    assert got["auc"] == pytest.approx(ref["auc"], abs=1e-6)
    assert got["auc_sensitivity"] == pytest.approx(ref["sensitivity"], abs=1e-6)
    assert got["auc_specificity"] == pytest.approx(ref["specificity"], abs=1e-6)
    assert got["auc_accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)
    assert got["auc_n_lesions"] == len(held) == len(truth)
    out = trained / "inf"
    _run(_workflow(["train.json", "inference.json"], trained, bundle_cohort, variant="mask_guided", folds=None,
                   output_dir=str(out)))
    rows = read_predictions(out / "predictions.csv")
    n_lesions = len(__import__("dce_monai.data.manifest", fromlist=["x"]).load_manifest(bundle_cohort["manifest"]).to_datalist(level="lesion"))
    assert len(rows) == n_lesions
    assert all(r["experiment"] == "maskguided_vgg3d" and r["model"] == "mask_guided" and 0 <= float(r["prob"]) <= 1 for r in rows)
    assert {(r["split"], r["fold"]) for r in rows} == {("inference", -1)}  # whole cohort: not held-out
    assert {(r["split"], r["fold"]) for r in held} == {("test", 0)}


def test_unknown_variant_rejected(bundle_cohort: dict, tmp_path: Path) -> None:
    wf = _workflow(["train.json"], tmp_path, bundle_cohort, variant="mask_everything")
    wf.initialize()
    with pytest.raises(RuntimeError, match="Failed to evaluate") as err:
        wf.run()
    assert "mask_everything" in str(err.value.__cause__)


def test_ckpt_export_matches_eager(trained: Path, tmp_path: Path) -> None:
    from monai.bundle import ckpt_export

    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def", filepath=str(ts), ckpt_file=str(trained / "models" / "model.pt"),
        meta_file=META, config_file=str(CONFIGS / "train.json"), key_in_ckpt="model", use_trace=True,
        input_shape=[1, 1, 32, 16, 16], bundle_root=str(trained), vgg_channels=[4, 8],
    )
    ts_net = torch.jit.load(str(ts))
    from dce_monai.networks.nets.vgg3d_cam import VGG3DCAM

    net = VGG3DCAM(in_channels=1, out_channels=2, channels=(4, 8))
    net.load_state_dict(torch.load(trained / "models" / "model.pt", weights_only=True))
    net.eval()
    x = torch.rand(2, 1, 32, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(ts_net(x), net(x), rtol=1e-4, atol=1e-5)


def test_inference_tta(trained: Path, bundle_cohort: dict) -> None:
    from dce_monai.metrics.results import read_predictions

    def probs(name: str, **kw: object) -> dict[str, float]:
        out = trained / name
        _run(_workflow(["train.json", "inference.json"], trained, bundle_cohort, variant="mask_guided", folds=None,
                       output_dir=str(out), **kw))
        return {r["lesion_id"]: float(r["prob"]) for r in read_predictions(out / "predictions.csv")}

    plain = probs("tta_off", tta=False)
    identity = probs("tta_identity", tta=True, tta_variants=[0])
    mixed = probs("tta", tta=True, tta_variants=[0, 5, 30])
    assert set(plain) == set(identity) == set(mixed) and len(plain) > 0
    # the identity variant alone is plain inference: same lesion probabilities
    assert identity == pytest.approx(plain, abs=1e-5)
    # other variants change the inputs, so the averaged probabilities move (still probabilities)
    assert max(abs(mixed[k] - plain[k]) for k in plain) > 1e-6 and all(0.0 < v < 1.0 for v in mixed.values())


@pytest.mark.parametrize("fov", ["lesion", "volume"])
def test_field_of_view_windows(fov: str, bundle_cohort: dict, tmp_path: Path) -> None:
    """``lesion``: a spatial_size window of the image around the lesion (image content, not the
    bounding box zero-padded); ``volume``: the whole volume resized. Both keep the lesion's mask."""
    wf = _workflow(["train.json"], tmp_path, bundle_cohort, variant="no_mask", field_of_view=fov)
    wf.initialize()
    ds = wf.parser.get_parsed_content("validate#dataset")
    item = ds[0]
    image, mask = torch.as_tensor(item["image"]), torch.as_tensor(item["mask"])
    assert tuple(image.shape[1:]) == tuple(TINY["spatial_size"]) == tuple(mask.shape[1:])
    assert mask.sum() > 0
    # image content well outside the lesion's mask: the window is not the bounding box padded with zeros
    assert float((image[mask == 0] != 0).float().mean()) > 0.5
    if fov == "volume":
        raw = wf.parser.get_parsed_content("masks")(dict(ds.data[0]))
        assert mask.float().mean() > 0 and raw["image"].shape[1:] != image.shape[1:]


def test_unknown_field_of_view_rejected(bundle_cohort: dict, tmp_path: Path) -> None:
    wf = _workflow(["train.json"], tmp_path, bundle_cohort, variant="no_mask", field_of_view="breast")
    wf.initialize()
    with pytest.raises(RuntimeError, match="Failed to evaluate") as err:
        wf.parser.get_parsed_content("preprocessing")
    assert "breast" in repr(err.value.__cause__) or "breast" in str(err.value)


def test_cached_epochs_do_not_rerun_mask_making(bundle_cohort: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Complexity guard: subtraction, threshold and FCM masking run once per lesion when the
    datasets are built (nested Compose configs are flattened so CacheDataset sees them as
    deterministic); each epoch runs only the 34-fold augmentation."""
    from collections import Counter

    from dce_monai import transforms as T

    calls: Counter[str] = Counter()
    for cls in (T.Subtractd, T.FuzzyCMeansMaskd, T.RandAugment34d):
        original = cls.__call__

        def counted(self, *a, _orig=original, _name=cls.__name__, **k):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(cls, "__call__", counted)
    wf = _workflow(["train.json"], tmp_path, bundle_cohort, variant="mask_guided")
    wf.initialize()
    train = wf.parser.get_parsed_content("train#dataset")
    n = len(wf.parser.get_parsed_content("train#datalist"))
    assert calls["FuzzyCMeansMaskd"] == calls["Subtractd"] == n and calls["RandAugment34d"] == 0
    for _ in range(3):
        for i in range(len(train)):
            train[i]
    assert calls["FuzzyCMeansMaskd"] == calls["Subtractd"] == n
    assert calls["RandAugment34d"] == 3 * n


def test_cache_dir_preprocesses_each_lesion_once_across_variants_folds_and_passes(
    bundle_cohort: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``cache_dir`` the mask making runs once per lesion and crop: a second fold, the
    inference config and ``mask_guided`` (the crop of ``no_mask``) load it; ``mask_only`` (another
    crop) and a changed threshold compute it again."""
    from collections import Counter

    from dce_monai import transforms as T

    calls: Counter[str] = Counter()
    original = T.FuzzyCMeansMaskd.__call__

    def counted(self, *a, **k):  # type: ignore[no-untyped-def]
        calls["fcm"] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(T.FuzzyCMeansMaskd, "__call__", counted)
    cache = tmp_path / "cache"

    def build(files: list[str] = ["train.json"], key: str = "validate#dataset", **kw: object) -> int:  # noqa: B006
        before = calls["fcm"]
        wf = _workflow(files, tmp_path / "root", bundle_cohort, cache_dir=str(cache), **kw)
        wf.initialize()
        n = len(wf.parser.get_parsed_content(key))
        assert n > 0
        return calls["fcm"] - before

    n_val0 = build(variant="no_mask")
    assert n_val0 > 0
    assert build(variant="no_mask") == 0  # a rerun
    assert build(variant="mask_guided") == 0  # same preprocessing as no_mask
    n_train0 = build(variant="no_mask", key="train#cache")  # fold 0's training lesions = fold 1's held-out ones
    assert build(variant="no_mask", fold=1) == 0
    assert build(["train.json", "inference.json"], variant="mask_guided", split="all") == 0  # every lesion seen by now
    assert build(variant="mask_only") == n_val0
    assert build(variant="no_mask", enhancement_threshold=0.6) == n_val0
    assert n_train0 > 0


def test_multi_gpu_config_with_two_gloo_processes(bundle_cohort: dict, tmp_path: Path, run_multi_gpu_train) -> None:  # type: ignore[no-untyped-def]
    """``torchrun`` with 2 gloo processes runs the mask-guided variant; rank 0 alone writes."""
    run_multi_gpu_train(CONFIGS, {"meta_file": META, "bundle_root": tmp_path, "variant": "mask_guided",
                                  "manifest": bundle_cohort["manifest"], "folds": bundle_cohort["folds"], **TINY})
    assert (tmp_path / "models" / "model.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "eval" / "train_state").glob("*.pt")) == ["checkpoint_epoch=1.pt"]
    assert not any(k.startswith("module.") for k in torch.load(tmp_path / "models" / "model.pt", weights_only=True))
