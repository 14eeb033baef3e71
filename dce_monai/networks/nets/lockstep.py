"""Several networks trained in lock-step on the same batches: one module, stacked outputs.

Seed 1 compares 35 channel triplets, each its own ResNet34 trained on the same patches. Run
one at a time, every batch is loaded, augmented and resized 35 times. :class:`Lockstep` holds
K member networks that each read their own channels of one shared multi-channel batch (the
``"select"`` adapter of :class:`~dce_monai.networks.nets.ResNet34Transfer`) and returns their
outputs stacked on a new axis 1: ``(B, K, n_classes)``. With the summed loss of
:class:`~dce_monai.losses.LockstepLoss` and one optimizer over all parameters, each member
receives exactly the gradient it would get trained alone (``d(sum_k L_k)/d theta_j = dL_j/d theta_j``;
SGD, momentum and step schedules act per parameter), so a member's training equals its
training alone, batch for batch, while the batch is prepared once for all.

Written here because MONAI has no module for this: its ensembles (``monai.apps`` /
``EnsembleEvaluator``) combine already trained networks, they do not train them together.

Example:
    >>> from dce_monai.networks.nets import ResNet34Transfer
    >>> names = ("T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4", "sub")
    >>> members = [ResNet34Transfer(in_channels=7, channel_adapter="select", in_sequences=names, triplet=t)
    ...            for t in (("T1pre", "T1post1", "sub"), ("T2", "T1pre", "sub"))]
    >>> Lockstep(members)(torch.zeros(2, 7, 32, 32)).shape
    torch.Size([2, 2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Lockstep"]


class Lockstep(nn.Module):
    """K networks applied to the same input; outputs stacked as ``(B, K, ...)``.

    Args:
        members: the K networks (each maps the shared input to its own output of one shape).
        names: optional name per member (e.g. its triplet), kept as ``self.names``.

    Raises:
        ValueError: no member, or names not one per member.
    """

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(members) == 0:
            raise ValueError("Lockstep needs at least one member network, got none.")
        if names is not None and len(names) != len(members):
            raise ValueError(f"Lockstep: {len(names)} names for {len(members)} members; give one name per member.")
        self.members = nn.ModuleList(members)
        self.names = [str(n) for n in names] if names is not None else [str(i) for i in range(len(members))]

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every member on ``x``, stacked on axis 1."""
        return torch.stack([m(x) for m in self.members], dim=1)
