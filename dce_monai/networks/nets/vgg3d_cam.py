"""3D VGG with global average pooling and a class-activation-map head (seed 2).

Four blocks of 3D convolutions (+ batch norm, ReLU) and 3D max-pooling, global average
pooling, batch norm, dropout and a linear classifier. Because the classifier sees the
globally averaged last feature maps, a class activation map (Zhou et al. 2016) is exact:
``CAM_c(v) = sum_k w'_ck F_k(v) + b'_c`` where ``w'`` and ``b'`` fold the batch norm (eval
statistics) into the linear layer, so the spatial mean of the CAM equals the logit.

``cam()`` is differentiable (the mask-guided loss back-propagates through it) and is
normalised per sample so the hottest voxel maps to 1 (min-max); MONAI's default CAM
normaliser inverts the map (max -> 0), which is not inherited here.

Reference: Liu G et al. Mask-guided convolutional neural network for breast tumor prognostic
outcome prediction on 3D DCE-MR images. J Digit Imaging 2021 (seed 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["VGG3DCAM", "normalize_cam"]


def normalize_cam(cam: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample min-max normalisation to [0, 1], hottest voxel -> 1 (differentiable)."""
    flat = cam.flatten(1)
    lo = flat.min(1).values.view(-1, *([1] * (cam.ndim - 1)))
    hi = flat.max(1).values.view(-1, *([1] * (cam.ndim - 1)))
    return (cam - lo) / (hi - lo + eps)


class VGG3DCAM(nn.Module):
    """3D VGG with a GAP + linear head whose weights give class activation maps.

    Args:
        spatial_dims: must be 3.
        in_channels: input channels (seed 2: the early post-contrast T1 alone).
        out_channels: classes (default 2).
        channels: widths of the conv blocks (default 4 blocks: 32, 64, 128, 256).
        convs_per_block: 3x3x3 convolutions per block.
        dropout: dropout before the classifier.
        use_checkpoint: gradient checkpointing of the conv blocks (less memory, more time).

    Example:
        >>> net = VGG3DCAM(in_channels=1, channels=(8, 16, 16, 32))
        >>> net(torch.zeros(2, 1, 32, 32, 16)).shape
        torch.Size([2, 2])
    """

    __jit_unused_properties__ = ["feature_layer"]  # noqa: RUF012 (TorchScript reads this list)

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = (32, 64, 128, 256),
        convs_per_block: int = 2,
        dropout: float = 0.5,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError(f"VGG3DCAM is 3D: spatial_dims must be 3, got {spatial_dims!r}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels!r} and {out_channels!r}.")
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of positive widths, got {channels!r}.")
        if convs_per_block < 1:
            raise ValueError(f"convs_per_block must be >= 1, got {convs_per_block!r}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.in_channels, self.out_channels, self.use_checkpoint = in_channels, out_channels, use_checkpoint
        blocks = []
        c_in = in_channels
        for c in channels:
            layers: list[nn.Module] = []
            for _ in range(convs_per_block):
                layers += [nn.Conv3d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True)]
                c_in = c
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool3d(2, ceil_mode=True)
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.norm = nn.BatchNorm1d(c_in)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, out_channels)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last conv feature maps (B, C, x, y, z) before global pooling."""
        if self.use_checkpoint and self.training:
            return self._checkpointed_features(x)
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)
            x = block(x)
        return x

    @torch.jit.unused
    def _checkpointed_features(self, x):  # type: ignore[no-untyped-def]
        """``forward_features`` with gradient checkpointing (training only; left out of TorchScript).

        Unannotated on purpose: TorchScript reads an unused method's signature and cannot
        resolve postponed (string) annotations there; unannotated arguments default to Tensor.
        """
        for i, block in enumerate(self.blocks):
            if i:
                x = self.pool(x)
            x = checkpoint(block, x, use_reentrant=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_channels)."""
        f = torch.flatten(self.gap(self.forward_features(x)), 1)
        return self.fc(self.dropout(self.norm(f)))

    def _folded_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        bn = self.norm
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = self.fc.weight * scale[None]
        b = self.fc.bias + self.fc.weight @ (bn.bias - bn.running_mean * scale)
        return w, b

    def forward_with_cam(self, x: torch.Tensor, class_idx: int | torch.Tensor | None = None, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the (upsampled) CAM from ONE pass through the conv blocks (for training)."""
        feats = self.forward_features(x)
        logits = self.fc(self.dropout(self.norm(torch.flatten(self.gap(feats), 1))))
        return logits, self.cam_from_features(feats, x, class_idx, normalize, True)

    def cam(self, x: torch.Tensor, class_idx: int | torch.Tensor | None = None, normalize: bool = True, upsample: bool = True) -> torch.Tensor:
        """Class activation map (B, 1, *spatial) for ``class_idx`` (None: the predicted class).

        Args:
            class_idx: an int, a (B,) tensor of per-sample classes, or None.
            normalize: min-max to [0, 1] per sample (hottest -> 1).
            upsample: trilinear upsampling to the input size.
        """
        return self.cam_from_features(self.forward_features(x), x, class_idx, normalize, upsample)

    @property
    def feature_layer(self) -> nn.Module:
        """The module whose output is the last conv feature map (a forward hook there sees the CAM's features)."""
        return self.blocks[-1]

    def cam_from_features(self, feats: torch.Tensor, x: torch.Tensor, class_idx: int | torch.Tensor | None = None,
                          normalize: bool = True, upsample: bool = True) -> torch.Tensor:
        """CAM from already computed last-conv features ``feats`` of input ``x`` (see :meth:`cam`)."""
        w, b = self._folded_head()
        maps = torch.einsum("kc,bcxyz->bkxyz", w, feats) + b.view(1, -1, 1, 1, 1)
        if class_idx is None:
            idx = maps.mean((2, 3, 4)).argmax(1)
        elif isinstance(class_idx, int):
            if not 0 <= class_idx < self.out_channels:
                raise ValueError(f"class_idx must be in [0, {self.out_channels - 1}], got {class_idx}.")
            idx = torch.full((x.shape[0],), class_idx, dtype=torch.long, device=x.device)
        else:
            idx = torch.as_tensor(class_idx, device=x.device).long().flatten()
            if idx.numel() != x.shape[0]:
                raise ValueError(f"class_idx must have one class per sample ({x.shape[0]}), got {idx.numel()}.")
        cam = maps[torch.arange(x.shape[0], device=x.device), idx][:, None]
        if upsample:
            cam = F.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)
        return normalize_cam(cam) if normalize else cam
