"""The seed 1 bundle ``breast_dce_transfer_resnet34`` run through MONAI's ConfigWorkflow.

The library pieces its configs instantiate are tested next to their modules: ``tests/data/test_datalist.py``,
``tests/data/test_patch_cache.py``, ``tests/handlers/``, ``tests/utils/test_distributed.py``,
``tests/transforms/test_registration.py`` and ``tests/workflows/test_bundle_utils.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from dce_monai.metrics.results import read_predictions

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "breast_dce_transfer_resnet34"
CONFIGS = BUNDLE / "configs"
# the trained fixture validates on the held-out fold to exercise the validation handlers; the
# bundle's default validates nothing (test_default_training_never_touches_the_held_out_fold)
TINY = {"image_size": 32, "batch_size": 4, "val_split": "test"}


def _common(cohort: dict[str, Path], out: Path, **over: object) -> dict[str, object]:
    return {"bundle_root": str(BUNDLE), "manifest": str(cohort["manifest"]), "folds": str(cohort["folds"]), "fold": 0,
            "output_dir": str(out / "out"), "ckpt_dir": str(out / "models"), **TINY, **over}


def _workflow(configs: list[str], wtype: str, **over: object) -> ConfigWorkflow:
    wf = ConfigWorkflow(config_file=[str(CONFIGS / c) for c in configs], workflow_type=wtype,
                        logging_file=str(CONFIGS / "logging.conf"), **over)
    wf.initialize()
    assert wf.check_properties() == []
    return wf


@pytest.fixture(scope="module")
def trained(bundle_cohort, tmp_path_factory):
    """One epoch of training on fold 0, then a resumed run up to epoch 2."""
    out = tmp_path_factory.mktemp("transfer_train")
    wf = _workflow(["train.json"], "train", max_epochs=1, **_common(bundle_cohort, out))
    wf.run()
    first = {"epoch": wf.trainer.state.epoch, "iteration": wf.trainer.state.iteration,
             "metrics": dict(wf.evaluator.state.metrics)}
    wf.finalize()
    wf2 = _workflow(["train.json"], "train", max_epochs=2, **_common(bundle_cohort, out))
    wf2.run()
    resume = wf2.parser.get_parsed_content("train#resume_handler")
    second = {"epoch": wf2.trainer.state.epoch, "iteration": wf2.trainer.state.iteration, "loaded_from": resume.loaded_from}
    wf2.finalize()
    return {"out": out, "first": first, "second": second}


def test_train_writes_last_model_best_model_and_state(trained):
    out = trained["out"]
    assert trained["first"]["epoch"] == 1 and 0.0 <= trained["first"]["metrics"]["val_auc"] <= 1.0
    assert {"val_auc_sensitivity", "val_auc_specificity"} <= set(trained["first"]["metrics"])
    last = torch.load(out / "models" / "model.pt", weights_only=True)
    state = torch.load(out / "out" / "train_state" / "checkpoint_epoch=2.pt", weights_only=False)["network"]
    assert last.keys() == state.keys() and all(torch.equal(last[k], state[k]) for k in last)  # the last epoch's model
    assert (out / "models" / "model_best.pt").is_file()
    assert sorted(p.name for p in (out / "out" / "train_state").glob("*.pt")) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]


def test_default_training_never_touches_the_held_out_fold(bundle_cohort, tmp_path):
    """Without an inner validation split nothing is validated during training and no model is chosen;
    with one, validation patients come from the training folds only."""
    held = set(json.loads(Path(bundle_cohort["folds"]).read_text())["folds"][0])
    over = {k: v for k, v in _common(bundle_cohort, tmp_path).items() if k != "val_split"}
    wf = _workflow(["train.json"], "train", **over)
    handlers = wf.parser.get_parsed_content("train#handlers")
    assert not any(type(h).__name__ == "ValidationHandler" for h in handlers)
    train_ids = {d["patient_id"] for d in wf.parser.get_parsed_content("train#datalist")}
    assert train_ids and train_ids.isdisjoint(held) and wf.parser.get_parsed_content("validate#datalist") == []
    # an evaluator that never runs is not checkpointed (its empty state could not be restored)
    assert set(wf.parser.get_parsed_content("train#state")) == {"network", "optimizer", "lr_scheduler", "trainer", "random_states"}
    wf2 = _workflow(["train.json"], "train", **{**over, "val_fraction": 0.5})
    assert any(type(h).__name__ == "ValidationHandler" for h in wf2.parser.get_parsed_content("train#handlers"))
    val_ids = {d["patient_id"] for d in wf2.parser.get_parsed_content("validate#datalist")}
    train2 = {d["patient_id"] for d in wf2.parser.get_parsed_content("train#datalist")}
    assert val_ids and val_ids.isdisjoint(held) and val_ids.isdisjoint(train2) and val_ids | train2 == train_ids


def test_resume_continues_epoch_count(trained):
    first, second = trained["first"], trained["second"]
    assert second["loaded_from"] is not None and second["loaded_from"].name == "checkpoint_epoch=1.pt"
    assert second["epoch"] == 2 and second["iteration"] == 2 * first["iteration"]


def test_tensorboard_scalars_and_images(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for ev in (trained["out"] / "out").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train_loss", "lr", "val_auc", "val_auc_sensitivity", "val_auc_specificity"} <= tags
    images: list[str] = []
    for ev in (trained["out"] / "out" / "images").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        images += acc.Tags()["images"]
    assert images
    pr: set[str] = set()
    for ev in (trained["out"] / "out" / "pr_curve").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev), size_guidance={"tensors": 0})
        acc.Reload()
        pr |= set(acc.Tags()["tensors"])
    assert any("val_lesion_pr_curve" in t for t in pr), pr


def test_evaluate_and_inference_write_tables(trained, bundle_cohort):
    out = trained["out"]
    ev = _workflow(["train.json", "evaluate.json"], "infer", **_common(bundle_cohort, out))
    ev.run()
    ev.finalize()
    metrics = json.loads((out / "out" / "metrics.json").read_text())
    rows = read_predictions(out / "out" / "predictions.csv")
    from dce_monai.metrics.stats import binary_metrics

    assert metrics["split"] == "test"
    assert metrics["metrics"]["auc"] == pytest.approx(binary_metrics([r["label"] for r in rows], [r["prob"] for r in rows])["auc"], abs=1e-9)
    fold0 = set(json.loads(Path(bundle_cohort["folds"]).read_text())["folds"][0])
    assert rows and {r["patient_id"] for r in rows} <= fold0
    assert {(r["split"], r["fold"]) for r in rows} == {("test", 0)}  # held-out fold 0
    assert all(r["experiment"] == "transfer_resnet34" and 0.0 <= float(r["prob"]) <= 1.0 for r in rows)

    inf = _workflow(["inference.json"], "infer", predictions_file=str(out / "all.csv"),
                    **_common(bundle_cohort, out, folds=None))
    inf.run()
    inf.finalize()
    all_rows = read_predictions(out / "all.csv")
    assert len({r["patient_id"] for r in all_rows}) > len(fold0) and len({r["lesion_id"] for r in all_rows}) == len(all_rows)
    # the model trained on most of these patients: the rows say so (never counted as held-out)
    assert {(r["split"], r["fold"]) for r in all_rows} == {("inference", -1)}


def test_ckpt_export_torchscript_matches_eager(trained, tmp_path):
    ts = tmp_path / "model.ts"
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(ts),
           "--ckpt_file", str(trained["out"] / "models" / "model.pt"), "--meta_file", str(CONFIGS / "metadata.json"),
           "--config_file", str(CONFIGS / "inference.json"), "--bundle_root", str(BUNDLE)]  # scripted, not traced
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    from dce_monai.networks.nets.resnet_transfer import ResNet34Transfer

    eager = ResNet34Transfer(in_channels=3, out_channels=2, input_range=(0.0, 2.0))
    eager.load_state_dict(torch.load(trained["out"] / "models" / "model.pt", weights_only=True))
    eager.eval()
    scripted = torch.jit.load(str(ts))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), rtol=1e-4, atol=1e-5)


def test_same_seed_same_metrics(bundle_cohort, tmp_path):
    runs = []
    for name in ("a", "b"):
        wf = _workflow(["train.json"], "train", max_epochs=1, resume=False,
                       **_common(bundle_cohort, tmp_path / name))
        wf.run()
        runs.append((dict(wf.evaluator.state.metrics), float(wf.trainer.state.output[0]["loss"])))
        wf.finalize()
    assert runs[0] == runs[1]


def test_multi_gpu_config_with_two_gloo_processes(bundle_cohort, tmp_path, run_multi_gpu_train):
    run_multi_gpu_train(CONFIGS, _common(bundle_cohort, tmp_path, max_epochs=1), timeout=180)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "out" / "train_state").glob("*.pt")) == ["checkpoint_epoch=1.pt"]
    state = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)


def test_metadata_matches_default_channels():
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    train = json.loads((CONFIGS / "train.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    assert [image["channel_def"][str(i)] for i in range(image["num_channels"])] == train["channels"]
    for name in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
                 "task", "description", "authors", "copyright", "references"):
        assert meta[name], name
    assert "Apache License" in (BUNDLE / "LICENSE").read_text()[:200]


def test_cached_epochs_do_not_rerun_deterministic_transforms(bundle_cohort, tmp_path, monkeypatch):
    """Complexity guard: loading, subtraction, scaling and patch extraction run once per lesion
    when the dataset is built, never again per epoch (augmentation and resizing are the
    trainer's batched prepare_batch, not per-patch transforms)."""
    from collections import Counter

    from monai.bundle import ConfigParser
    from monai.transforms import LoadImaged

    from dce_monai import transforms as T

    calls: Counter[str] = Counter()
    for cls in (LoadImaged, T.N4BiasFieldCorrectiond, T.Subtractd, T.ScaleIntensityDCEd, T.LesionPatchesd):
        original = cls.__call__

        def counted(self, *a, _orig=original, _name=cls.__name__, **k):
            calls[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(cls, "__call__", counted)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update(_common(bundle_cohort, tmp_path))
    dataset = parser.get_parsed_content("train#dataset")
    n_lesions = len(parser.get_parsed_content("train#datalist"))
    built = dict(calls)
    assert built["LesionPatchesd"] == built["Subtractd"] == n_lesions
    assert built["ScaleIntensityDCEd"] == n_lesions  # T2 is not among the default channels: no second scaling
    assert built["LoadImaged"] == 2 * n_lesions  # the images as float32, the label map in its own integer type
    assert built["N4BiasFieldCorrectiond"] == n_lesions  # T1 phases only (no T2 among the default channels)
    for _ in range(3):  # three epochs
        for i in range(len(dataset)):
            dataset[i]
    assert dict(calls) == built


def test_invalid_cohort_refused_at_initialize(broken_cohort, bundle_cohort, tmp_path):
    manifest, bad = broken_cohort
    over = {**_common(bundle_cohort, tmp_path), "manifest": str(manifest)}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train",
                        logging_file=str(CONFIGS / "logging.conf"), **over)
    with pytest.raises(Exception) as err:  # MONAI wraps the expression's error
        wf.initialize()
    chain, e = [], err.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    assert any(bad in m and "cannot read NIfTI file" in m for m in chain), chain
