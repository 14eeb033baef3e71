"""Tests for dce_monai.workflows.bundle_utils: the bundles' event handlers and output transforms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from dce_monai.workflows import bundle_utils as bu
from dce_monai.workflows.results import read_predictions


def _engine(batches: list, outputs: list) -> Engine:
    """An engine whose state.batch / state.output are the given items, one iteration each."""
    steps = iter(outputs)
    return Engine(lambda e, b: next(steps))


def test_predictions_writer_max_per_lesion(tmp_path: Path) -> None:
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, -2.0], [0.0, 0.5]])
    batches = [
        {"lesion_id": ["A", "A"], "label": torch.tensor([1, 1]), "patient_id": ["P1", "P1"]},
        [{"lesion_id": "B", "label": 0, "patient_id": "P2"}, {"lesion_id": "B", "label": torch.tensor(0), "patient_id": "P2"}],
    ]
    outputs = [{"pred": logits[:2]}, [{"pred": logits[2]}, {"pred": logits[3]}]]  # collated, then decollated
    w = bu.PredictionsWriter(tmp_path / "sub" / "predictions.csv", experiment="e", model="m", fold=1, split="val")
    eng = _engine(batches, outputs)
    w.attach(eng)
    eng.run(batches, max_epochs=1)
    p = torch.softmax(logits, -1)[:, 1]
    rows = read_predictions(tmp_path / "sub" / "predictions.csv")
    assert [(r["experiment"], r["model"], r["fold"], r["split"], r["patient_id"], r["lesion_id"], r["label"]) for r in rows] == [
        ("e", "m", 1, "val", "P1", "A", 1), ("e", "m", 1, "val", "P2", "B", 0)]
    assert [float(r["prob"]) for r in rows] == pytest.approx([float(p[0]), float(p[3])])  # max over each lesion's patches
    mean = bu.PredictionsWriter(tmp_path / "mean.csv", reduction="mean")
    eng = _engine(batches, outputs)
    mean.attach(eng)
    eng.run(batches, max_epochs=1)
    assert [r["prob"] for r in mean.rows] == pytest.approx([float(p[:2].mean()), float(p[2:].mean())])


def test_predictions_writer_errors(tmp_path: Path) -> None:
    w = bu.PredictionsWriter(tmp_path / "p.csv")
    w.reset()
    with pytest.raises(ValueError, match=r"^PredictionsWriter: no prediction collected for '.*p\.csv'\.$"):
        w.write()
    eng = Engine(lambda e, b: {"pred": torch.zeros(2, 2)})
    eng.state.batch = {"lesion_id": ["A"], "label": [0], "patient_id": ["P"]}
    eng.state.output = {"pred": torch.zeros(2, 2)}
    with pytest.raises(ValueError, match=r"^PredictionsWriter: 2 predictions but 1 lesion ids, 1 labels\.$"):
        w.collect(eng)
    with pytest.raises(ValueError, match="Unsupported option 'holdout'"):
        bu.PredictionsWriter(tmp_path / "p.csv", split="holdout")
    with pytest.raises(ValueError, match=r"'median' is not a valid value.\nAvailable options are \{'max', 'mean'\}"):
        bu.PredictionsWriter(tmp_path / "p.csv", reduction="median")


def test_positive_prob_softmax_and_sigmoid() -> None:
    torch.testing.assert_close(bu._positive_prob(torch.tensor([[1.0, 3.0]])), torch.softmax(torch.tensor([1.0, 3.0]), 0)[1:])
    torch.testing.assert_close(bu._positive_prob(torch.tensor([0.0, 2.0])), torch.softmax(torch.tensor([0.0, 2.0]), 0)[1:])  # one sample
    torch.testing.assert_close(bu._positive_prob(torch.tensor([[0.0], [2.0]])), torch.sigmoid(torch.tensor([0.0, 2.0])))  # one logit


def test_metrics_json_writer(tmp_path: Path) -> None:
    eng = Engine(lambda e, b: None)
    eng.state.metrics = {"val_auc": 0.75, "n": 3, "name": "x"}
    bu.MetricsJsonWriter(tmp_path / "a" / "metrics.json", extra={"fold": 2, "channels": ["T1post1"]})(eng)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == {
        "fold": 2, "channels": ["T1post1"], "metrics": {"val_auc": 0.75, "n": 3.0, "name": "x"}}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["metrics.json"]  # no temporary file left


def test_lr_to_metrics() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.25)
    eng = Engine(lambda e, b: None)
    bu.LrToMetrics(opt).attach(eng)
    eng.run([0], max_epochs=1)
    assert eng.state.metrics["lr"] == 0.25
    with pytest.raises(TypeError, match=r"^optimizer must be a torch optimizer with param_groups, got dict\.$"):
        bu.LrToMetrics({"lr": 1})  # type: ignore[arg-type]


def test_output_transforms() -> None:
    out = [{"pred": torch.tensor([0.0, 1.0]), "label": torch.tensor([1]), "pred_lesion_id": "A", "image": torch.ones(1, 2, 2), "pred_mask": torch.zeros(1, 2, 2)},
           {"pred": torch.tensor([1.0, 0.0]), "label": torch.tensor([0]), "pred_lesion_id": "B", "image": torch.zeros(1, 2, 2), "pred_mask": torch.ones(1, 2, 2)}]
    probs, labels, ids = bu.lesion_auc_output(out)
    torch.testing.assert_close(probs, torch.sigmoid(torch.tensor([1.0, -1.0])))  # softmax of two logits = sigmoid of their difference
    assert labels.tolist() == [1, 0] and ids == ["A", "B"]
    with pytest.raises(KeyError, match=r"evaluator output lacks 'pred_lesion_id' \(has \['label', 'pred'\]\); copy lesion_id into it with CopyItemsd"):
        bu.lesion_auc_output({"pred": torch.zeros(2), "label": 0})
    image, label, mask = bu.attention_output(out)
    assert image.shape == (2, 1, 2, 2) and label.tolist() == [1, 0] and mask[:, 0, 0, 0].tolist() == [0.0, 1.0]
    with pytest.raises(KeyError, match=r"attention_output: evaluator output lacks \['pred_mask'\]"):
        bu.attention_output([{"image": 1, "label": 0}])
    assert bu.first_image(out)[0][0] is out[0]["image"] and bu.first_image(out)[1] == [None, None]
    assert bu.no_output(out) == [None, None] and bu.no_output({"pred": 0}) == [None]
    assert bu.loss_parts([{"loss": torch.tensor(1.5), "ce": 1.0, "dice": 0.5}]) == {"train_loss": 1.5, "train_ce": 1.0, "train_cam_dice": 0.5}
    assert bu.loss_parts({"loss": 2.0}) == {"train_loss": 2.0}


def test_rank0_without_distributed_and_bundles_dir() -> None:
    assert bu.is_rank0() is True
    assert (bu.BUNDLES_DIR / "breast_dce_maskguided_vgg3d" / "configs" / "train.json").is_file()
