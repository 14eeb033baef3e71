"""Crash-safe training checkpoints and exact resume-from-latest for ignite engines.

A run killed at any moment (SIGKILL mid-epoch, or while a checkpoint is being written) and
restarted with the same command continues from the last complete checkpoint, and — when the
checkpoint holds every state listed below — ends with the same weights and metrics, bit for
bit on CPU, as a run that was never interrupted:

- :class:`AtomicCheckpointSaver` writes ``<save_dir>/<prefix>_epoch=<n>.pt`` through a
  temporary file in the same folder, flushed to disk and then renamed over the final name
  (``os.replace`` is atomic on POSIX and Windows), so a half-written file never carries the
  final name; it keeps the ``n_saved`` newest (default 2) and removes stale temporary files
  left by a killed save. MONAI's ``CheckpointSaver`` writes in place (ignite
  ``DiskSaver(atomic=False)``), which is why this handler exists.
- :class:`ResumeFromLatest` loads the newest readable checkpoint when the engine starts
  (falling back to the previous one, with a warning naming the file, when the newest cannot
  be read), restoring epoch and iteration counts; it does nothing on a fresh run.
- :class:`RandomStates` makes the random number generators checkpointable: Python
  ``random``, numpy's global generator, torch's CPU (and CUDA) generators, and every
  per-instance generator inside the data pipelines (MONAI ``Randomizable`` transforms'
  ``RandomState``, ``DataLoader``/sampler ``torch.Generator``).

Checkpoints are taken at epoch ends. A run killed mid-epoch resumes from the end of the
last saved epoch and replays the interrupted epoch: since the random states at that point
are restored, the replay draws the same augmentations, shuffling and dropout masks as the
original would have.

What else a checkpoint must hold for an exact continuation is named in ``save_dict``:
the network, the optimizer, the lr scheduler, the trainer (epoch, iteration), the evaluator
(ignite engines that are MONAI workflows also save ``best_metric`` and
``best_metric_epoch``) and MONAI's best-model ``CheckpointSaver`` (its key-metric record,
so that a resumed run replaces ``model.pt`` only with a better model).

Checkpoints are plain state dicts and are always read with ``torch.load(weights_only=True)``:
a file that needs pickle to load (arbitrary code) is refused.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import types
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

__all__ = [
    "AtomicCheckpointSaver", "RandomStates", "ResumeFromLatest", "checkpoints", "latest_checkpoint", "load_state_file",
    "remove_stale_tmp",
]

logger = logging.getLogger(__name__)

#: ignite engine state fields that MONAI workflows (trainers, evaluators) keep across epochs.
BEST_METRIC_KEYS = ("best_metric", "best_metric_epoch")


def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}_epoch=(\d+)\.pt$")


def _tmp_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(prefix)}_epoch=\d+\.pt\.(\d+)\.tmp$")


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix or "/" in prefix or os.sep in prefix:
        raise ValueError(f"prefix must be a non-empty file name part without '/', got {prefix!r}.")
    return prefix


def checkpoints(save_dir: str | Path, prefix: str = "checkpoint") -> list[Path]:
    """Complete ``<prefix>_epoch=<n>.pt`` files in ``save_dir``, newest (highest n) first.

    Temporary files of an interrupted save never match the pattern, so they are ignored.

    Example:
        >>> checkpoints("/nonexistent")
        []
    """
    d = Path(save_dir)
    if not d.is_dir():
        return []
    pat = _pattern(_check_prefix(prefix))
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := pat.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_checkpoint(save_dir: str | Path, prefix: str = "checkpoint") -> Path | None:
    """Newest complete ``<prefix>_epoch=<n>.pt`` in ``save_dir`` (highest n), or None.

    Example:
        >>> latest_checkpoint("/nonexistent") is None
        True
    """
    found = checkpoints(save_dir, prefix)
    return found[0] if found else None


def remove_stale_tmp(save_dir: str | Path, prefix: str = "checkpoint") -> list[Path]:
    """Delete temporary files that a killed save left in ``save_dir`` (not this process's own).

    Returns:
        The removed paths (each is logged).
    """
    d = Path(save_dir)
    if not d.is_dir():
        return []
    pat = _tmp_pattern(_check_prefix(prefix))
    removed = []
    for p in sorted(d.iterdir()):
        m = pat.match(p.name)
        if m and int(m.group(1)) != os.getpid():
            p.unlink(missing_ok=True)
            removed.append(p)
            logger.info("removed %s, left by an interrupted checkpoint save", p)
    return removed


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


def _plain(value: Any) -> Any:
    """Values ``torch.load(weights_only=True)`` reads back: numpy scalars/arrays become Python numbers/tensors."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, Mapping):
        items = [(k, _plain(v)) for k, v in value.items()]
        out = OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
        if hasattr(value, "_metadata"):  # torch module state dicts carry per-module versions
            out._metadata = value._metadata  # type: ignore[union-attr]
        return out
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value) if type(value) is tuple else [_plain(v) for v in value]
    return value


def _is_monai_checkpoint_saver(obj: Any) -> bool:
    from monai.handlers import CheckpointSaver

    return isinstance(obj, CheckpointSaver)


def _check_object(name: str, obj: Any, method: str) -> None:
    obj = _unwrap(obj)
    if _is_monai_checkpoint_saver(obj):
        if getattr(obj, "_key_metric_checkpoint", None) is None:
            raise ValueError(f"{name} is a MONAI CheckpointSaver without save_key_metric=True; it has no state to checkpoint.")
        return
    if not hasattr(obj, method):
        raise TypeError(f"{name} has no {method}() (got {type(obj).__name__}).")


def _track_best_metric(obj: Any) -> None:
    """Make an ignite engine that is a MONAI workflow save and load its best metric and epoch."""
    if isinstance(obj, Engine) and all(hasattr(obj.state, k) for k in BEST_METRIC_KEYS):
        for k in BEST_METRIC_KEYS:
            if k not in obj.state_dict_user_keys:
                obj.state_dict_user_keys.append(k)


def _state_dict(obj: Any) -> Any:
    obj = _unwrap(obj)
    if _is_monai_checkpoint_saver(obj):
        # MONAI's CheckpointSaver restores its key-metric record with load_state_dict() but has no
        # state_dict(); the record is its ignite Checkpoint's state: [(score, file name)].
        return _plain(dict(obj._key_metric_checkpoint.state_dict()))
    return _plain(obj.state_dict())


class RandomStates:
    """Checkpointable random number generators: global ones and those inside data pipelines.

    ``state_dict()`` captures Python ``random``, numpy's global ``RandomState``, torch's CPU
    generator (and CUDA generators when CUDA is initialised) and every generator reachable
    from ``objects``: ``numpy.random.RandomState`` (MONAI ``Randomizable.R``),
    ``numpy.random.Generator``, ``random.Random`` and ``torch.Generator`` (``DataLoader`` and
    sampler ``generator``). They are found by walking the objects' attributes, lists and dicts
    (as MONAI's ``set_rnd`` does to seed them), so a ``DataLoader`` finds its dataset's
    transforms, their ``Compose`` children and cached datasets nested in datasets.
    ``load_state_dict()`` puts every generator back to the saved state. Hand-written because
    ignite and MONAI checkpoint objects with ``state_dict()`` but neither offers one for RNGs.

    Data loader workers draw their seeds from the loader's generator (or torch's global one)
    each epoch, and MONAI's ``worker_init_fn`` seeds the workers' transforms from it, so
    restoring the main process's generators also reproduces multi-worker loading; persistent
    workers keep transform states across epochs in other processes and are refused.

    Args:
        objects: name -> object to search for per-instance generators (data loaders, datasets,
            transforms); ``None`` for the global generators only.

    Raises:
        ValueError: a data loader with ``persistent_workers=True`` and ``num_workers > 0``.

    Example:
        >>> rng = RandomStates({"train": train_loader})  # doctest: +SKIP
        >>> AtomicCheckpointSaver("ckpt", {"network": net, "trainer": trainer, "random_states": rng})  # doctest: +SKIP
    """

    def __init__(self, objects: Mapping[str, Any] | None = None) -> None:
        self.objects = dict(objects or {})
        for name, obj in self.objects.items():
            for path, o in _walk_objects(obj, name):
                if isinstance(o, torch.utils.data.DataLoader) and o.num_workers > 0 and getattr(o, "persistent_workers", False):
                    raise ValueError(
                        f"{path}: persistent_workers=True keeps the workers' transform random states in other "
                        "processes, where a checkpoint cannot read them; use persistent_workers=False for exact resume."
                    )

    def generators(self) -> dict[str, Any]:
        """Name (attribute path) -> generator object reachable from ``objects``, in a fixed order."""
        out: dict[str, Any] = {}
        seen: set[int] = set()
        for name, obj in self.objects.items():
            for path, o in _walk_objects(obj, name):
                if isinstance(o, _GENERATOR_TYPES) and id(o) not in seen:
                    seen.add(id(o))
                    out[path] = o
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": _python_state(random.getstate()),
            "numpy": _numpy_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "objects": {k: _generator_state(g) for k, g in self.generators().items()},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in ("python", "numpy", "torch", "objects") if k not in state]
        if missing:
            raise ValueError(f"random states lack {missing}; they hold {sorted(state)}.")
        gens = self.generators()
        saved = state["objects"]
        if set(gens) != set(saved):
            raise ValueError(
                "the data pipelines' random generators differ from the checkpoint's: "
                f"not in the checkpoint {sorted(set(gens) - set(saved))}, only in the checkpoint "
                f"{sorted(set(saved) - set(gens))}; resume with the configuration that wrote it."
            )
        random.setstate(_python_tuple(state["python"]))
        np.random.set_state(_numpy_tuple(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if "torch_cuda" in state and torch.cuda.is_available():
            cuda = list(state["torch_cuda"])
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
            else:
                logger.warning("checkpoint holds %d CUDA generator states but %d devices are visible; CUDA "
                               "generators not restored", len(cuda), torch.cuda.device_count())
        for k, g in gens.items():
            _set_generator_state(g, saved[k])


_GENERATOR_TYPES = (np.random.RandomState, np.random.Generator, random.Random, torch.Generator)
_LEAF_TYPES = (str, bytes, int, float, complex, bool, type(None), torch.Tensor, np.ndarray, np.generic, Path,
               types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type, torch.nn.Module)


def _walk_objects(obj: Any, path: str, max_depth: int = 32) -> Iterator[tuple[str, Any]]:
    """Depth-first (path, object) pairs of ``obj`` and what its attributes, lists and dicts hold."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [(path, obj, 0)]
    while stack:
        p, o, depth = stack.pop()
        if id(o) in seen or isinstance(o, _LEAF_TYPES) or depth > max_depth:
            continue
        seen.add(id(o))
        yield p, o
        if isinstance(o, _GENERATOR_TYPES):
            continue
        if isinstance(o, Mapping):
            children = [(f"{p}[{k!r}]", v) for k, v in o.items()]
        elif isinstance(o, (list, tuple)):
            children = [(f"{p}[{i}]", v) for i, v in enumerate(o)]
        elif hasattr(o, "__dict__") and isinstance(vars(o), dict):
            children = [(f"{p}.{k}", v) for k, v in vars(o).items() if not k.startswith("__")]
        else:
            continue
        stack.extend((cp, c, depth + 1) for cp, c in reversed(children))


def _python_state(st: tuple) -> dict[str, Any]:
    version, internal, gauss_next = st
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next}


def _python_tuple(st: Mapping[str, Any]) -> tuple:
    return (int(st["version"]), tuple(int(v) for v in st["internal"].tolist()), st["gauss_next"])


def _numpy_state(st: tuple) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = st
    return {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _numpy_tuple(st: Mapping[str, Any]) -> tuple:
    return (st["name"], st["keys"].numpy().astype(np.uint32), int(st["pos"]), int(st["has_gauss"]), float(st["cached_gaussian"]))


def _generator_state(g: Any) -> dict[str, Any]:
    if isinstance(g, np.random.RandomState):
        return {"kind": "numpy_random_state", "state": _numpy_state(g.get_state(legacy=True))}
    if isinstance(g, np.random.Generator):  # bit-generator states hold 128-bit integers: kept as JSON text
        return {"kind": "numpy_generator", "state": json.dumps(g.bit_generator.state)}
    if isinstance(g, random.Random):
        return {"kind": "python_random", "state": _python_state(g.getstate())}
    return {"kind": "torch_generator", "state": g.get_state()}


def _set_generator_state(g: Any, saved: Mapping[str, Any]) -> None:
    kind = {np.random.RandomState: "numpy_random_state", np.random.Generator: "numpy_generator",
            random.Random: "python_random", torch.Generator: "torch_generator"}
    expected = next(v for t, v in kind.items() if isinstance(g, t))
    if saved.get("kind") != expected:
        raise ValueError(f"random state kind {saved.get('kind')!r} in the checkpoint, but the object is a {type(g).__name__}.")
    if expected == "numpy_random_state":
        g.set_state(_numpy_tuple(saved["state"]))
    elif expected == "numpy_generator":
        g.bit_generator.state = json.loads(saved["state"])
    elif expected == "python_random":
        g.setstate(_python_tuple(saved["state"]))
    else:
        g.set_state(saved["state"])


class AtomicCheckpointSaver:
    """Save ``save_dict`` objects' state every ``save_interval`` epochs, atomically; keep the last ``n_saved``.

    Attach it after every other epoch-end handler of the engine (the bundles do so in ``run``):
    the checkpoint then records the state after validation, best-model saving and lr
    scheduling, which is where an uninterrupted run continues from.

    Args:
        save_dir: folder of the checkpoints (created).
        save_dict: name -> object with ``state_dict()`` (network, optimizer, lr scheduler,
            trainer, evaluator, :class:`RandomStates`, ...) or a MONAI ``CheckpointSaver`` with
            ``save_key_metric=True``; DataParallel/DDP wrappers are saved unwrapped; ignite
            engines that are MONAI workflows also save ``best_metric`` and ``best_metric_epoch``.
        prefix: file name prefix (``<prefix>_epoch=<n>.pt``).
        n_saved: number of checkpoints kept (older ones are deleted after a successful save);
            2 leaves a previous one to fall back to if the newest is damaged.
        save_interval: save every this many epochs (the last epoch is always saved).

    Only rank 0 writes when ``torch.distributed`` is initialised.

    Raises:
        ValueError: empty ``save_dict``, ``n_saved`` or ``save_interval`` below 1, a bad prefix,
            or a MONAI ``CheckpointSaver`` that does not track a key metric.
        TypeError: an object without ``state_dict()``.

    Example:
        >>> AtomicCheckpointSaver("runs/ckpt", {"network": net, "trainer": trainer}).attach(trainer)  # doctest: +SKIP
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: Mapping[str, Any],
        prefix: str = "checkpoint",
        n_saved: int = 2,
        save_interval: int = 1,
    ) -> None:
        if not save_dict:
            raise ValueError("save_dict must name at least one object to save.")
        for k, v in save_dict.items():
            _check_object(f"save_dict[{k!r}]", v, "state_dict")
        if int(n_saved) < 1:
            raise ValueError(f"n_saved must be >= 1, got {n_saved!r}.")
        if int(save_interval) < 1:
            raise ValueError(f"save_interval must be >= 1, got {save_interval!r}.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        for v in self.save_dict.values():
            _track_best_metric(_unwrap(v))
        self.prefix = _check_prefix(prefix)
        self.n_saved = int(n_saved)
        self.save_interval = int(save_interval)
        self._cleaned = False

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
        if not self._cleaned:
            remove_stale_tmp(self.save_dir, self.prefix)
            self._cleaned = True
        state = {k: _state_dict(v) for k, v in self.save_dict.items()}
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
        for p in checkpoints(self.save_dir, self.prefix)[self.n_saved :]:
            p.unlink(missing_ok=True)
        logger.info("saved checkpoint %s", final)
        return final


class ResumeFromLatest:
    """At engine start, load the newest readable checkpoint in ``load_dir`` (if any) into ``load_dict``.

    The trainer's epoch and iteration come back with it, so ``engine.run`` continues with the
    next epoch; ``max_epochs`` stays as configured (a larger value trains further). When the
    newest checkpoint cannot be read (truncated, corrupt, or needing pickle), a warning names
    it and the previous one is tried. Stale temporary files of interrupted saves are removed.

    Args:
        load_dir: folder written by :class:`AtomicCheckpointSaver`.
        load_dict: name -> object with ``load_state_dict`` (same names as when saving).
        prefix: checkpoint file prefix.
        map_location: ``torch.load`` map location.
        enabled: set False to start fresh even when checkpoints exist.

    Raises:
        ValueError: (at start) no checkpoint in ``load_dir`` can be read, the one read misses a
            name of ``load_dict`` or a state the objects need, or its epoch exceeds the
            engine's ``max_epochs``.
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
        for k, v in load_dict.items():
            _check_object(f"load_dict[{k!r}]", v, "load_state_dict")
        self.load_dir = Path(load_dir)
        self.load_dict = dict(load_dict)
        for v in self.load_dict.values():
            _track_best_metric(_unwrap(v))
        self.prefix = _check_prefix(prefix)
        self.map_location = map_location
        self.enabled = bool(enabled)
        self.loaded_from: Path | None = None
        self.skipped: list[Path] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def _read_newest(self) -> tuple[Path, Any] | None:
        found = checkpoints(self.load_dir, self.prefix)
        if not found:
            return None
        problems = []
        for i, path in enumerate(found):
            try:
                return path, load_state_file(path, self.map_location)
            except ValueError as e:
                problems.append(str(e))
                self.skipped.append(path)
                nxt = found[i + 1].name if i + 1 < len(found) else None
                logger.warning("cannot resume from %s: %s; %s", path, str(e).rstrip("."),
                               f"falling back to {nxt}" if nxt else "no older checkpoint left")
        raise ValueError(f"no readable checkpoint in {str(self.load_dir)!r}: " + " | ".join(problems)
                         + " Remove them, or pass --resume false to start afresh.")

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        remove_stale_tmp(self.load_dir, self.prefix)
        read = self._read_newest()
        if read is None:
            logger.info("no checkpoint in %s: starting fresh", self.load_dir)
            return
        path, ckpt = read
        missing = [k for k in self.load_dict if k not in ckpt]
        if missing:
            raise ValueError(f"checkpoint {str(path)!r} lacks {missing}; it holds {sorted(ckpt)}.")
        max_epochs = engine.state.max_epochs
        try:
            Checkpoint.load_objects(to_load={k: _unwrap(v) for k, v in self.load_dict.items()}, checkpoint=ckpt)
        except (KeyError, ValueError, RuntimeError) as e:
            raise ValueError(f"checkpoint {str(path)!r} does not fit the objects to restore: {e}") from e
        if max_epochs is not None and engine.state.epoch > max_epochs:
            raise ValueError(
                f"checkpoint {str(path)!r} is at epoch {engine.state.epoch}, beyond max_epochs={max_epochs}; "
                "raise max_epochs to train further."
            )
        engine.state.max_epochs = max_epochs
        self.loaded_from = path
        logger.info("resumed from %s (epoch %d, iteration %d)", path, engine.state.epoch, engine.state.iteration)
