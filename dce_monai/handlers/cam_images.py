"""CAM overlays: a plain function (reused by reports) and an ignite handler writing them to TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.networks import eval_mode

__all__ = ["CamImageHandler", "cam_overlay", "save_cam_overlay_png"]


def _norm(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, (1, 99)) if a.size else (0.0, 1.0)
    return np.clip((a - lo) / (hi - lo + 1e-8), 0, 1)


def cam_overlay(image: Any, cam: Any, mask: Any | None = None, slice_index: int | None = None, alpha: float = 0.45) -> np.ndarray:
    """RGB (H, W, 3) uint8 overlay of a CAM (jet-like colours) on an axial slice, mask outline in green.

    Args:
        image: (X, Y, Z) or (1, X, Y, Z) volume (or 2D (X, Y)).
        cam: same shape, values in [0, 1].
        mask: optional binary mask, same shape.
        slice_index: axial slice (default: the slice with the most mask, else the CAM's peak).
    """
    img, c = np.asarray(torch.as_tensor(image).float()).squeeze(), np.asarray(torch.as_tensor(cam).float()).squeeze()
    m = None if mask is None else np.asarray(torch.as_tensor(mask).float()).squeeze() > 0.5
    if img.shape != c.shape or (m is not None and m.shape != img.shape):
        raise ValueError(f"image, cam and mask must share a shape, got {img.shape}, {c.shape}, {None if m is None else m.shape}.")
    if img.ndim == 3:
        if slice_index is None:
            slice_index = int(m.sum((0, 1)).argmax()) if m is not None and m.any() else int(np.unravel_index(c.argmax(), c.shape)[2])
        img, c = img[..., slice_index], c[..., slice_index]
        m = None if m is None else m[..., slice_index]
    g = _norm(img)
    heat = np.stack([np.clip(1.5 - np.abs(4 * c - 3), 0, 1), np.clip(1.5 - np.abs(4 * c - 2), 0, 1), np.clip(1.5 - np.abs(4 * c - 1), 0, 1)], -1)
    rgb = (1 - alpha * c[..., None]) * g[..., None] + alpha * c[..., None] * heat
    if m is not None:
        edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
        rgb[edge] = (0.0, 1.0, 0.0)
    return (np.rot90(np.clip(rgb, 0, 1)) * 255).astype(np.uint8)


def save_cam_overlay_png(path: str | Path, image: Any, cam: Any, mask: Any | None = None, title: str = "") -> Path:
    """Write :func:`cam_overlay` as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cam_overlay(image, cam, mask))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


class CamImageHandler:
    """Every ``every_n_epochs`` write CAM overlays to TensorBoard (central axial slice, mask outlined).

    The images come from a fixed ``batch`` when one is given, else from the first batch the
    engine sees in each epoch (attach it to the evaluator: the validation set's first batch,
    which carries ``image``, ``label`` and ``mask`` in the seed 2 bundle). The CAM is taken for
    the true class when the batch has ``label``, else for the predicted class.

    Args:
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter`` (or give ``log_dir``).
        batch: dict with ``image`` (B, C, X, Y, Z) and optionally ``mask`` and ``label``;
            ``None``: the first batch of each epoch of the engine attached to.
        network: module with ``cam(x, class_idx)`` (DDP-wrapped allowed).
        every_n_epochs: interval.
        tag: TensorBoard tag prefix.
        max_images: overlays per write.
        device: where the CAM is computed.
        epoch_fn: global step from the engine (default ``engine.state.epoch``).
        log_dir: TensorBoard folder, when no ``summary_writer`` is given.

    Raises:
        ValueError: ``every_n_epochs < 1``, or neither/both of ``summary_writer`` and ``log_dir``.
        TypeError: a network without ``cam``.
    """

    def __init__(
        self, summary_writer: Any | None = None, batch: dict[str, Any] | None = None, network: torch.nn.Module | None = None,
        every_n_epochs: int = 1, tag: str = "cam", max_images: int = 4, device: str | torch.device = "cpu",
        epoch_fn: Callable[[Engine], int] | None = None, log_dir: str | Path | None = None,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs!r}.")
        if not hasattr(getattr(network, "module", network), "cam"):
            raise TypeError(f"CamImageHandler needs a network with cam(x, class_idx), got {type(network).__name__}.")
        if (summary_writer is None) == (log_dir is None):
            raise ValueError("give exactly one of summary_writer and log_dir.")
        if summary_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            summary_writer = SummaryWriter(log_dir=str(log_dir))
        self.writer, self.batch, self.network, self.every, self.tag, self.max_images, self.device = (
            summary_writer, batch, network, every_n_epochs, tag, max_images, device)
        self.epoch_fn = epoch_fn or (lambda e: e.state.epoch)
        self._first: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        if self.batch is None:
            engine.add_event_handler(Events.EPOCH_STARTED, self._forget)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._capture)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.every), self)

    def _forget(self, engine: Engine) -> None:
        self._first = None

    def _capture(self, engine: Engine) -> None:
        if self._first is not None:
            return
        b = engine.state.batch
        if isinstance(b, dict):
            self._first = {k: b[k][: self.max_images] for k in ("image", "label", "mask") if k in b}
        elif isinstance(b, list) and b and isinstance(b[0], dict):  # MONAI engines decollate the batch
            items = b[: self.max_images]
            self._first = {k: torch.stack([torch.atleast_1d(torch.as_tensor(it[k])) for it in items])
                           for k in ("image", "label", "mask") if k in items[0]}

    def __call__(self, engine: Engine) -> None:
        batch = self.batch if self.batch is not None else self._first
        if batch is None or "image" not in batch:
            return
        net = getattr(self.network, "module", self.network)
        x = torch.as_tensor(batch["image"][: self.max_images]).to(self.device)
        label = batch.get("label")
        cls = None if label is None else torch.as_tensor(label[: self.max_images]).reshape(-1).long().to(self.device)
        with eval_mode(net):  # eval + no_grad; the mode is restored even if cam() raises
            cam = net.cam(x, class_idx=cls)
        masks = batch.get("mask")
        for i in range(x.shape[0]):
            rgb = cam_overlay(x[i, 0].cpu(), cam[i, 0].cpu(), None if masks is None else torch.as_tensor(masks[i, 0]).cpu())
            self.writer.add_image(f"{self.tag}/{i}", rgb, self.epoch_fn(engine), dataformats="HWC")
        self.writer.flush()
