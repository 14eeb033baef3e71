"""Distributed set-up for the bundles' ``multi_gpu_train.json`` (``torchrun``) and a rank test.

``init_distributed`` is what a bundle's ``device`` entry calls under ``torchrun``; ``is_rank0``
tells handlers whether this process writes files.
"""

from __future__ import annotations

import os

import ignite.distributed as idist
import torch
import torch.distributed as dist
from monai.utils import look_up_option

__all__ = ["destroy_distributed", "init_distributed", "is_rank0"]


def is_rank0() -> bool:
    """True unless ``torch.distributed`` is initialised and this process is not rank 0."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def init_distributed(backend: str = "auto") -> torch.device:
    """Initialise ``torch.distributed`` from the ``torchrun`` environment; return this rank's device.

    ``backend="auto"`` picks ``nccl`` when CUDA is available, else ``gloo``; the device is
    ``cuda:<LOCAL_RANK>`` (also made current) or ``cpu``. Does nothing but return the device
    when already initialised.

    Args:
        backend: ``"auto"``, ``"nccl"`` or ``"gloo"``.

    Returns:
        The torch device of this process.

    Raises:
        ValueError: run outside ``torchrun`` (no ``RANK``/``WORLD_SIZE`` environment variables).
    """
    backend = look_up_option(backend, ("auto", "nccl", "gloo"))
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k not in os.environ]
    if missing and not dist.is_initialized():
        raise ValueError(f"init_distributed needs torchrun's environment; missing {missing}. Launch with torchrun.")
    cuda = torch.cuda.is_available()
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    # ignite creates its own process-group view lazily, with a collective call, the first
    # time any rank asks for its rank; do it here on every rank so that handlers built on
    # rank 0 only (RankZeroOnly) cannot deadlock the others.
    idist.sync()
    if cuda and backend == "nccl":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def destroy_distributed() -> None:
    """Tear the process group down if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
