"""Ignite metric: mean fraction of CAM mass inside the tumour mask (seed 2's claim, measured).

Wraps :func:`dce_monai.metrics.attention_fraction`; the CAM is computed with the network's
``cam`` for the true class of each sample, in eval mode and without gradients (MONAI
``eval_mode``), and the network's mode is restored afterwards: measuring never changes the
model (no BatchNorm running-statistics update, no dropout draw).
"""

from __future__ import annotations

from typing import Any

import torch
from ignite.metrics import Metric
from monai.networks import eval_mode

from dce_monai.metrics import attention_fraction

from .distributed import all_reduce_sum

__all__ = ["AttentionInMask"]


class AttentionInMask(Metric):
    """Mean over samples of sum(CAM * mask)/sum(CAM).

    Args:
        network: module with ``cam(x, class_idx)``.
        output_transform: maps the engine output to ``(image, label, mask)``; the default
            reads the batch dict (attach to an engine whose ``process_function`` returns it,
            or use ``engine.state.batch`` via a custom transform).
    """

    def __init__(self, network: torch.nn.Module, output_transform: Any = lambda o: (o["image"], o["label"], o["mask"]), device: str | torch.device = "cpu") -> None:
        if not hasattr(getattr(network, "module", network), "cam"):
            raise TypeError(f"AttentionInMask needs a network with cam(x, class_idx), got {type(network).__name__}.")
        self.network = network
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._sum, self._n = 0.0, 0

    def update(self, output: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        x, y, m = output
        net = getattr(self.network, "module", self.network)
        with eval_mode(net):  # an evaluator's forward restores training mode before metrics update
            cam = net.cam(x, class_idx=torch.as_tensor(y).long().flatten())
        f = attention_fraction(cam, torch.as_tensor(m).to(cam.device))
        self._sum += float(f.sum())
        self._n += int(f.numel())

    def compute(self) -> float:
        # under DDP: sum and count over all ranks, so every rank reports the whole set's mean
        total, n = all_reduce_sum(self._sum, self._n)
        if n == 0:
            raise ValueError("AttentionInMask: no sample was seen in this epoch.")
        return total / n
