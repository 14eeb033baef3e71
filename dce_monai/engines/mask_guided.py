"""Training step of seed 2's mask-guided model for MONAI's ``SupervisedTrainer``.

:class:`MaskGuidedTrainer` is a ``SupervisedTrainer`` whose inferer returns the logits AND
keeps the class activation map of the same forward pass, and whose loss function is the
mask-guided loss on (logits, label, CAM, mask). Everything else — batch preparation,
gradient accumulation, AMP, optimizer step and MONAI's iteration events
(FORWARD_COMPLETED, LOSS_COMPLETED, BACKWARD_COMPLETED, MODEL_COMPLETED) — is MONAI's own
``_iteration``, unchanged. ``engine.state.output`` additionally carries ``ce`` and ``dice``.

The network must offer ``feature_layer`` (the module producing the last conv features) and
``cam_from_features(feats, x, class_idx)`` (``VGG3DCAM`` does). The forward pass goes through
the network as given, wrapper included, and a forward hook on ``feature_layer`` keeps the
features for the CAM: with ``DistributedDataParallel`` the wrapper's own forward runs, which
is what arms its gradient all-reduce (calling ``module`` directly would skip it and leave
each process with its own gradients).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys

from dce_monai.losses import MaskGuidedLoss

__all__ = ["MaskGuidedTrainer"]


def _cam_net(network: torch.nn.Module) -> Any:
    net = getattr(network, "module", network)
    if not (hasattr(net, "feature_layer") and hasattr(net, "cam_from_features")):
        raise TypeError(f"MaskGuidedTrainer needs a network with feature_layer and cam_from_features(feats, x, class_idx) "
                        f"(e.g. VGG3DCAM), got {type(net).__name__}.")
    return net


class MaskGuidedTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` for CE + lambda * (1 - Dice(CAM, mask)).

    Args:
        device, max_epochs, train_data_loader, network, optimizer: as ``SupervisedTrainer``.
        loss_function: a :class:`MaskGuidedLoss` (its ``cam_class`` picks the CAM's class).
        mask_key: batch key of the tumour mask (B, 1, *spatial).
        **kwargs: any other ``SupervisedTrainer`` argument (handlers, amp, metrics, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: MaskGuidedLoss,
        mask_key: str = "mask",
        train_handlers: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(loss_function, MaskGuidedLoss):
            raise TypeError(f"loss_function must be a MaskGuidedLoss, got {type(loss_function).__name__}.")
        _cam_net(network)
        self.mask_guided_loss = loss_function
        self.mask_key = mask_key
        self._mask: torch.Tensor | None = None
        self._targets: torch.Tensor | None = None
        self._cam: torch.Tensor | None = None
        super().__init__(
            device=device, max_epochs=max_epochs, train_data_loader=train_data_loader, network=network,
            optimizer=optimizer, loss_function=self._loss, inferer=self._infer, train_handlers=train_handlers, **kwargs,
        )

    def _infer(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        cls = self._targets.long().flatten() if self.mask_guided_loss.cam_class == "target" and self._targets is not None else None
        net = _cam_net(network)
        feats: list[torch.Tensor] = []
        hook = net.feature_layer.register_forward_hook(lambda module, args, out: feats.append(out) if not feats else None)
        try:
            logits = network(inputs, *args, **kwargs)  # the wrapper's forward (DDP gradient sync)
        finally:
            hook.remove()
        self._cam = net.cam_from_features(feats[0], inputs, cls)
        return logits

    def _loss(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        assert self._cam is not None and self._mask is not None  # set in the same iteration
        parts = self.mask_guided_loss.compute(pred, targets, self._cam, self._mask)
        self.state.output["ce"] = parts["ce"].detach()
        self.state.output["dice"] = parts["dice"].detach()
        return parts["loss"]

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict:
        if self.mask_key not in batchdata:
            raise KeyError(f"MaskGuidedTrainer: batch has no {self.mask_key!r} (the tumour mask); keys: {sorted(batchdata)}.")
        self._mask = torch.as_tensor(batchdata[self.mask_key]).to(engine.state.device).float()
        self._targets = torch.as_tensor(batchdata[Keys.LABEL]).to(engine.state.device)
        try:
            return super()._iteration(engine, batchdata)
        finally:
            self._mask = self._targets = self._cam = None


