"""Crash-safe training checkpoints and resume-from-latest for ignite engines.

A run killed at any moment (SIGKILL mid-epoch, or while a checkpoint is being written) and
restarted with the same command continues from the last complete checkpoint:

- :class:`AtomicCheckpointSaver` writes ``<save_dir>/<prefix>_epoch=<n>.pt`` through a
  temporary file in the same folder, flushed to disk and then renamed over the final name
  (``os.replace`` is atomic on POSIX and Windows), so a half-written file never carries the
  final name. MONAI's ``CheckpointSaver`` writes in place (ignite ``DiskSaver(atomic=False)``),
  which is why this handler exists.
- :class:`ResumeFromLatest` loads the newest complete checkpoint when the engine starts,
  restoring epoch and iteration counts; it does nothing on a fresh run.

Checkpoints are plain state dicts and are always read with ``torch.load(weights_only=True)``:
a file that needs pickle to load (arbitrary code) is refused.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

__all__ = ["AtomicCheckpointSaver", "ResumeFromLatest", "latest_checkpoint", "load_state_file"]

logger = logging.getLogger(__name__)


def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}_epoch=(\d+)\.pt$")


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix or "/" in prefix or os.sep in prefix:
        raise ValueError(f"prefix must be a non-empty file name part without '/', got {prefix!r}.")
    return prefix


def latest_checkpoint(save_dir: str | Path, prefix: str = "checkpoint") -> Path | None:
    """Newest complete ``<prefix>_epoch=<n>.pt`` in ``save_dir`` (highest n), or None.

    Temporary files of an interrupted save never match the pattern, so they are ignored.

    Example:
        >>> latest_checkpoint("/nonexistent") is None
        True
    """
    d = Path(save_dir)
    if not d.is_dir():
        return None
    pat = _pattern(_check_prefix(prefix))
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := pat.match(p.name))]
    return max(found)[1] if found else None


def load_state_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file.

    A file whose content needs pickle to load (any object other than tensors, numbers,
    strings and containers of them) is refused: unpickling runs code chosen by whoever wrote
    the file. The error says so plainly and names the object's type when torch reports it;
    torch's own text is not passed on.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable torch file, or it needs pickle (refused).

    Example:
        >>> load_state_file("runs/ckpt/checkpoint_epoch=3.pt")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of the refused file
            return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by cause
        text = str(e)
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", text)
        if found:
            raise ValueError(
                f"checkpoint {str(p)!r} needs pickle to load (it holds a {found.group(1)} object) and was refused: "
                "unpickling can run arbitrary code. Only plain state dicts (tensors, numbers, strings, lists, "
                "dicts) are loaded; save the weights as a state dict."
            ) from None
        op = re.search(r"Unsupported operand (\d+)", text)
        if op or "Weights only load failed" in text:
            what = f"pickle opcode {op.group(1)}" if op else "a pickle instruction"
            raise ValueError(
                f"checkpoint {str(p)!r} is not a readable torch file: the weights-only reader stopped at {what} "
                "(a corrupt file, or one that needs pickle to load); refused."
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else ""
        raise ValueError(f"checkpoint {str(p)!r} is not a readable torch file ({type(e).__name__}: {first}).") from None


def _unwrap(obj: Any) -> Any:
    return obj.module if isinstance(obj, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)) else obj


def _is_rank0() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class AtomicCheckpointSaver:
    """Save ``save_dict`` objects' state every ``save_interval`` epochs, atomically; keep the last ``n_saved``.

    Args:
        save_dir: folder of the checkpoints (created).
        save_dict: name -> object with ``state_dict()`` (network, optimizer, lr scheduler,
            trainer, ...); DataParallel/DDP wrappers are saved unwrapped.
        prefix: file name prefix (``<prefix>_epoch=<n>.pt``).
        n_saved: number of checkpoints kept (older ones are deleted after a successful save).
        save_interval: save every this many epochs (the last epoch is always saved).

    Only rank 0 writes when ``torch.distributed`` is initialised.

    Example:
        >>> AtomicCheckpointSaver("runs/ckpt", {"network": net, "trainer": trainer}).attach(trainer)  # doctest: +SKIP
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: Mapping[str, Any],
        prefix: str = "checkpoint",
        n_saved: int = 1,
        save_interval: int = 1,
    ) -> None:
        if not save_dict:
            raise ValueError("save_dict must name at least one object to save.")
        for k, v in save_dict.items():
            if not hasattr(v, "state_dict"):
                raise TypeError(f"save_dict[{k!r}] has no state_dict() (got {type(v).__name__}).")
        if int(n_saved) < 1:
            raise ValueError(f"n_saved must be >= 1, got {n_saved!r}.")
        if int(save_interval) < 1:
            raise ValueError(f"save_interval must be >= 1, got {save_interval!r}.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.prefix = _check_prefix(prefix)
        self.n_saved = int(n_saved)
        self.save_interval = int(save_interval)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        last = engine.state.max_epochs is not None and epoch >= engine.state.max_epochs
        if epoch % self.save_interval and not last:
            return
        if _is_rank0():
            self.save(epoch)

    def save(self, epoch: int) -> Path:
        """Write the checkpoint of ``epoch`` now; return its path."""
        self.save_dir.mkdir(parents=True, exist_ok=True)
        state = {k: _unwrap(v).state_dict() for k, v in self.save_dict.items()}
        final = self.save_dir / f"{self.prefix}_epoch={epoch}.pt"
        tmp = self.save_dir / f".{final.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        pat = _pattern(self.prefix)
        old = sorted((int(m.group(1)), p) for p in self.save_dir.iterdir() if (m := pat.match(p.name)))
        for _, p in old[: max(0, len(old) - self.n_saved)]:
            p.unlink(missing_ok=True)
        logger.info("saved checkpoint %s", final)
        return final


class ResumeFromLatest:
    """At engine start, load the newest checkpoint in ``load_dir`` (if any) into ``load_dict``.

    The trainer's epoch and iteration come back with it, so ``engine.run`` continues with the
    next epoch; ``max_epochs`` stays as configured (a larger value trains further).

    Args:
        load_dir: folder written by :class:`AtomicCheckpointSaver`.
        load_dict: name -> object with ``load_state_dict`` (same names as when saving).
        prefix: checkpoint file prefix.
        map_location: ``torch.load`` map location.
        enabled: set False to start fresh even when checkpoints exist.

    Raises:
        ValueError: (at start) the checkpoint misses a name of ``load_dict``, needs pickle, or
            its epoch exceeds the engine's ``max_epochs``.
    """

    def __init__(
        self,
        load_dir: str | Path,
        load_dict: Mapping[str, Any],
        prefix: str = "checkpoint",
        map_location: Any = "cpu",
        enabled: bool = True,
    ) -> None:
        if not load_dict:
            raise ValueError("load_dict must name at least one object to restore.")
        self.load_dir = Path(load_dir)
        self.load_dict = dict(load_dict)
        self.prefix = _check_prefix(prefix)
        self.map_location = map_location
        self.enabled = bool(enabled)
        self.loaded_from: Path | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        path = latest_checkpoint(self.load_dir, self.prefix)
        if path is None:
            logger.info("no checkpoint in %s: starting fresh", self.load_dir)
            return
        ckpt = load_state_file(path, self.map_location)
        missing = [k for k in self.load_dict if k not in ckpt]
        if missing:
            raise ValueError(f"checkpoint {str(path)!r} lacks {missing}; it holds {sorted(ckpt)}.")
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load={k: _unwrap(v) for k, v in self.load_dict.items()}, checkpoint=ckpt)
        if max_epochs is not None and engine.state.epoch > max_epochs:
            raise ValueError(
                f"checkpoint {str(path)!r} is at epoch {engine.state.epoch}, beyond max_epochs={max_epochs}; "
                "raise max_epochs to train further."
            )
        engine.state.max_epochs = max_epochs
        self.loaded_from = path
        logger.info("resumed from %s (epoch %d, iteration %d)", path, engine.state.epoch, engine.state.iteration)
