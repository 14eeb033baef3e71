"""Learning curves of a training run: per-epoch training loss and a diagnostic held-out score.

:class:`EpochCurves` records, after every epoch, the mean training loss of the epoch (per
lock-step member when the loss keeps per-member values, as
:class:`~dce_monai.losses.LockstepLoss` does) and, when given a ``score`` callable, a held-out
score of the network as it stands (e.g. the per-lesion AUC of the held-out fold).

The held-out score is a **diagnostic curve only**: it must never pick the model (the model
kept is the last epoch's). Computing it leaves training unchanged: the network is put in
evaluation mode and back, no gradient is taken, and the torch random state is saved and
restored around the call (a ``DataLoader`` draws a seed from the global generator even
without shuffling, which would otherwise change the next epoch's batch order). Mid-training
evaluation reads BatchNorm's running averages; the final model's statistics are recomputed
after training (:class:`~dce_monai.handlers.PreciseBatchNorm`), so the last point of the
curve and the final model's score may differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.networks import eval_mode

__all__ = ["EpochCurves"]


class EpochCurves:
    """Per-epoch training loss (per member) and an optional diagnostic held-out score.

    Args:
        network: the trained module (evaluation mode during ``score``, restored after).
        loss: the loss module; when it has a ``last`` list (per-member losses of the last
            iteration), those are averaged per member, else the engine output's ``"loss"``.
        score: ``() -> sequence of floats`` (one per member) evaluated after each epoch
            without gradients and with the torch random state restored afterwards; None:
            losses only.
        devices: CUDA device indices whose random state is also restored (empty on CPU).

    Attributes:
        train_loss: ``[epoch][member]`` mean training loss.
        held_out: ``[epoch][member]`` score (empty without ``score``).

    Example:
        >>> curves = EpochCurves(net, loss, score=lambda: [auc_of(net)])  # doctest: +SKIP
        >>> curves.attach(trainer); trainer.run(); curves.train_loss  # doctest: +SKIP
    """

    def __init__(self, network: torch.nn.Module, loss: Any, score: Callable[[], Sequence[float]] | None = None,
                 devices: Sequence[int] = ()) -> None:
        self.network, self.loss, self.score, self.devices = network, loss, score, list(devices)
        self.train_loss: list[list[float]] = []
        self.held_out: list[list[float]] = []
        self._sum: list[float] = []
        self._n = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch)

    def _reset(self, engine: Engine) -> None:
        self._sum, self._n = [], 0

    def _iteration(self, engine: Engine) -> None:
        last = getattr(self.loss, "last", None)
        if last:
            values = [float(v) for v in last]
        else:
            out = engine.state.output
            loss = out.get("loss") if isinstance(out, dict) else (out[0].get("loss") if isinstance(out, list) and out and isinstance(out[0], dict) else None)
            if loss is None:
                raise ValueError("EpochCurves: the loss keeps no per-member values (no 'last') and the engine output has no 'loss'.")
            values = [float(loss)]
        if not self._sum:
            self._sum = [0.0] * len(values)
        self._sum = [s + v for s, v in zip(self._sum, values)]
        self._n += 1

    def _epoch(self, engine: Engine) -> None:
        self.train_loss.append([s / self._n for s in self._sum] if self._n else [math.nan])
        if self.score is not None:
            with torch.random.fork_rng(devices=self.devices), eval_mode(self.network):
                self.held_out.append([float(v) for v in self.score()])

    def as_dict(self) -> dict[str, Any]:
        """``{"train_loss": [[...]], "held_out": [[...]]}`` (epoch-major, JSON-ready)."""
        return {"train_loss": self.train_loss, "held_out": self.held_out}
