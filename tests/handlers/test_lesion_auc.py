from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from sklearn.metrics import roc_auc_score

from dce_monai.handlers import LesionAUC


def _run(batches):
    engine = Engine(lambda e, b: b)
    LesionAUC().attach(engine, "val_auc")
    engine.run(batches, max_epochs=1)
    return engine.state.metrics


def test_matches_sklearn_on_max_aggregated_lesions():
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, -2.0], [0.0, 0.5], [0.0, -0.5], [0.0, 1.0]])
    labels = torch.tensor([1, 1, 0, 0, 0, 1])
    ids = ["A", "A", "B", "B", "C", "D"]
    batches = [{"pred": logits[i : i + 2], "label": labels[i : i + 2], "lesion_id": ids[i : i + 2]} for i in (0, 2, 4)]
    m = _run(batches)
    p = torch.softmax(logits, -1)[:, 1]
    lesion = {"A": (max(p[0], p[1]), 1), "B": (max(p[2], p[3]), 0), "C": (p[4], 0), "D": (p[5], 1)}
    ref = roc_auc_score([v[1] for v in lesion.values()], [float(v[0]) for v in lesion.values()])
    assert m["val_auc"] == pytest.approx(ref) and m["val_auc_n_lesions"] == 4
    # at threshold 0.5 the lesion probabilities A 0.88 (1), B 0.62 (0), C 0.38 (0), D 0.73 (1): both
    # malignant lesions found, one of two benign called positive
    assert m["val_auc_sensitivity"] == 1.0 and m["val_auc_specificity"] == 0.5 and m["val_auc_accuracy"] == 0.75


def test_single_class_error():
    with pytest.raises(ValueError, match=r"AUC is undefined with one class \(1 lesions, all label \[1\]\)"):
        _run([{"pred": torch.zeros(2, 2), "label": torch.ones(2), "lesion_id": ["A", "A"]}])
