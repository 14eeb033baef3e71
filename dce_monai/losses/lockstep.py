"""The summed loss of the members of a :class:`~dce_monai.networks.nets.Lockstep` group."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["LockstepLoss"]


class LockstepLoss(nn.Module):
    """``sum_k loss(pred[:, k], target)``: each member's loss, added.

    The sum (not the mean) leaves every member's gradient equal to the one it would get
    trained alone (see :mod:`dce_monai.networks.nets.lockstep`). The last values of each
    member's loss are kept in ``self.last`` (a list of floats) for logging.

    Args:
        loss: the per-member loss (default ``torch.nn.CrossEntropyLoss()``).

    Raises:
        ValueError: a prediction without a member axis (``pred.ndim < 2``).

    Example:
        >>> LockstepLoss()(torch.zeros(4, 3, 2), torch.tensor([0, 1, 0, 1]))
        tensor(2.0794)
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.loss = loss if loss is not None else nn.CrossEntropyLoss()
        self.last: list[float] = []

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim < 2:
            raise ValueError(f"LockstepLoss expects predictions (B, K, ...) with a member axis 1, got shape {tuple(pred.shape)}.")
        parts = [self.loss(pred[:, k], target) for k in range(pred.shape[1])]
        self.last = [float(p.detach()) for p in parts]
        return torch.stack(parts).sum()
