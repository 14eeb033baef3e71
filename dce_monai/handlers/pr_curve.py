"""TensorBoard precision-recall curve of per-lesion scores, once per evaluation.

MONAI's ``TensorBoardStatsHandler`` writes scalars and ``TensorBoardImageHandler`` images;
neither writes a PR curve, and the lesion scores only exist after the per-lesion
aggregation inside :class:`~dce_monai.handlers.lesion_auc.LesionAUC`. This handler reads
the scores that metric aggregated for the epoch and hands them to
``SummaryWriter.add_pr_curve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from .lesion_auc import LesionAUC

__all__ = ["LesionPRCurve"]


class LesionPRCurve:
    """Write the PR curve of a :class:`LesionAUC` metric's lesion scores after each evaluation.

    Attach it to the evaluator after the metric (bundle configs do: metrics are attached
    when the evaluator is built, handlers afterwards). The global step is the evaluator's
    epoch, which MONAI's ``ValidationHandler`` sets to the trainer's epoch.

    Args:
        metric: the evaluator's ``LesionAUC`` instance (``"@validate#key_metric#val_auc"``).
        log_dir: TensorBoard folder (a ``SummaryWriter`` is created there), or
        summary_writer: an existing ``SummaryWriter``.
        tag: TensorBoard tag.
        num_thresholds: points on the curve.

    Raises:
        TypeError: ``metric`` is not a ``LesionAUC``.
        ValueError: neither or both of ``log_dir`` and ``summary_writer`` given.
    """

    def __init__(
        self, metric: LesionAUC, log_dir: str | Path | None = None, summary_writer: Any | None = None,
        tag: str = "val_lesion_pr_curve", num_thresholds: int = 127,
    ) -> None:
        if not isinstance(metric, LesionAUC):
            raise TypeError(f"metric must be a LesionAUC, got {type(metric).__name__}.")
        if (log_dir is None) == (summary_writer is None):
            raise ValueError("give exactly one of log_dir and summary_writer.")
        if summary_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            summary_writer = SummaryWriter(log_dir=str(log_dir))
        self.metric, self.writer, self.tag, self.num_thresholds = metric, summary_writer, tag, int(num_thresholds)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        scores = getattr(self.metric, "scores", None)
        if scores is None:  # the metric has not computed yet (e.g. one class only): nothing to draw
            return
        s, y = scores
        self.writer.add_pr_curve(self.tag, y, s, global_step=engine.state.epoch, num_thresholds=self.num_thresholds)
        self.writer.flush()
