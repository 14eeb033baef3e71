"""Cross-rank reductions for the ignite metrics in this package (DDP validation).

Under ``torchrun`` each rank's validation loader holds a disjoint share of the validation set
(MONAI ``DistributedSampler(even_divisible=False, shuffle=False)`` in the bundles'
``multi_gpu_train.json``), so a metric's per-rank state covers only that share. Lesion-level
metrics cannot be averaged across ranks — a lesion's patches may sit on two ranks, and ROC AUC
is not a mean of per-rank AUCs — so :class:`~dce_monai.handlers.lesion_auc.LesionAUC` gathers
every rank's raw (probability, label, lesion id) lists with :func:`gather_lists` and computes
on the union; sums and counts are added with :func:`all_reduce_sum`. Outside an initialised
process group (or with one process) both return their input unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine

from dce_monai.utils.distributed import is_rank0

__all__ = ["RankZeroOnly", "all_reduce_sum", "gather_lists", "world_size"]


def world_size() -> int:
    """Number of processes of the initialised default group, 1 without one."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def gather_lists(*lists: Sequence[Any]) -> tuple[list[Any], ...]:
    """Concatenate each list over all ranks, in rank order (rank 0's items first).

    Every rank must call it (collective); items must be picklable (floats, ints, strings).
    ``torch.distributed.all_gather_object`` is used because the lists differ in length between
    ranks and hold strings (lesion ids).

    Args:
        lists: this rank's lists, e.g. ``(probabilities, labels, lesion_ids)``.

    Returns:
        One list per argument, the union over ranks.

    Example:
        >>> gather_lists([0.1], ["A"])  # one process: unchanged
        ([0.1], ['A'])
    """
    if world_size() == 1:
        return tuple(list(x) for x in lists)
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, [list(x) for x in lists])
    return tuple([item for rank_lists in parts for item in rank_lists[i]] for i in range(len(lists)))


def all_reduce_sum(*values: float) -> tuple[float, ...]:
    """Sum each value over all ranks (float64 on CPU with gloo, on this rank's GPU with nccl).

    Args:
        values: this rank's partial sums/counts.

    Returns:
        The totals, in the same order.

    Example:
        >>> all_reduce_sum(1.5, 3.0)  # one process: unchanged
        (1.5, 3.0)
    """
    if world_size() == 1:
        return tuple(float(v) for v in values)
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return tuple(float(v) for v in t.cpu().tolist())


class RankZeroOnly:
    """Attach a handler on rank 0 only (all processes attach it when not distributed).

    ``handler`` may be built lazily (a ``_mode_: "partial"`` config component, i.e. a
    callable returning the handler), so e.g. a TensorBoard writer is never created on the
    other ranks.

    Args:
        handler: object with ``attach(engine)``, or a class / zero-argument callable returning one.

    Example:
        >>> RankZeroOnly(functools.partial(TensorBoardStatsHandler, log_dir="runs")).attach(trainer)  # doctest: +SKIP
    """

    def __init__(self, handler: Any) -> None:
        if not hasattr(handler, "attach") and not callable(handler):
            raise TypeError(f"handler must have attach(engine) or be callable, got {type(handler).__name__}.")
        self.handler = handler

    def attach(self, engine: Engine) -> None:
        if not is_rank0():
            return
        lazy = isinstance(self.handler, type) or not hasattr(self.handler, "attach")
        h = self.handler() if lazy else self.handler
        if not hasattr(h, "attach"):
            raise TypeError(f"handler factory returned {type(h).__name__}, which has no attach(engine).")
        h.attach(engine)
