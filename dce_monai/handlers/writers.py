"""Handlers that write what a bundle run produced: the predictions table, a metrics JSON, the learning rate."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.utils import look_up_option

from dce_monai.handlers.outputs import as_list as _as_list
from dce_monai.handlers.outputs import positive_prob as _positive_prob
from dce_monai.metrics.aggregation import aggregate_by_lesion
from dce_monai.metrics.results import SPLITS, reject_val_split, write_predictions
from dce_monai.utils.distributed import is_rank0

__all__ = ["SPLITS_WRITTEN", "LrToMetrics", "MetricsJsonWriter", "PredictionsWriter"]

#: Values of the predictions table's ``split`` column (:data:`dce_monai.metrics.results.SPLITS`).
SPLITS_WRITTEN = SPLITS


class PredictionsWriter:
    """Collect patch predictions of an evaluator and write per-lesion probabilities as CSV.

    Lesion probability = ``reduction`` (default max, seed 1) over its patches of the
    positive-class softmax probability, via :func:`dce_monai.metrics.aggregation.aggregate_by_lesion`;
    rows follow :func:`dce_monai.metrics.results.write_predictions`
    (``experiment, model, fold, split, patient_id, lesion_id, label, prob``). Reads ``pred``
    from ``engine.state.output`` and ``label``/``lesion_id``/``patient_id`` from
    ``engine.state.batch`` (decollated lists or collated dicts). Rank 0 writes.

    Args:
        filename: CSV path (parents created).
        experiment: experiment name column.
        model: model name column.
        fold: fold column: the fold whose training patients the model learnt from (``-1``: none,
            e.g. a model applied to a whole cohort).
        split: split column: ``train`` (the model trained on these patients), ``test`` (the held-out
            fold of cross-validation), ``external`` (an independent cohort that no fold trains on)
            or ``inference`` (the model may have trained on them: never counted as held-out). The
            inner validation split ``val`` is never written (it is no result). The bundles'
            ``inference.json`` writes ``inference`` with fold ``-1``; runs that predict a held-out
            fold override ``predictions_split`` (``test``) and ``predictions_fold``.
        reduction: ``"max"`` or ``"mean"``.

    Example:
        >>> PredictionsWriter("out/predictions.csv", fold=0, split="test").attach(evaluator)  # doctest: +SKIP
    """

    def __init__(self, filename: str | Path, experiment: str = "transfer_resnet34", model: str = "resnet34",
                 fold: int | str = 0, split: str = "test", reduction: str = "max") -> None:
        self.filename = Path(filename)
        self.experiment, self.model, self.fold = str(experiment), str(model), fold
        reject_val_split(split, str(self.filename))
        self.split = look_up_option(split, SPLITS_WRITTEN)
        self.reduction = look_up_option(reduction, ("max", "mean"))
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self._p: list[float] = []
        self._y: list[int] = []
        self._ids: list[str] = []
        self._pid: dict[str, str] = {}

    def collect(self, engine: Engine) -> None:
        out, batch = engine.state.output, engine.state.batch
        outs: list[Any] = out if isinstance(out, list) else [out]
        batches: list[Any] = batch if isinstance(batch, list) else [batch]
        for o, b in zip(outs, batches):
            probs = _positive_prob(o["pred"]).reshape(-1).tolist()
            ids = [str(i) for i in _as_list(b["lesion_id"])]
            labels = [int(v) for v in _as_list(b["label"])]
            pids = [str(i) for i in _as_list(b["patient_id"])]
            if not (len(probs) == len(ids) == len(labels) == len(pids)):
                raise ValueError(f"PredictionsWriter: {len(probs)} predictions but {len(ids)} lesion ids, {len(labels)} labels.")
            self._p.extend(probs)
            self._y.extend(labels)
            self._ids.extend(ids)
            self._pid.update(zip(ids, pids))

    def write(self, engine: Engine | None = None) -> Path | None:
        """Aggregate per lesion and write the CSV (rank 0 only); return its path."""
        if not self._ids:
            raise ValueError(f"PredictionsWriter: no prediction collected for {str(self.filename)!r}.")
        ids, scores, labels = aggregate_by_lesion(self._p, self._ids, self._y, self.reduction)
        self.rows = [
            {"experiment": self.experiment, "model": self.model, "fold": self.fold, "split": self.split,
             "patient_id": self._pid[str(i)], "lesion_id": str(i), "label": int(y), "prob": float(s)}
            for i, s, y in zip(ids, np.asarray(scores), np.asarray(labels))
        ]
        if not is_rank0():
            return None
        return write_predictions(self.filename, self.rows)


class MetricsJsonWriter:
    """Write ``engine.state.metrics`` (plus ``extra`` entries) as JSON when the engine completes.

    A plain writer because MONAI's ``MetricsSaver`` writes CSV files only. Rank 0 writes.

    Args:
        filename: JSON path (parents created).
        extra: constant entries added to the file (fold, split, channels, ...).

    Example:
        >>> MetricsJsonWriter("out/metrics.json", extra={"fold": 0}).attach(evaluator)  # doctest: +SKIP
    """

    def __init__(self, filename: str | Path, extra: Mapping[str, Any] | None = None) -> None:
        self.filename = Path(filename)
        self.extra = dict(extra or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():
            return
        metrics = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
                   for k, v in engine.state.metrics.items()}
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.filename.with_name(f".{self.filename.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**self.extra, "metrics": metrics}, indent=1, default=str))
        os.replace(tmp, self.filename)


class LrToMetrics:
    """Put the optimizer's current learning rate into ``engine.state.metrics["lr"]`` each epoch.

    Attach it before ``LrScheduleHandler`` and before the stats handlers, so ``StatsHandler``
    and ``TensorBoardStatsHandler`` log the rate used during the epoch that just ended
    (MONAI's ``LrScheduleHandler`` prints it but does not write it to TensorBoard).

    Args:
        optimizer: a torch optimizer (the first parameter group's ``lr`` is used).
        name: metric name.

    Raises:
        TypeError: ``optimizer`` has no ``param_groups``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, name: str = "lr") -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"optimizer must be a torch optimizer with param_groups, got {type(optimizer).__name__}.")
        self.optimizer, self.name = optimizer, str(name)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        engine.state.metrics[self.name] = float(self.optimizer.param_groups[0]["lr"])
