"""ResNet34 for transfer learning on DCE channels (seed 1).

The network is MONAI's ``ResNet`` configured so that its state dict has exactly the key
names and shapes of torchvision's ``resnet34`` (``conv1_t_stride=2``, ``bias_downsample=False``),
which lets ImageNet weights in torchvision's ``.pth`` layout load from a local file. Nothing
is ever downloaded.

A channel adapter in front maps the N DCE sequences to the 3 inputs the ImageNet stem
expects: ``"select"`` picks a fixed triplet (the paper), ``"conv1x1"`` is a learnable 1x1
convolution initialised to reproduce a triplet exactly (the paper's own future-work idea), so
fine-tuning starts from the chosen triplet and can only move away from it if that helps.

With ``input_range=(lo, hi)`` the network takes DCE intensities as they come out of
:class:`~dce_monai.transforms.ScaleIntensityDCEd` (T1 phases and ``sub`` on one scale, T1pre's
99th percentile = 1) and maps them to what ImageNet weights expect *inside* ``forward``:
``y = clip((x - lo) / (hi - lo), 0, 1)``, then ``(y_c - mean_c) / std_c`` with torchvision's
ImageNet mean and std. The same fixed map for every channel keeps relative enhancement
(a per-channel percentile rescaling would erase it), and putting it in the network makes a
saved or TorchScript model self-contained: inference needs no separate normalisation step.

Reference: Haarburger C, Langenberg P, Truhn D, et al. "Transfer learning for breast cancer malignancy
classification based on dynamic contrast-enhanced MR images", Bildverarbeitung fuer die
Medizin 2018 (seed 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from monai.networks.nets import ResNet
from monai.utils import look_up_option
from torch import nn

from dce_monai.sequences import validate_sequence_names
from dce_monai.transforms.intensity import IMAGENET_MEAN, IMAGENET_STD

from .lockstep import Lockstep

__all__ = ["STAGES", "ResNet34Transfer", "load_torchvision_weights", "triplet_group"]

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
_STAGE_PREFIX = {"stem": ("conv1.", "bn1."), "layer1": ("layer1.",), "layer2": ("layer2.",), "layer3": ("layer3.",), "layer4": ("layer4.",)}


def _backbone(num_classes: int) -> ResNet:
    return ResNet(
        block="basic", layers=(3, 4, 6, 3), block_inplanes=(64, 128, 256, 512), spatial_dims=2,
        n_input_channels=3, conv1_t_size=7, conv1_t_stride=2, num_classes=num_classes, bias_downsample=False,
    )


def load_torchvision_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a torchvision-layout ResNet34 state dict from a local file, ``fc.*`` dropped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file needs pickle (refused: ``weights_only=True``), or keys/shapes do
            not match (all mismatches listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path} (weights are never downloaded; give a local torchvision-layout .pth file)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError/RuntimeError variants
        raise ValueError(f"{path}: refused to load: it is not a plain tensor state dict loadable with weights_only=True ({type(e).__name__}).") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict (mapping of tensors), got {type(sd).__name__}.")
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    own = {k: v for k, v in backbone.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in set(sd) & set(own) if tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        raise ValueError(
            f"{path}: not a torchvision resnet34 state dict: missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}; "
            f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}; shape mismatches {shapes[:8]}."
        )
    backbone.load_state_dict(sd, strict=False)


class ResNet34Transfer(nn.Module):
    """ImageNet ResNet34 with a DCE channel adapter and an n-class head.

    Args:
        spatial_dims: must be 2 (2D axial patches).
        in_channels: number of input channels N.
        out_channels: number of classes (default 2).
        pretrained_weights: local torchvision-layout ``.pth`` (None: random init).
        channel_adapter: ``"select"``, ``"conv1x1"`` or ``None`` (then ``in_channels`` must be 3).
        in_sequences: names of the N input channels (needed with an adapter).
        triplet: the 3 names the adapter selects / is initialised to (default: the first 3).
        freeze: stages to freeze (``"stem"``, ``"layer1"`` ... ``"layer4"``).
        input_range: ``(lo, hi)`` DCE intensities mapped to [0, 1] and ImageNet-normalised in
            ``forward`` (after the adapter); None: the input is used as given.
        init_seed: seed of the random initial weights, drawn without touching the global
            random state (None: from the global generator). Two networks with the same seed
            start identical whatever their adapter, so a model trained alone and the same
            model trained in a lock-step group (:class:`~dce_monai.networks.nets.Lockstep`)
            start from the same weights.

    Example:
        >>> net = ResNet34Transfer(in_channels=7, channel_adapter="conv1x1",
        ...     in_sequences=("T2","T1pre","T1post1","T1post2","T1post3","T1post4","sub"),
        ...     triplet=("T1pre","T1post3","sub"))
        >>> net(torch.zeros(2, 7, 64, 64)).shape
        torch.Size([2, 2])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 2,
        pretrained_weights: str | Path | None = None,
        channel_adapter: str | None = None,
        in_sequences: Sequence[str] | None = None,
        triplet: Sequence[str] | None = None,
        freeze: Sequence[str] = (),
        input_range: Sequence[float] | None = None,
        init_seed: int | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"ResNet34Transfer is 2D (ImageNet weights): spatial_dims must be 2, got {spatial_dims!r}.")
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels!r}.")
        # "" rather than None for "no adapter": TorchScript needs one static type for the attribute
        self.adapter_kind: str = "" if channel_adapter is None else look_up_option(channel_adapter, ("select", "conv1x1"))
        if self.adapter_kind == "" and in_channels != 3:
            raise ValueError(f"without a channel adapter in_channels must be 3 (ImageNet), got {in_channels}; use channel_adapter='select' or 'conv1x1'.")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.adapter: nn.Module = nn.Identity()
        # TorchScript compiles both branches of _adapt, so the buffer exists for every adapter kind
        # (empty and outside the state dict unless the adapter selects channels)
        self.register_buffer("select_index", torch.zeros(0, dtype=torch.long), persistent=False)
        if self.adapter_kind != "":
            names = validate_sequence_names(in_sequences or (), "in_sequences")
            if len(names) != in_channels:
                raise ValueError(f"in_sequences must name all {in_channels} input channels, got {list(names)}.")
            trip = validate_sequence_names(triplet or names[:3], "triplet")
            if len(trip) != 3 or any(t not in names for t in trip):
                raise ValueError(f"triplet must be 3 of the input sequences {list(names)}, got {list(trip)}.")
            idx = [names.index(t) for t in trip]
            self.in_sequences, self.triplet = list(names), list(trip)
            if self.adapter_kind == "select":
                self.register_buffer("select_index", torch.tensor(idx, dtype=torch.long), persistent=True)
            else:
                conv = nn.Conv2d(in_channels, 3, kernel_size=1, bias=True)
                with torch.no_grad():
                    conv.weight.zero_()
                    conv.bias.zero_()
                    for o, i in enumerate(idx):
                        conv.weight[o, i, 0, 0] = 1.0
                self.adapter = conv
        if init_seed is None:
            self.backbone = _backbone(out_channels)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(init_seed))
                self.backbone = _backbone(out_channels)
        # same TorchScript rule as select_index: the buffers always exist, empty when unused
        self.register_buffer("input_lo_hi", torch.zeros(0), persistent=False)
        self.register_buffer("input_mean", torch.zeros(0), persistent=False)
        self.register_buffer("input_std", torch.zeros(0), persistent=False)
        if input_range is not None:
            lo, hi = (float(v) for v in input_range)
            if not hi > lo:
                raise ValueError(f"input_range must be (lo, hi) with lo < hi, got {tuple(input_range)!r}.")
            self.register_buffer("input_lo_hi", torch.tensor([lo, hi]), persistent=True)
            self.register_buffer("input_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=True)
            self.register_buffer("input_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=True)
        if pretrained_weights is not None:
            load_torchvision_weights(self.backbone, pretrained_weights)
        self.freeze_stages(freeze)

    def freeze_stages(self, stages: Sequence[str]) -> None:
        """Freeze the given stages (and unfreeze the others)."""
        for s in stages:
            look_up_option(s, STAGES)
        frozen = tuple(p for s in stages for p in _STAGE_PREFIX[s])
        for name, p in self.backbone.named_parameters():
            p.requires_grad_(not name.startswith(frozen))

    def unfreeze(self) -> None:
        self.freeze_stages(())

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapter_kind == "select":
            x = x.index_select(1, self.select_index)
        else:
            x = self.adapter(x)
        if self.input_lo_hi.numel() == 2:
            lo, hi = self.input_lo_hi[0], self.input_lo_hi[1]
            x = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
            x = (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 512-d features."""
        b = self.backbone
        x = self._adapt(x)
        x = b.maxpool(b.act(b.bn1(b.conv1(x))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return torch.flatten(b.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_channels)."""
        return self.backbone(self._adapt(x))


def triplet_group(in_sequences: Sequence[str], triplets: Sequence[Sequence[str]], **kwargs: object) -> Lockstep:
    """One :class:`ResNet34Transfer` per triplet, each selecting its channels of a shared input, as a :class:`Lockstep` group.

    This is the seed 1 channel search's network: K triplet models trained in lock-step on the
    same batches (see :mod:`dce_monai.networks.nets.lockstep`). With the same ``init_seed``
    every member starts from the weights a lone ``ResNet34Transfer(init_seed=...)`` gets.

    Args:
        in_sequences: names of the input channels (e.g. all seven).
        triplets: the triplets, one member each.
        kwargs: further :class:`ResNet34Transfer` arguments (``pretrained_weights``,
            ``input_range``, ``init_seed``, ``out_channels``).

    Returns:
        The group; its member names are the triplets joined by ``+``.

    Example:
        >>> g = triplet_group(("T1pre", "T1post1", "T1post2", "sub"), [("T1pre", "T1post1", "sub"), ("T1pre", "T1post2", "sub")])
        >>> g(torch.zeros(2, 4, 32, 32)).shape
        torch.Size([2, 2, 2])
    """
    names = list(in_sequences)
    members = [ResNet34Transfer(in_channels=len(names), channel_adapter="select", in_sequences=names, triplet=list(t), **kwargs)  # type: ignore[arg-type]
               for t in triplets]
    return Lockstep(members, names=["+".join(t) for t in triplets])
