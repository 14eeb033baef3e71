"""Recompute BatchNorm statistics of the final weights ("precise BN") before a model is used."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.utils import look_up_option
from torch import nn

__all__ = ["PreciseBatchNorm"]


class PreciseBatchNorm:
    """Set every BatchNorm's running mean and variance to the statistics of the training data under the current weights.

    BatchNorm's running averages (momentum 0.1) mix in statistics of earlier weights; after
    a short training from a random start they are far from the final network's and
    evaluation-mode outputs can overflow. One pass over the training patches without
    augmentation (``torch.optim.swa_utils.update_bn``: running statistics reset, then the
    plain average over the batches) fixes that and changes little after a long fine-tuning.
    Training itself never reads the running statistics, so running this changes no weight.

    Args:
        network: the network (any module with BatchNorm layers; a ``Lockstep`` group updates all members).
        loader: batches of training data (no augmentation, e.g. a non-shuffled ``DataLoader``).
        prepare_batch: ``(batch, device) -> (inputs, ...)``, as the engine's (e.g. :class:`~dce_monai.engines.prepare_batch.PatchBatch`
            without augmentation).
        event: ``"completed"`` (after training, before the final model is saved: attach this
            handler before the saver) or ``"epoch_completed"`` (before each validation).

    Example:
        >>> PreciseBatchNorm(net, bn_loader, PatchBatch(224)).attach(trainer)  # doctest: +SKIP
    """

    def __init__(self, network: nn.Module, loader: Iterable[Any], prepare_batch: Callable[..., Any], event: str = "completed") -> None:
        self.network, self.loader, self.prepare_batch = network, loader, prepare_batch
        self.event = look_up_option(event, ("completed", "epoch_completed"))

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED if self.event == "completed" else Events.EPOCH_COMPLETED, self)

    @torch.no_grad()
    def __call__(self, engine: Engine | None = None) -> None:
        device = getattr(getattr(engine, "state", None), "device", None) if engine is not None else None
        if device is None:
            device = next(self.network.parameters()).device

        def inputs() -> Any:
            # a one-sample batch has no batch statistics (BatchNorm refuses it in training
            # mode when the feature map is 1x1): it joins the batch before it
            held = None
            for batch in self.loader:
                x = self.prepare_batch(batch, device)[0]
                if held is not None and x.shape[0] < 2:
                    held = torch.cat([held, x])
                    continue
                if held is not None:
                    yield held
                held = x
            if held is not None:
                yield held

        torch.optim.swa_utils.update_bn(inputs(), self.network)
