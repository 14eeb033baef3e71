"""Handlers that write a bundle run's outputs: predictions table, metrics JSON, learning rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from dce_monai.handlers import writers as hw
from dce_monai.metrics.results import read_predictions


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
    w = hw.PredictionsWriter(tmp_path / "sub" / "predictions.csv", experiment="e", model="m", fold=1, split="test")
    eng = _engine(batches, outputs)
    w.attach(eng)
    eng.run(batches, max_epochs=1)
    p = torch.softmax(logits, -1)[:, 1]
    rows = read_predictions(tmp_path / "sub" / "predictions.csv")
    assert [(r["experiment"], r["model"], r["fold"], r["split"], r["patient_id"], r["lesion_id"], r["label"]) for r in rows] == [
        ("e", "m", 1, "test", "P1", "A", 1), ("e", "m", 1, "test", "P2", "B", 0)]
    assert [float(r["prob"]) for r in rows] == pytest.approx([float(p[0]), float(p[3])])  # max over each lesion's patches
    mean = hw.PredictionsWriter(tmp_path / "mean.csv", reduction="mean")
    eng = _engine(batches, outputs)
    mean.attach(eng)
    eng.run(batches, max_epochs=1)
    assert [r["prob"] for r in mean.rows] == pytest.approx([float(p[:2].mean()), float(p[2:].mean())])


def test_predictions_writer_errors(tmp_path: Path) -> None:
    w = hw.PredictionsWriter(tmp_path / "p.csv")
    w.reset()
    with pytest.raises(ValueError, match=r"^PredictionsWriter: no prediction collected for '.*p\.csv'\.$"):
        w.write()
    eng = Engine(lambda e, b: {"pred": torch.zeros(2, 2)})
    eng.state.batch = {"lesion_id": ["A"], "label": [0], "patient_id": ["P"]}
    eng.state.output = {"pred": torch.zeros(2, 2)}
    with pytest.raises(ValueError, match=r"^PredictionsWriter: 2 predictions but 1 lesion ids, 1 labels\.$"):
        w.collect(eng)
    with pytest.raises(ValueError, match="Unsupported option 'holdout'"):
        hw.PredictionsWriter(tmp_path / "p.csv", split="holdout")
    with pytest.raises(ValueError, match=r"p\.csv: split 'val' is the inner validation split of the training patients, which is never a result"):
        hw.PredictionsWriter(tmp_path / "p.csv", split="val")
    with pytest.raises(ValueError, match=r"'median' is not a valid value.\nAvailable options are \{'(max|mean)', '(max|mean)'\}"):
        hw.PredictionsWriter(tmp_path / "p.csv", reduction="median")


def test_metrics_json_writer(tmp_path: Path) -> None:
    eng = Engine(lambda e, b: None)
    eng.state.metrics = {"val_auc": 0.75, "n": 3, "name": "x"}
    hw.MetricsJsonWriter(tmp_path / "a" / "metrics.json", extra={"fold": 2, "channels": ["T1post1"]})(eng)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == {
        "fold": 2, "channels": ["T1post1"], "metrics": {"val_auc": 0.75, "n": 3.0, "name": "x"}}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["metrics.json"]  # no temporary file left


def test_lr_to_metrics() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.25)
    eng = Engine(lambda e, b: None)
    hw.LrToMetrics(opt).attach(eng)
    eng.run([0], max_epochs=1)
    assert eng.state.metrics["lr"] == 0.25
    with pytest.raises(TypeError, match=r"^optimizer must be a torch optimizer with param_groups, got dict\.$"):
        hw.LrToMetrics({"lr": 1})  # type: ignore[arg-type]


def test_predictions_and_metrics_writers(tmp_path):
    batches = [[{"pred": torch.tensor([0.0, 2.0]), "label": torch.tensor(1), "lesion_id": "A", "patient_id": "P"},
                {"pred": torch.tensor([0.0, -2.0]), "label": torch.tensor(1), "lesion_id": "A", "patient_id": "P"}],
               [{"pred": torch.tensor([1.0, 0.0]), "label": torch.tensor(0), "lesion_id": "B", "patient_id": "Q"}]]

    def step(engine, batch):
        engine.state.metrics["m"] = 0.5
        return batch

    eng = Engine(step)
    pw = hw.PredictionsWriter(tmp_path / "p.csv", fold=1, split="test")
    pw.attach(eng)
    hw.MetricsJsonWriter(tmp_path / "m.json", extra={"fold": 1}).attach(eng)
    eng.run(batches)
    rows = {r["lesion_id"]: r for r in read_predictions(tmp_path / "p.csv")}
    assert float(rows["A"]["prob"]) == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), abs=1e-6)
    assert rows["B"]["patient_id"] == "Q" and int(rows["B"]["label"]) == 0 and str(rows["B"]["split"]) == "test"
    assert json.loads((tmp_path / "m.json").read_text()) == {"fold": 1, "metrics": {"m": 0.5}}
    with pytest.raises(ValueError, match="Unsupported option 'x'|x"):
        hw.PredictionsWriter(tmp_path / "p.csv", split="x")
    with pytest.raises(ValueError, match="no prediction collected"):
        empty = hw.PredictionsWriter(tmp_path / "q.csv")
        empty.reset()
        empty.write()
