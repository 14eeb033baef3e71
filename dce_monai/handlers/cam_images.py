"""CAM overlays: a plain function (reused by reports) and an ignite handler writing them to TensorBoard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

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

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cam_overlay(image, cam, mask))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


class CamImageHandler:
    """Every ``every_n_epochs`` write CAM overlays of a fixed batch to TensorBoard.

    Args:
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter``.
        batch: dict with ``image`` (B, C, X, Y, Z) and optionally ``mask`` and ``label``.
        network: module with ``cam(x, class_idx)``.
        every_n_epochs: interval.
        tag: TensorBoard tag prefix.
    """

    def __init__(self, summary_writer: Any, batch: dict[str, Any], network: torch.nn.Module, every_n_epochs: int = 1, tag: str = "cam", max_images: int = 4, device: str | torch.device = "cpu", epoch_fn: Callable[[Engine], int] | None = None) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs!r}.")
        if not hasattr(getattr(network, "module", network), "cam"):
            raise TypeError(f"CamImageHandler needs a network with cam(x, class_idx), got {type(network).__name__}.")
        self.writer, self.batch, self.network, self.every, self.tag, self.max_images, self.device = summary_writer, batch, network, every_n_epochs, tag, max_images, device
        self.epoch_fn = epoch_fn or (lambda e: e.state.epoch)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.every), self)

    def __call__(self, engine: Engine) -> None:
        net = getattr(self.network, "module", self.network)
        was_training = net.training
        net.eval()
        x = torch.as_tensor(self.batch["image"][: self.max_images]).to(self.device)
        label = self.batch.get("label")
        with torch.no_grad():
            cam = net.cam(x, class_idx=None if label is None else torch.as_tensor(label[: self.max_images]).to(self.device))
        net.train(was_training)
        masks = self.batch.get("mask")
        for i in range(x.shape[0]):
            rgb = cam_overlay(x[i, 0].cpu(), cam[i, 0].cpu(), None if masks is None else masks[i, 0])
            self.writer.add_image(f"{self.tag}/{i}", rgb, self.epoch_fn(engine), dataformats="HWC")
