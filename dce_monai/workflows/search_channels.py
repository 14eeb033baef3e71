"""Seed 1's channel-triplet search: every triplet of the seven DCE channels, patient-wise k-fold CV.

For each cell (triplet, fold) a fresh ResNet34 (:class:`~dce_monai.networks.nets.resnet_transfer.ResNet34Transfer`)
is fine-tuned on the training patients' patches and scored per lesion (maximum over its
patches) on the held-out fold. With the paper's 35 triplets and 10 folds that is 350
trainings on the same patches, so the search has a fast path:

- the patches are cut once (:mod:`dce_monai.workflows.patch_cache`) with all seven channels;
- the whole cache sits on the device as one tensor; a triplet is an index into its channel axis;
- augmentation (random rotation + flips, seed 1) and the resize to ``image_size`` (224) are
  one batched ``affine_grid`` + ``grid_sample`` on the device;
- on CUDA: bfloat16 autocast and channels-last memory format;
- ``group_size`` triplets of one fold (default 4) train in lock-step on the same batches
  (the gathering, scaling and augmentation of each batch are then shared);
- after training, BatchNorm statistics are recomputed over the training patches
  (:func:`recompute_bn_statistics`).

Every model of a fold sees the same batch order and the same augmentation draws (one
generator per (seed, fold)) and starts from the same initial weights, so triplets are
compared under common random numbers and results do not depend on grouping or sharding.

Normalisation: ``y = clip((x - lo) / (hi - lo), 0, 1)``, ``out_c = (y - mean_c) / std_c`` with
ImageNet statistics (``intensity_range = (lo, hi)`` in units of the patient's T1pre 99th
percentile, see :class:`~dce_monai.transforms.ScaleIntensityDCEd`); it equals
:class:`~dce_monai.transforms.ImageNetNormalize` with ``a_min=lo, a_max=hi`` per patch, but is
computed on a whole batch on the device.

Outputs under ``out_dir``: ``cells/<triplet>__fold<k>.json`` (one per finished cell, written
atomically), ``folds.json``, ``run.json``; :func:`merge` adds ``predictions.csv``,
``ranking.csv``, ``ranking.md`` and TensorBoard HParams under ``tensorboard/``.

Reference: Haarburger et al., BVM 2018, seed 1: SGD momentum 0.9, lr 1e-3 x 0.05 every 7
epochs, cross-entropy, random rotation + flip, 50x50 patches resized to 224, per-lesion
score = max over slices, 10-fold patient-wise CV over all 35 triplets (best: T1pre, T1post3,
sub, AUC 0.839).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks import eval_mode
from monai.utils import look_up_option
from torch import nn

from dce_monai.data.folds import check_fold_classes, patient_folds, read_folds, write_folds
from dce_monai.data.manifest import Manifest, load_manifest
from dce_monai.data.validate import require_valid
from dce_monai.metrics.aggregation import aggregate_by_lesion
from dce_monai.networks.nets.resnet_transfer import ResNet34Transfer
from dce_monai.sequences import PRE, SEQUENCES, SUB, post_name, sort_sequences, validate_sequence_names
from dce_monai.sequences import triplets as all_triplets
from dce_monai.transforms.intensity import IMAGENET_MEAN, IMAGENET_STD
from dce_monai.workflows.cells import fingerprint as cell_fingerprint
from dce_monai.workflows.cells import read_cell, run_lock, settings_diff, write_json_atomic
from dce_monai.workflows.patch_cache import (
    PatchCache,
    get_patch_cache,
    load_patch_cache,
)

__all__ = [
    "SearchSettings",
    "add_cli_arguments",
    "augment_resize",
    "cell_name",
    "cli_main",
    "exam_channels",
    "plan_channels",
    "merge",
    "normalize_batch",
    "parse_shard",
    "parse_triplets",
    "predict",
    "recompute_bn_statistics",
    "reference_patches",
    "run_cells",
    "run_search",
    "train_group",
    "triplet_name",
]

logger = logging.getLogger(__name__)
EXPERIMENT = "channel_search"


# ----------------------------------------------------------------------------- settings and names


@dataclass(frozen=True)
class SearchSettings:
    """Training settings of one search cell (seed 1's defaults).

    Attributes:
        epochs: training epochs per cell. Seed 1 does not state it; 15 epochs of ~1700
            patches is what its 180 s per fold on a GTX 1070 allows.
        batch_size: training batch size.
        image_size: network input size in pixels (seed 1: 224).
        lr: initial SGD learning rate (seed 1: 1e-3).
        momentum: SGD momentum (seed 1: 0.9).
        lr_step: epochs between learning-rate decays (seed 1: 7).
        lr_gamma: decay factor (seed 1: 0.05).
        rotate_deg: rotations drawn uniformly in [-rotate_deg, rotate_deg] degrees.
        flip: random horizontal and vertical flips (each with probability 0.5).
        intensity_range: (lo, hi) mapped to [0, 1] before the ImageNet mean/std.
        eval_batch_size: batch size for prediction.
        seed: seed of the folds, the initial weights, the batch order and the augmentation.
        pretrained_weights: local torchvision-layout ResNet34 ``.pth`` (None: random init).
    """

    epochs: int = 15
    batch_size: int = 32
    image_size: int = 224
    lr: float = 1e-3
    momentum: float = 0.9
    lr_step: int = 7
    lr_gamma: float = 0.05
    rotate_deg: float = 180.0
    flip: bool = True
    intensity_range: tuple[float, float] = (0.0, 2.0)
    eval_batch_size: int = 128
    seed: int = 0
    pretrained_weights: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "image_size", "lr_step", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels (ResNet34 downsamples 32x), got {self.image_size!r}.")
        if not self.lr > 0 or not 0 <= self.momentum < 1 or not 0 < self.lr_gamma <= 1:
            raise ValueError(f"need lr > 0, 0 <= momentum < 1, 0 < lr_gamma <= 1; got lr={self.lr!r}, momentum={self.momentum!r}, lr_gamma={self.lr_gamma!r}.")
        if not 0 <= self.rotate_deg <= 180:
            raise ValueError(f"rotate_deg must be in [0, 180] degrees, got {self.rotate_deg!r}.")
        lo, hi = self.intensity_range
        if not lo < hi:
            raise ValueError(f"intensity_range must be (lo, hi) with lo < hi, got {self.intensity_range!r}.")
        if self.pretrained_weights is not None and not Path(self.pretrained_weights).is_file():
            raise FileNotFoundError(f"pretrained_weights not found: {self.pretrained_weights} (weights are never downloaded).")

    def fingerprint_dict(self) -> dict[str, Any]:
        """Settings that change results (the weights file by name, size and mtime)."""
        d = asdict(self)
        d["intensity_range"] = list(self.intensity_range)
        if self.pretrained_weights is not None:
            st = Path(self.pretrained_weights).stat()
            d["pretrained_weights"] = [str(Path(self.pretrained_weights).resolve()), st.st_size, st.st_mtime_ns]
        return d


def triplet_name(triplet: Sequence[str]) -> str:
    """``("T1pre", "T1post3", "sub")`` -> ``"T1pre+T1post3+sub"`` (the ``model`` column)."""
    return "+".join(triplet)


def cell_name(triplet: Sequence[str], fold: int) -> str:
    """File stem of a cell: ``"T1pre+T1post3+sub__fold3"``."""
    return f"{triplet_name(triplet)}__fold{fold}"


def parse_triplets(text: str | None, channels: Sequence[str] = SEQUENCES) -> list[tuple[str, str, str]]:
    """Parse ``"T1pre,T1post3,sub;T2,T1pre,sub"`` (None or ``"all"``: all triplets of ``channels``).

    Raises:
        ValueError: a group that is not 3 distinct canonical names, a name not in ``channels``,
            or a repeated triplet.

    Example:
        >>> parse_triplets("T1pre,T1post3,sub")
        [('T1pre', 'T1post3', 'sub')]
    """
    if text is None or text.strip().lower() == "all":
        return list(all_triplets(channels))
    out: list[tuple[str, str, str]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        names = tuple(n.strip() for n in part.split(","))
        validate_sequence_names(names, f"triplet {part.strip()!r}")
        if len(names) != 3:
            raise ValueError(f"a triplet needs exactly 3 channel names, got {len(names)} in {part.strip()!r}.")
        missing = [n for n in names if n not in channels]
        if missing:
            raise ValueError(f"triplet {part.strip()!r}: channel(s) {missing} not available; channels: {list(channels)}.")
        if names in out:
            raise ValueError(f"triplet {part.strip()!r} is given twice.")
        out.append(names)  # type: ignore[arg-type]
    if not out:
        raise ValueError(f"no triplet in {text!r}; expected e.g. 'T1pre,T1post3,sub;T2,T1pre,sub'.")
    return out


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"0/4"`` -> ``(0, 4)``; run every 4th cell starting at cell 0.

    Raises:
        ValueError: not ``i/n`` with 0 <= i < n.
    """
    if text is None:
        return None
    try:
        i, n = (int(v) for v in (text.split("/") if isinstance(text, str) else text))
    except (ValueError, TypeError):
        raise ValueError(f"shard must be 'i/n' (e.g. '0/4'), got {text!r}.") from None
    if not 0 <= i < n:
        raise ValueError(f"shard i/n needs 0 <= i < n, got {i}/{n}.")
    return i, n


# ----------------------------------------------------------------------------- batched device ops


def normalize_batch(x: torch.Tensor, intensity_range: tuple[float, float], mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Batched ImageNet normalisation of 3-channel patches (B, 3, H, W), on their device.

    Formula: ``y = clip((x - lo)/(hi - lo), 0, 1)``; ``out_c = (y_c - mean_c)/std_c``. Equal to
    :class:`~dce_monai.transforms.ImageNetNormalize` ``(a_min=lo, a_max=hi)`` applied per patch;
    written as three tensor ops so a whole batch is normalised in one go on the GPU.

    Example:
        >>> normalize_batch(torch.zeros(2, 3, 8, 8), (0.0, 1.0))[0, :, 0, 0]
        tensor([-2.1179, -2.0357, -1.8044])
    """
    lo, hi = float(intensity_range[0]), float(intensity_range[1])
    y = ((x.float() - lo) / (hi - lo)).clamp_(0.0, 1.0)
    m = torch.tensor(mean, dtype=y.dtype, device=y.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=y.dtype, device=y.device).view(1, -1, 1, 1)
    return (y - m) / s


def augment_resize(x: torch.Tensor, size: int, angles_rad: torch.Tensor | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate, flip and resize a batch (B, C, H, W) to (B, C, size, size) in one ``grid_sample``.

    Formula: output pixel p samples the input at ``R(angle) F p`` in normalised coordinates
    (bilinear, ``align_corners=False``, border padding), F = diag(+-1, +-1). With no angle and
    no flip this is exactly a bilinear resize (MONAI ``Resize``/``F.interpolate`` sample the
    same points). Folding augmentation and resize into one sampling step does one
    interpolation instead of three and runs batched on the device.

    Args:
        x: patches (B, C, H, W).
        size: output size in pixels.
        angles_rad: (B,) rotation angles in radians (None: 0).
        flips: (B, 2) booleans: flip along W, flip along H (None: no flip).

    Returns:
        (B, C, size, size) float tensor on ``x``'s device.
    """
    b = x.shape[0]
    dev = x.device
    theta = torch.zeros(b, 2, 3, device=dev, dtype=torch.float32)
    if angles_rad is None:
        theta[:, 0, 0] = 1.0
        theta[:, 1, 1] = 1.0
    else:
        a = angles_rad.to(dev, torch.float32)
        c, s = torch.cos(a), torch.sin(a)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, -s, s, c
    if flips is not None:
        sign = 1.0 - 2.0 * flips.to(dev, torch.float32)
        theta[:, :, 0] = theta[:, :, 0] * sign[:, 0:1]
        theta[:, :, 1] = theta[:, :, 1] * sign[:, 1:2]
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def _prep(x: torch.Tensor, st: SearchSettings, angles: torch.Tensor | None, flips: torch.Tensor | None) -> torch.Tensor:
    """Scale to [0, 1], augment + resize, then ImageNet mean/std (grid_sample commutes with per-channel affine maps)."""
    lo, hi = st.intensity_range
    y = ((x.float() - lo) / (hi - lo)).clamp_(0.0, 1.0)
    y = augment_resize(y, st.image_size, angles, flips)
    return y


def _mean_std(y: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(IMAGENET_MEAN, dtype=y.dtype, device=y.device).view(1, -1, 1, 1)
    s = torch.tensor(IMAGENET_STD, dtype=y.dtype, device=y.device).view(1, -1, 1, 1)
    return (y - m) / s


# ----------------------------------------------------------------------------- training one group of cells


def _fold_generator(seed: int, fold: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(hashlib.sha256(f"{seed}/{fold}".encode()).hexdigest()[:12], 16))


def _new_model(st: SearchSettings) -> nn.Module:
    """A ResNet34 with 3 inputs and 2 classes, initialised from ``st.seed`` without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(st.seed)
        return ResNet34Transfer(in_channels=3, out_channels=2, pretrained_weights=st.pretrained_weights)


def _autocast(device: torch.device, amp: bool) -> Any:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def train_group(
    images: torch.Tensor,
    labels: torch.Tensor,
    train_idx: torch.Tensor,
    channel_idx: Sequence[Sequence[int]],
    st: SearchSettings,
    fold: int,
    device: torch.device,
    amp: bool = True,
    template: nn.Module | None = None,
) -> tuple[list[nn.Module], list[list[float]], float]:
    """Fine-tune one model per entry of ``channel_idx`` on the same batches, in lock-step.

    The batch order and the augmentation draws come from one generator seeded by
    ``(st.seed, fold)``; with several models the 7-channel batch is scaled and augmented
    once and each model takes its channels from it.

    Args:
        images: (N, C, H, W) patch tensor on ``device`` (all channels).
        labels: (N,) int64 labels on ``device``.
        train_idx: indices of the training patches.
        channel_idx: per model, the 3 channel positions of its triplet.
        st: training settings.
        fold: fold number (part of the RNG seed).
        device: where to train.
        amp: bfloat16 autocast and channels-last on CUDA.
        template: initial model (deep-copied per triplet); default :func:`_new_model`.

    Returns:
        (models, per-model per-epoch mean losses, seconds spent training).
    """
    gen = _fold_generator(st.seed, fold)
    base = template if template is not None else _new_model(st)
    models, opts, scheds = [], [], []
    cl = amp and device.type == "cuda"
    for _ in channel_idx:
        m = copy.deepcopy(base).to(device)
        if cl:
            m = m.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=st.lr, momentum=st.momentum)
        models.append(m)
        opts.append(opt)
        scheds.append(torch.optim.lr_scheduler.StepLR(opt, step_size=st.lr_step, gamma=st.lr_gamma))
    cidx = [torch.as_tensor(list(c), dtype=torch.long, device=device) for c in channel_idx]
    shared = len(channel_idx) > 1
    n = int(train_idx.numel())
    losses: list[list[float]] = [[] for _ in models]
    t0 = time.perf_counter()
    for _epoch in range(st.epochs):
        perm = train_idx[torch.randperm(n, generator=gen).to(train_idx.device)]
        sums = [0.0 for _ in models]
        for s in range(0, n, st.batch_size):
            idx = perm[s : s + st.batch_size]
            b = int(idx.numel())
            angles = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(st.rotate_deg)
            flips = torch.rand(b, 2, generator=gen) < 0.5 if st.flip else None
            xb = images[idx]
            yb = labels[idx]
            full = _prep(xb, st, angles, flips) if shared else None
            for j, (m, opt) in enumerate(zip(models, opts)):
                x = full.index_select(1, cidx[j]) if full is not None else _prep(xb.index_select(1, cidx[j]), st, angles, flips)
                x = _mean_std(x)
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    loss = F.cross_entropy(m(x), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums[j] += float(loss.detach()) * b
        for j, sch in enumerate(scheds):
            sch.step()
            losses[j].append(sums[j] / max(n, 1))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return models, losses, time.perf_counter() - t0


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, images: torch.Tensor, idx: torch.Tensor, channels: Sequence[int], st: SearchSettings, device: torch.device, amp: bool = True) -> None:
    """Set every BatchNorm's running mean/variance to the statistics of the training patches under the final weights.

    BatchNorm's running averages (momentum 0.1) mix in statistics of earlier weights; after
    few optimiser steps from a random start they are far from the final network's and
    evaluation-mode outputs can overflow. Recomputing them in one pass over the training
    patches (no augmentation; "precise BN") fixes that and changes little after a long
    fine-tuning. Uses ``torch.optim.swa_utils.update_bn``.
    """
    c = torch.as_tensor(list(channels), dtype=torch.long, device=device)
    cl = amp and device.type == "cuda"

    def batches() -> Any:
        for s in range(0, int(idx.numel()), st.eval_batch_size):
            x = _mean_std(_prep(images[idx[s : s + st.eval_batch_size]].index_select(1, c), st, None, None))
            yield x.contiguous(memory_format=torch.channels_last) if cl else x

    with _autocast(device, amp):
        torch.optim.swa_utils.update_bn(batches(), model)


def predict(model: nn.Module, images: torch.Tensor, idx: torch.Tensor, channels: Sequence[int], st: SearchSettings, device: torch.device, amp: bool = True) -> np.ndarray:
    """Positive-class probabilities of the patches ``idx`` (no augmentation; bilinear resize).

    Runs in eval mode without gradients (MONAI ``eval_mode``); the model's mode is restored after.
    """
    c = torch.as_tensor(list(channels), dtype=torch.long, device=device)
    cl = amp and device.type == "cuda"
    out = []
    with eval_mode(model):
        for s in range(0, int(idx.numel()), st.eval_batch_size):
            x = _mean_std(_prep(images[idx[s : s + st.eval_batch_size]].index_select(1, c), st, None, None))
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits = model(x)
            out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def _lesion_scores(probs: np.ndarray, idx: np.ndarray, lesion_ids: Sequence[str], patient_ids: Sequence[str], labels: np.ndarray) -> list[dict[str, Any]]:
    ids, agg, ys = aggregate_by_lesion(probs, [lesion_ids[i] for i in idx], labels[idx], reduction="max")
    pid = {lesion_ids[i]: patient_ids[i] for i in idx}
    return [{"patient_id": pid[lid], "lesion_id": lid, "label": int(y), "prob": float(p)} for lid, p, y in zip(ids, agg, ys)]  # type: ignore[arg-type]


def run_cells(
    cache: PatchCache,
    group: Sequence[Sequence[str]],
    fold: int,
    folds: Sequence[Sequence[str]],
    st: SearchSettings,
    device: str | torch.device = "cpu",
    amp: bool = True,
    images: torch.Tensor | None = None,
    template: nn.Module | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate the cells ``(triplet, fold)`` for every triplet of ``group``.

    Args:
        cache: the patch cache (all channels).
        group: triplets trained in lock-step on the same batches.
        fold: held-out fold.
        folds: patient ids per fold.
        st: training settings.
        device: ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast + channels-last on CUDA.
        images: the cache images already on ``device`` (avoids a copy per call).
        template: initial model (see :func:`train_group`).

    Returns:
        One result dict per triplet: held-out per-lesion probabilities (max over patches),
        metrics at 0.5 and at the training-fold Youden threshold, losses, timings.

    Raises:
        ValueError: an empty training/held-out fold, or a training fold with one class.
    """
    from dce_monai.metrics.stats import binary_metrics, youden_threshold

    dev = torch.device(device)
    imgs = images if images is not None else cache.images.to(dev)
    labels_np = cache.labels.numpy()
    labels = cache.labels.to(dev)
    held = set(folds[fold])
    is_test = np.array([p in held for p in cache.patient_ids])
    test_np, train_np = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    if test_np.size == 0 or train_np.size == 0:
        raise ValueError(f"fold {fold}: {test_np.size} held-out and {train_np.size} training patches; every fold needs both.")
    if len(set(labels_np[train_np].tolist())) < 2:
        raise ValueError(f"fold {fold}: the training patients hold one class only ({sorted(set(labels_np[train_np].tolist()))}); use a smaller k.")
    train_idx = torch.as_tensor(train_np, device=dev)
    test_idx = torch.as_tensor(test_np, device=dev)
    cidx = [cache.channel_index(t) for t in group]
    models, losses, t_train = train_group(imgs, labels, train_idx, cidx, st, fold, dev, amp, template)
    results = []
    for t, m, ci, loss in zip(group, models, cidx, losses):
        t0 = time.perf_counter()
        recompute_bn_statistics(m, imgs, train_idx, ci, st, dev, amp)
        p_test = predict(m, imgs, test_idx, ci, st, dev, amp)
        p_train = predict(m, imgs, train_idx, ci, st, dev, amp)
        t_pred = time.perf_counter() - t0
        if not (np.all(np.isfinite(p_test)) and np.all(np.isfinite(p_train))):
            raise ValueError(f"cell {cell_name(t, fold)}: the trained network gives NaN/Inf probabilities (training diverged); lower lr or check the patches.")
        test_rows = _lesion_scores(p_test, test_np, cache.lesion_ids, cache.patient_ids, labels_np)
        train_rows = _lesion_scores(p_train, train_np, cache.lesion_ids, cache.patient_ids, labels_np)
        ytr = [r["label"] for r in train_rows]
        thr = youden_threshold(ytr, [r["prob"] for r in train_rows])
        yte, pte = [r["label"] for r in test_rows], [r["prob"] for r in test_rows]
        results.append({
            "triplet": list(t), "model": triplet_name(t), "fold": fold, "lesions": test_rows,
            "train_threshold": thr, "metrics": binary_metrics(yte, pte, 0.5), "metrics_tuned": binary_metrics(yte, pte, thr),
            "train_metrics": binary_metrics(ytr, [r["prob"] for r in train_rows], 0.5),
            "epoch_loss": loss, "n_train_patches": int(train_np.size), "n_test_patches": int(test_np.size),
            "seconds": {"train_group": t_train, "train_per_epoch_group": t_train / st.epochs, "group_size": len(group), "predict": t_pred},
            "device": str(dev),
        })
    return results


# ----------------------------------------------------------------------------- cells on disk


def _read_cell(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """A finished cell, or None when absent or half-written (it is then recomputed; the file is named in a log line).

    Raises:
        ValueError: a finished cell computed with other settings.
    """
    return read_cell(path, fingerprint, remedy="Use another --out folder or delete the cells folder.")


_WORKER: dict[str, Any] = {}


def _worker_init(cache_path: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["cache"] = load_patch_cache(cache_path)


def _worker_task(args: tuple[Any, ...]) -> list[str]:
    group, fold, folds, st, cells_dir, fingerprint = args
    return _run_and_write(_WORKER["cache"], group, fold, folds, st, "cpu", False, Path(cells_dir), fingerprint)


def _run_and_write(cache: PatchCache, group: Sequence[Sequence[str]], fold: int, folds: Sequence[Sequence[str]], st: SearchSettings, device: str, amp: bool, cells_dir: Path, fingerprint: str, images: torch.Tensor | None = None, template: nn.Module | None = None) -> list[str]:
    results = run_cells(cache, group, fold, folds, st, device, amp, images, template)
    names = []
    for r in results:
        name = cell_name(r["triplet"], fold)
        write_json_atomic(cells_dir / f"{name}.json", {**r, "fingerprint": fingerprint, "seed": st.seed, "epochs": st.epochs, "complete": True})
        names.append(name)
    return names


def _progress(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="cell")
    except ImportError:  # pragma: no cover - tqdm is a dependency of monai's extras
        class _Print:
            def __init__(self) -> None:
                self.n = 0

            def update(self, k: int = 1) -> None:
                self.n += k
                print(f"{desc}: {self.n}/{total} cells", flush=True)

            def close(self) -> None:
                pass

        return _Print()


def exam_channels(exam: dict[str, Any]) -> set[str]:
    """Channels an exam can give: its sequences, plus ``sub`` when it has T1pre and T1post1."""
    have = set(exam["sequences"])
    return have | ({SUB} if {PRE, post_name(1)} <= have else set())


def plan_channels(
    manifest: Manifest, triplets: Sequence[Sequence[str]] | None = None
) -> tuple[Manifest, list[tuple[str, ...]], list[tuple[str, str]]]:
    """Candidate triplets from the channels the exams have, and the patients a request leaves out.

    Policy (the same for every cohort, stated in docs/channel_search.md):

    - Without ``triplets``, the candidates are seed 1's channels (:data:`SEQUENCES`) that
      *every* exam has (``sub`` when every exam has T1pre and T1post1), and the search
      compares all their triplets: a cohort without T2 gives the 20 triplets of T1pre,
      T1post1..4 and sub; one whose shortest exam has 3 post phases drops T1post4. No
      patient is left out.
    - With ``triplets``, a post phase is taken by its index (``T1post3`` = the third
      post-contrast acquisition, whatever its time); exams lacking a requested channel are
      listed and left out, never silently.

    Args:
        manifest: the validated cohort.
        triplets: requested triplets, or None for all candidates.

    Returns:
        ``(manifest with the patients kept, triplets, [(patient_id, reason), ...] left out)``.

    Raises:
        ValueError: fewer than 3 channels common to every exam, or no patient having every
            requested channel (the channels each exam lacks are named).

    Example:
        >>> m2, trips, left = plan_channels(load_manifest("mama_mia/manifest.json"))  # doctest: +SKIP
        >>> len(trips)  # no T2: C(6, 3)                                              # doctest: +SKIP
        20
    """
    have = {p["patient_id"]: exam_channels(p["exam"]) for p in manifest.patients}
    if triplets is None:
        common = set.intersection(*have.values()) if have else set()
        candidates = [c for c in SEQUENCES if c in common]
        if len(candidates) < 3:
            raise ValueError(f"{manifest.path}: the exams share only {candidates} of the channels {list(SEQUENCES)}; a search needs 3.")
        return manifest, list(all_triplets(candidates)), []
    trips = [tuple(t) for t in triplets]
    need = set().union(*map(set, trips))
    left = [(pid, f"lacks {sort_sequences(sorted(need - chans))}") for pid, chans in have.items() if not need <= chans]
    if len(left) == len(have):
        raise ValueError(f"{manifest.path}: no exam has every requested channel {sort_sequences(sorted(need))}; e.g. patient {left[0][0]} {left[0][1]}.")
    kept = [pid for pid in have if need <= have[pid]]
    return (manifest.select(kept) if left else manifest), trips, left


def run_search(
    manifest: str | Path | Manifest,
    out_dir: str | Path,
    k: int = 10,
    epochs: int = 15,
    triplets: Sequence[Sequence[str]] | None = None,
    seed: int = 0,
    batch_size: int = 32,
    image_size: int = 224,
    patch_size: int | Sequence[int] = 50,
    workers: int = 1,
    shard: tuple[int, int] | str | None = None,
    device: str = "cpu",
    amp: bool = True,
    pretrained_weights: str | Path | None = None,
    group_size: int = 4,
    cache_dtype: str = "float16",
    progress: bool = True,
    skip_invalid: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Run (this shard of) the channel search; finished cells are skipped, half-written ones redone.

    Args:
        manifest: cohort manifest (path or loaded).
        out_dir: output folder (``cells/``, ``cache/``, ``folds.json``, ``run.json``).
        k: number of patient-wise folds (seed 1: 10).
        epochs: epochs per cell.
        triplets: triplets to compare (default: all 35).
        seed: seed of folds, initial weights, batch order and augmentation.
        batch_size: training batch size.
        image_size: network input size (seed 1: 224).
        patch_size: patch size in voxels (seed 1: 50).
        workers: CPU processes running cells in parallel (CPU only).
        shard: ``(i, n)`` or ``"i/n"``: run cells ``i, i+n, i+2n, ...`` of the cell list.
        device: ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast + channels-last on CUDA (ignored on CPU).
        pretrained_weights: local torchvision ResNet34 weights.
        group_size: triplets of one fold trained in lock-step on shared batches (default 4:
            ~10 % faster than 1 on an H100 and on CPU, identical results on CPU).
        cache_dtype: ``"float16"`` or ``"float32"`` patch cache.
        progress: progress bars.
        **settings: further :class:`SearchSettings` fields (``lr``, ``rotate_deg`` ...).

    Returns:
        ``{"cells_total", "cells_in_shard", "cells_run", "cells_skipped", "seconds", "out_dir"}``.

    Raises:
        ValueError: bad arguments, cells from another configuration in ``out_dir``, or
            folds that cannot be built (see :func:`~dce_monai.data.folds.patient_folds`).

    Example:
        >>> run_search("cohort/manifest.json", "search", k=10, device="cuda")  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    dev = look_up_option(device, ("cpu", "cuda"))
    for name, v in (("workers", workers), ("group_size", group_size), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
    if workers > 1 and dev == "cuda":
        raise ValueError(f"workers={workers} runs CPU processes; on CUDA use workers=1 (and shards for several GPUs).")
    if dev == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but torch sees no CUDA device.")
    sh = parse_shard(shard)
    ps = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    st = SearchSettings(epochs=epochs, batch_size=batch_size, image_size=image_size, seed=seed,
                        pretrained_weights=None if pretrained_weights is None else str(pretrained_weights), **settings)
    for t in triplets or ():
        validate_sequence_names(t, f"triplet {t!r}")
        if len(t) != 3:
            raise ValueError(f"a triplet needs exactly 3 channel names, got {list(t)}.")
    out = Path(out_dir)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out, "search-channels", "all" if sh is None else f"shard-{sh[0]}-of-{sh[1]}"):
        m = require_valid(manifest, skip_invalid=skip_invalid)  # every problem listed before any work
        m, trips, left_out = plan_channels(m, triplets)
        for pid, why in left_out:
            logger.warning("channel search: patient %s left out: %s", pid, why)
        channels = sort_sequences(sorted({c for t in trips for c in t}))
        cache = get_patch_cache(m, out / "cache", sequences=channels, size=ps, dtype=cache_dtype, progress=progress)
        lesions = cache.lesion_table()
        folds_path = out / "folds.json"
        folds = patient_folds(lesions, k=k, seed=seed)
        check_fold_classes(lesions, folds, source=str(folds_path))
        if folds_path.is_file():
            if read_folds(folds_path) != folds:
                raise ValueError(f"{folds_path} holds other folds than this cohort/k/seed gives; use another --out folder.")
        else:
            write_folds(folds, folds_path, k=k, seed=seed, manifest=str(m.path))
        fingerprint = cell_fingerprint({"cache": cache.key, "folds": folds, "settings": st.fingerprint_dict()})
        run_info = {"manifest": str(m.path), "k": k, "triplets": [list(t) for t in trips], "settings": st.fingerprint_dict(),
                    "fingerprint": fingerprint, "cache": str(cache.path), "n_patches": len(cache), "n_lesions": len(lesions),
                    "skipped_lesions": cache.skipped_lesions, "target": m.target, "channels": channels,
                    "left_out_patients": [list(x) for x in left_out]}
        run_path = out / "run.json"
        if run_path.is_file():
            try:
                prev = json.loads(run_path.read_text())
            except json.JSONDecodeError:
                prev = None
            if prev and prev.get("triplets") != run_info["triplets"]:
                raise ValueError(f"{run_path} lists other triplets ({len(prev.get('triplets', []))}) than this run ({len(trips)}); use the same --triplets for every shard.")
            if prev and prev.get("fingerprint") != fingerprint:
                old = {**(prev.get("settings") or {}), "k": prev.get("k")}
                diff = settings_diff(old, {**run_info["settings"], "k": k}) or ["the patch cache (cohort files, channels or patch size) differs"]
                raise ValueError(f"{run_path} belongs to a run with other data or settings ({'; '.join(diff)}); use another --out folder.")
        write_json_atomic(run_path, run_info)
        cells = [(t, f) for t in trips for f in range(k)]
        mine = cells[sh[0] :: sh[1]] if sh else cells
        pending = [(t, f) for t, f in mine if _read_cell(cells_dir / f"{cell_name(t, f)}.json", fingerprint) is None]
        groups: list[tuple[list[tuple[str, ...]], int]] = []
        for f in range(k):
            tf = [t for t, ff in pending if ff == f]
            groups += [(tf[i : i + group_size], f) for i in range(0, len(tf), group_size)]
        bar = _progress(len(pending), f"channel search{'' if not sh else f' shard {sh[0]}/{sh[1]}'}") if progress else None
        if workers == 1:
            images = cache.images.to(dev)
            template = _new_model(st)
            for g, f in groups:
                _run_and_write(cache, g, f, folds, st, dev, amp, cells_dir, fingerprint, images, template)
                if bar:
                    bar.update(len(g))
        else:
            import multiprocessing as mp

            from .threads import resolve_threads

            threads = resolve_threads(None, workers)  # the CPUs this process may use, shared among the workers
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(str(cache.path), threads)) as ex:
                futs = [ex.submit(_worker_task, (g, f, folds, st, str(cells_dir), fingerprint)) for g, f in groups]
                for fu in futs:
                    done = fu.result()
                    if bar:
                        bar.update(len(done))
        if bar:
            bar.close()
        return {"cells_total": len(cells), "cells_in_shard": len(mine), "cells_run": len(pending), "cells_skipped": len(mine) - len(pending),
                "seconds": time.perf_counter() - t0, "out_dir": str(out), "channels": channels, "left_out": left_out}


# ----------------------------------------------------------------------------- merge


def merge(out_dir: str | Path, n_boot: int = 1000, seed: int = 0, tensorboard: bool = True) -> dict[str, Path]:
    """Combine the cells of all shards into predictions, a ranked table and TensorBoard HParams.

    Per triplet, the held-out lesion probabilities of all folds are pooled and scored:
    AUC with a patient-resampled bootstrap 95 % CI; sensitivity, specificity and accuracy at
    0.5 and at each fold's training-set Youden threshold; mean +- SD of the per-fold AUCs;
    DeLong's paired test against the best triplet (same lesions). Rows are sorted by AUC.

    Args:
        out_dir: the search folder (with ``run.json`` and ``cells/``).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        tensorboard: write ``tensorboard/`` HParams (one run per triplet).

    Returns:
        ``{"predictions": ..., "ranking_csv": ..., "ranking_md": ...}`` (+ ``"tensorboard"``).

    Raises:
        FileNotFoundError: no ``run.json`` in ``out_dir``.
        ValueError: cells missing or half-written (how many, which, which shard to re-run).

    Example:
        >>> merge("search")["ranking_md"].read_text()  # doctest: +SKIP
    """
    from dce_monai.metrics.collapse import score_collapse
    from dce_monai.metrics.stats import binary_metrics, bootstrap_ci, delong_test
    from dce_monai.workflows.results import write_predictions

    out = Path(out_dir)
    run_path = out / "run.json"
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_path} not found: run the search (all shards) into {out} first.")
    run = json.loads(run_path.read_text())
    trips = [tuple(t) for t in run["triplets"]]
    k = int(run["k"])
    cells: dict[tuple[tuple[str, ...], int], dict[str, Any]] = {}
    missing = []
    all_cells = [(t, f) for t in trips for f in range(k)]
    for i, (t, f) in enumerate(all_cells):
        c = _read_cell(out / "cells" / f"{cell_name(t, f)}.json", run["fingerprint"])
        if c is None:
            missing.append((i, cell_name(t, f)))
        else:
            cells[(t, f)] = c
    if missing:
        raise ValueError(f"{len(missing)} of {len(all_cells)} cells are missing or half-written in {out / 'cells'}, e.g. "
                         f"{[n for _, n in missing[:5]]}; re-run the search (cell i belongs to shard i % n) before merging.")
    rows: list[dict[str, Any]] = []
    per: dict[tuple[str, ...], dict[str, Any]] = {}
    for t in trips:
        les, tuned_pred, fold_auc, collapsed = [], [], [], []
        for f in range(k):
            c = cells[(t, f)]
            cc = score_collapse([r["prob"] for r in c["lesions"]])
            if cc["collapsed"]:
                collapsed.append(f"fold {f}: {cc['reason']}")
            for r in c["lesions"]:
                les.append(r)
                tuned_pred.append(int(r["prob"] >= c["train_threshold"]))
                rows.append({"experiment": EXPERIMENT, "model": triplet_name(t), "fold": f, "split": "val", "patient_id": r["patient_id"],
                             "lesion_id": r["lesion_id"], "label": r["label"], "prob": r["prob"]})
            if not math.isnan(c["metrics"]["auc"]):
                fold_auc.append(c["metrics"]["auc"])
        order = sorted(range(len(les)), key=lambda i: les[i]["lesion_id"])
        per[t] = {"lesions": [les[i] for i in order], "tuned": [tuned_pred[i] for i in order], "fold_auc": fold_auc, "collapsed": collapsed}
    table: list[dict[str, Any]] = []
    for t in trips:
        d = per[t]
        y = np.array([r["label"] for r in d["lesions"]])
        p = np.array([r["prob"] for r in d["lesions"]])
        g = [r["patient_id"] for r in d["lesions"]]
        m05 = binary_metrics(y, p, 0.5)
        tp = np.array(d["tuned"])
        n1, n0 = int(y.sum()), int((1 - y).sum())
        lo, hi = bootstrap_ci(y, p, "auc", n_boot=n_boot, seed=seed, groups=g) if n1 and n0 else (math.nan, math.nan)
        table.append({
            "model": triplet_name(t), "auc": m05["auc"], "auc_ci_low": lo, "auc_ci_high": hi,
            "sensitivity": m05["sensitivity"], "specificity": m05["specificity"], "accuracy": m05["accuracy"],
            "sensitivity_tuned": float(np.sum((tp == 1) & (y == 1)) / n1) if n1 else math.nan,
            "specificity_tuned": float(np.sum((tp == 0) & (y == 0)) / n0) if n0 else math.nan,
            "accuracy_tuned": float(np.mean(tp == y)),
            "fold_auc_mean": float(np.mean(d["fold_auc"])) if d["fold_auc"] else math.nan,
            "fold_auc_sd": float(np.std(d["fold_auc"], ddof=1)) if len(d["fold_auc"]) > 1 else math.nan,
            "n_lesions": int(y.size), "n_malignant": n1, "_t": t,
            "collapsed_folds": len(d["collapsed"]), "collapse": "; ".join(d["collapsed"]),
        })
    table.sort(key=lambda r: (-(r["auc"] if not math.isnan(r["auc"]) else -1.0), r["model"]))
    best = table[0]["_t"]
    yb = np.array([r["label"] for r in per[best]["lesions"]])
    pb = np.array([r["prob"] for r in per[best]["lesions"]])
    for rank, r in enumerate(table, 1):
        r["rank"] = rank
        pt = np.array([x["prob"] for x in per[r["_t"]]["lesions"]])
        if r["_t"] == best:
            r["delong_p_vs_best"], r["_delong_why"] = 1.0, ""
        elif yb.min() == yb.max():
            r["delong_p_vs_best"], r["_delong_why"] = math.nan, "one class only"
        else:  # NaN with a reason when a class holds one lesion
            t = delong_test(yb, pb, pt)
            r["delong_p_vs_best"], r["_delong_why"] = t["p"], t["reason"]
    pred_path = out / "predictions.csv"
    write_predictions(pred_path, rows)
    cols = ["rank", "model", "auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "accuracy", "sensitivity_tuned",
            "specificity_tuned", "accuracy_tuned", "fold_auc_mean", "fold_auc_sd", "delong_p_vs_best", "n_lesions", "n_malignant",
            "collapsed_folds", "collapse"]
    csv_path = out / "ranking.csv"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(table)
    os.replace(tmp, csv_path)
    md_path = out / "ranking.md"
    lines = [
        (f"Channel-triplet search: {len(trips)} triplets, {k}-fold patient-wise CV, {table[0]['n_lesions']} lesions "
         f"({table[0]['n_malignant']} malignant); per-lesion score = max over patches. AUC: pooled over all folds' held-out "
         "lesions; fold AUC: mean ± SD of the per-fold AUCs; collapsed: folds whose scores are near-constant or one class at 0.5."),
        "",
        "| rank | channels | AUC (95 % CI) | Sens@0.5 | Spec@0.5 | Acc@0.5 | Sens@Youden | Spec@Youden | Acc@Youden | fold AUC mean ± SD | DeLong p vs best | collapsed folds |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in table:
        lines.append(
            f"| {r['rank']} | {', '.join(r['_t'])} | {r['auc']:.3f} ({r['auc_ci_low']:.3f}–{r['auc_ci_high']:.3f}) | {r['sensitivity']:.3f} | "
            f"{r['specificity']:.3f} | {r['accuracy']:.3f} | {r['sensitivity_tuned']:.3f} | {r['specificity_tuned']:.3f} | {r['accuracy_tuned']:.3f} | "
            f"{r['fold_auc_mean']:.3f} ± {r['fold_auc_sd']:.3f} | {_p_text(r['delong_p_vs_best'], r['_delong_why'])} | {r['collapsed_folds']} |"
        )
    bad = [r for r in table if r["collapsed_folds"]]
    if bad:
        lines += ["", "Collapsed scores (their AUC is not a finding):", ""] + [f"- {r['model']}: {r['collapse']}" for r in bad]
    md_path.write_text("\n".join(lines) + "\n")
    result = {"predictions": pred_path, "ranking_csv": csv_path, "ranking_md": md_path}
    if tensorboard:
        result["tensorboard"] = _write_hparams(out / "tensorboard", table, run)
    return result


def _p_text(p: float, why: str) -> str:
    """A p-value for a table: ``0.0123``, or ``n/a (only one positive lesion)`` when undefined."""
    return f"n/a ({why})" if math.isnan(p) else f"{p:.3g}"


def _write_hparams(log_dir: Path, table: Sequence[dict[str, Any]], run: dict[str, Any]) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    st = run["settings"]
    with SummaryWriter(str(log_dir)) as w:
        for r in table:
            t = r["_t"]
            hp = {"triplet": r["model"], "c1": t[0], "c2": t[1], "c3": t[2], "epochs": st["epochs"], "lr": st["lr"],
                  "batch_size": st["batch_size"], "image_size": st["image_size"], "k": run["k"]}
            metrics = {f"hparam/{m}": (float(r[m]) if not math.isnan(r[m]) else 0.0) for m in
                       ("auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "accuracy", "fold_auc_mean", "delong_p_vs_best")}
            w.add_hparams(hp, metrics, run_name=r["model"])
    return log_dir


# ----------------------------------------------------------------------------- reference (slow) path


def reference_patches(manifest: str | Path | Manifest, triplet: Sequence[str], patch_size: int | Sequence[int] = 50) -> tuple[torch.Tensor, list[str], list[str], torch.Tensor]:
    """The patches of one triplet through a per-cell MONAI ``Dataset`` (no shared cache).

    This is what a bundle per cell does: load the files, subtract, scale, stack the 3
    channels and cut patches, for this triplet alone. It is the reference the fast path is
    checked against (same patches in the same order) and the "naive" side of the benchmark.

    Returns:
        (patches (N, 3, H, W) float32, lesion ids, patient ids, labels (N,)).
    """
    from monai.data import Dataset
    from monai.transforms import Compose

    from dce_monai.transforms import LesionPatchesd
    from dce_monai.workflows.patch_cache import files_needed, patient_pipeline

    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    trip = validate_sequence_names(triplet, "triplet")
    ps = (patch_size, patch_size) if isinstance(patch_size, int) else (int(patch_size[0]), int(patch_size[1]))
    fs = files_needed(trip)
    pipe = Compose([patient_pipeline(fs, trip), LesionPatchesd(size=ps, on_empty="raise")])
    ds = Dataset(m.to_datalist(level="lesion", sequences=fs), transform=pipe)
    imgs, lids, pids, ys = [], [], [], []
    for i in range(len(ds)):
        patches = ds[i]
        for p in patches:
            imgs.append(p["image"].as_tensor().float())
            lids.append(str(p["lesion_id"]))
            pids.append(str(p["patient_id"]))
            ys.append(int(p["label"]))
    return torch.stack(imgs), lids, pids, torch.tensor(ys, dtype=torch.int64)


# ----------------------------------------------------------------------------- CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai search-channels``."""
    parser.add_argument("manifest", help="cohort manifest JSON")
    parser.add_argument("--out", required=True, help="output folder (cells/, cache/, predictions.csv, ranking.md)")
    parser.add_argument("--k", type=int, default=10, help="patient-wise folds (seed 1: 10)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per cell")
    parser.add_argument("--triplets", default=None, help='e.g. "T1pre,T1post3,sub;T2,T1pre,sub" (default: every triplet of the channels all exams have: 35 with T2, 20 without); exams lacking a requested channel are listed and left out')
    parser.add_argument("--shard", default=None, help="i/n: run every n-th cell starting at i (e.g. 0/4)")
    parser.add_argument("--merge", action="store_true", help="combine finished cells into predictions.csv and ranking.{csv,md}")
    parser.add_argument("--workers", type=int, default=1, help="CPU processes running cells in parallel")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-amp", action="store_true", help="disable bfloat16 autocast / channels-last on CUDA")
    parser.add_argument("--group-size", type=int, default=4, help="triplets trained in lock-step on shared batches")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--patch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrained-weights", default=None, help="local torchvision ResNet34 .pth (never downloaded)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (merge)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--skip-invalid", action="store_true", help="continue with the valid patients when validation finds problems")


def cli_main(args: argparse.Namespace) -> int:
    """Run the search (or this shard of it); with ``--merge`` only combine the finished cells.

    Without ``--shard`` and without ``--merge`` the run is complete, so it is merged at once.
    """
    if not args.merge:
        summary = run_search(
            args.manifest, args.out, k=args.k, epochs=args.epochs, seed=args.seed,
            triplets=None if args.triplets is None or args.triplets.strip().lower() == "all" else parse_triplets(args.triplets),
            batch_size=args.batch_size, image_size=args.image_size, patch_size=args.patch_size, workers=args.workers,
            shard=args.shard, device=args.device, amp=not args.no_amp, pretrained_weights=args.pretrained_weights,
            group_size=args.group_size, progress=not args.no_progress, skip_invalid=args.skip_invalid,
        )
        for pid, why in summary["left_out"]:
            print(f"  patient {pid} left out: {why}")
        print(f"channels {summary['channels']}: {summary['cells_run']} cell(s) run, {summary['cells_skipped']} already finished, "
              f"in {summary['seconds']:.1f} s -> {args.out}")
        if args.shard is not None:
            return 0
    paths = merge(args.out, n_boot=args.n_boot, seed=args.seed)
    print(Path(paths["ranking_md"]).read_text())
    for name, p in paths.items():
        print(f"{name}: {p}")
    return 0
