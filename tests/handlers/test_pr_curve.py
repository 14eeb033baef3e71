from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from dce_monai.handlers import LesionAUC, LesionPRCurve


def _batches():
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, -2.0], [0.0, 0.5], [0.0, -0.5], [0.0, 1.0]])
    labels = torch.tensor([1, 1, 0, 0, 0, 1])
    ids = ["A", "A", "B", "B", "C", "D"]
    return [{"pred": logits[i : i + 2], "label": labels[i : i + 2], "lesion_id": ids[i : i + 2]} for i in (0, 2, 4)]


@pytest.mark.parametrize("use_writer", [False, True], ids=["log_dir", "summary_writer"])
def test_pr_curve_of_lesion_scores_each_epoch(tmp_path, use_writer):
    engine = Engine(lambda e, b: b)
    metric = LesionAUC()
    metric.attach(engine, "val_auc")
    writer = SummaryWriter(str(tmp_path)) if use_writer else None
    h = LesionPRCurve(metric, summary_writer=writer) if use_writer else LesionPRCurve(metric, log_dir=str(tmp_path))
    h.attach(engine)
    engine.run(_batches(), max_epochs=2)
    h.writer.close()
    s, y = metric.scores
    assert y.tolist() == [1, 0, 0, 1] and np.all((s >= 0) & (s <= 1))  # lesions A, B, C, D after max aggregation
    acc = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    acc.Reload()
    tag = next(t for t in acc.Tags()["tensors"] if "val_lesion_pr_curve" in t)
    assert [e.step for e in acc.Tensors(tag)] == [1, 2]


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match=r"metric must be a LesionAUC, got dict"):
        LesionPRCurve({}, log_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"give exactly one of log_dir and summary_writer"):
        LesionPRCurve(LesionAUC())
