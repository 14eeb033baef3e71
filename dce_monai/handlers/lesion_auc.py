"""Ignite metric: ROC AUC over lesions from per-patch outputs (max aggregation by default).

Thin wrapper (MONAI house style): the computation is
:func:`dce_monai.metrics.aggregate_by_lesion` + scikit-learn's ``roc_auc_score``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric
from sklearn.metrics import roc_auc_score

from dce_monai.metrics import aggregate_by_lesion

from .distributed import gather_lists

__all__ = ["LesionAUC"]


def _default_transform(output: Any) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    items = output if isinstance(output, list) else [output]
    probs, labels, ids = [], [], []
    for it in items:
        pred = torch.as_tensor(it["pred"]).float()
        p = torch.softmax(pred, -1)[..., -1] if pred.shape[-1] > 1 else torch.sigmoid(pred[..., 0])
        probs.append(p.reshape(-1))
        labels.append(torch.as_tensor(it["label"]).reshape(-1))
        lid = it["lesion_id"]
        ids.extend([lid] if isinstance(lid, str) else list(lid))
    return torch.cat(probs), torch.cat(labels), ids


class LesionAUC(Metric):
    """ROC AUC of lesion scores aggregated from patch predictions.

    The evaluator's output must carry ``pred`` (logits), ``label`` and ``lesion_id`` per sample
    (add ``lesion_id`` with ``output_transform`` or the evaluator's ``batch_transform``).
    Also stores sensitivity/specificity/accuracy at ``threshold`` under ``<name>_sens`` etc.
    when attached with a name.

    Under ``torch.distributed`` (DDP validation with a ``DistributedSampler``) ``compute``
    gathers every rank's patch probabilities, labels and lesion ids first
    (:func:`dce_monai.handlers.distributed.gather_lists`), so every rank returns the AUC of the
    whole validation set, with a lesion's patches pooled whichever ranks they were on.

    Raises:
        ValueError: at compute time, when only one class is present (AUC undefined).
    """

    def __init__(self, reduction: str = "max", threshold: float = 0.5, output_transform: Callable = _default_transform, device: str | torch.device = "cpu") -> None:
        self.reduction, self.threshold = reduction, threshold
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self.scores: tuple[np.ndarray, np.ndarray] | None = None  # (lesion scores, labels) of the last compute
        self._p: list[float] = []
        self._y: list[int] = []
        self._ids: list[str] = []

    def update(self, output: tuple[torch.Tensor, torch.Tensor, list[str]]) -> None:
        p, y, ids = output
        self._p.extend(p.detach().cpu().tolist())
        self._y.extend(y.detach().cpu().long().tolist())
        self._ids.extend(ids)

    def compute(self) -> float:
        # under DDP each rank saw a share of the patches: pool them before aggregating per lesion
        p_all, y_all, ids_all = gather_lists(self._p, self._y, self._ids)
        ids, s, y = aggregate_by_lesion(p_all, ids_all, y_all, self.reduction)
        assert y is not None
        self.scores = (np.asarray(s, dtype=np.float64), np.asarray(y, dtype=np.int64))
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"LesionAUC: AUC is undefined with one class ({len(ids)} lesions, all label {classes.tolist()}).")
        self.last = {"sensitivity": float(((s >= self.threshold) & (y == 1)).sum() / (y == 1).sum()),
                     "specificity": float(((s < self.threshold) & (y == 0)).sum() / (y == 0).sum()),
                     "accuracy": float(((s >= self.threshold) == (y == 1)).mean()), "n_lesions": len(ids)}
        return float(roc_auc_score(y, s))

    def completed(self, engine: Any, name: str) -> None:
        super().completed(engine, name)
        for k, v in self.last.items():
            engine.state.metrics[f"{name}_{k}"] = v
