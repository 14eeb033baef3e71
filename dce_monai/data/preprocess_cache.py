"""Preprocess once per case and settings: a disk cache shared by runs, cells, variants and folds.

The bundles cache their deterministic preprocessing (load, registration, masks, subtraction,
scaling, patches) in memory with ``monai.data.CacheDataset``, so every training, validation
and inference pass of a bundle run recomputes it, and ``dce-monai compare-masking`` (3 variants
x k folds x a training and two inference passes) recomputed every lesion ~18 times at k = 3.
:func:`preprocessed_dataset` puts MONAI's ``PersistentDataset`` under the ``CacheDataset``: the
persisted part is written once to ``cache_dir`` as one ``.pt`` file per lesion, and every
later dataset over the same lesion and settings, in this process or another, loads it.

Cache key, per item: ``sha256(item) + sha256(settings)``

- item: the datalist record (paths, ids, label ...) plus the size and modification time of
  every file it names (:func:`item_hash`), so an image replaced under the same path is
  recomputed;
- settings: every attribute of every deterministic transform of the persisted part, read
  recursively (class names, keys, thresholds, sizes, nested transforms; :func:`transform_hash`,
  given to ``PersistentDataset(hash_transform=...)``). MONAI's own ``json_hashing`` falls back to
  the class names alone for transform objects and ``pickle_hashing`` depends on the
  process's string-hash seed for sets, so neither is used.

A changed setting or file gives a new key (the old file is left in place, never served); a
run with the same settings and files finds every item on disk. Files are written to a temporary
file and renamed (``PersistentDataset``), so concurrent processes sharing a folder at worst
compute an item twice.

What is not in the key: the code of the transforms. After upgrading dce_monai or MONAI,
delete the cache folder.

Example:
    >>> ds = preprocessed_dataset(records, pipeline, cache_dir="runs/cmp/preprocess_cache")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, PersistentDataset
from monai.transforms import Compose, RandomizableTrait, Transform

__all__ = ["CACHE_FORMAT", "describe", "item_hash", "preprocessed_dataset", "transform_hash"]

#: Layout version of the cached files; part of every key.
CACHE_FORMAT = 1
_MAX_DEPTH = 12
#: Attributes that hold run-time state, not settings: random states, the files an image reader
#: read last (``ImageReader.filenames``) and MONAI's per-thread tracing flag. Left in, they would
#: change the key of a pipeline after its first call.
_STATE_ATTRS = frozenset({"R", "filenames", "_tracing"})


def describe(obj: Any, _depth: int = 0) -> Any:
    """A JSON-serialisable description of ``obj``'s settings, the same in every process.

    Transforms and other objects: ``{"class": module.qualname, "attrs": {name: describe(value)}}``
    over ``vars(obj)`` (sorted); numbers, strings, ``None`` as themselves; sequences and
    mappings element-wise (sets sorted); arrays and tensors by dtype, shape and the SHA-256 of
    their bytes; functions by their qualified name; other objects without attributes by their
    class name (never ``repr``, which may hold a memory address). Run-time state (random
    states, a reader's last files, thread-locals: :data:`_STATE_ATTRS`) is skipped, so a
    pipeline has the same key before and after it ran.

    Args:
        obj: a transform, a list of transforms or any value.

    Returns:
        Nested lists/dicts of JSON types.

    Example:
        >>> describe([1, (2.5, "a")])
        [1, [2.5, 'a']]
    """
    if _depth > _MAX_DEPTH:
        return f"<depth>{type(obj).__qualname__}"
    d = _depth + 1
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, bytes):
        return {"bytes": hashlib.sha256(obj).hexdigest()}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        a = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        a = np.ascontiguousarray(a)
        return {"array": str(a.dtype), "shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
    if isinstance(obj, Mapping):
        return {str(k): describe(v, d) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (set, frozenset)):
        return sorted((describe(v, d) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, (list, tuple)):
        return [describe(v, d) for v in obj]
    if isinstance(obj, (np.random.RandomState, np.random.Generator, torch.Generator, threading.local)):
        return None
    if isinstance(obj, type) or callable(obj) and not hasattr(obj, "__dict__"):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    attrs = getattr(obj, "__dict__", None)
    if attrs is None:
        return name
    if callable(obj) and not isinstance(obj, Transform) and hasattr(obj, "__code__"):  # plain functions, lambdas
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    return {"class": name, "attrs": {k: describe(v, d) for k, v in sorted(attrs.items()) if k not in _STATE_ATTRS}}


def transform_hash(transforms: Any) -> bytes:
    """SHA-256 (hex, bytes) of :func:`describe` of ``transforms`` and :data:`CACHE_FORMAT`.

    The ``hash_transform`` of ``PersistentDataset``: it receives the deterministic transforms
    of the persisted part (up to the first random one).

    Example:
        >>> from monai.transforms import ScaleIntensityd
        >>> transform_hash([ScaleIntensityd("a", minv=0.0)]) != transform_hash([ScaleIntensityd("a", minv=1.0)])
        True
    """
    text = json.dumps({"format": CACHE_FORMAT, "transforms": describe(transforms)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest().encode()


def _file_stats(value: Any, out: dict[str, list[int]]) -> None:
    if isinstance(value, (str, os.PathLike)):
        p = os.fspath(value)
        if os.path.isfile(p):
            st = os.stat(p)
            out[p] = [int(st.st_size), int(st.st_mtime_ns)]
    elif isinstance(value, Mapping):
        for v in value.values():
            _file_stats(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _file_stats(v, out)


def item_hash(item: Any) -> bytes:
    """SHA-256 (hex, bytes) of a datalist record and the size and mtime of every file it names.

    Example:
        >>> item_hash({"patient_id": "p0", "T1pre": "/no/such/file.nii.gz"}) == item_hash({"patient_id": "p0", "T1pre": "/no/such/file.nii.gz"})
        True
    """
    stats: dict[str, list[int]] = {}
    _file_stats(item, stats)
    text = json.dumps({"item": describe(item), "files": stats}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest().encode()


def preprocessed_dataset(
    data: Sequence[Any],
    transform: Callable | Sequence[Callable],
    cache_dir: str | Path | None = None,
    cache_rate: float = 1.0,
    num_workers: int | None = 0,
) -> CacheDataset:
    """``CacheDataset(data, transform)`` whose deterministic part is also kept on disk in ``cache_dir``.

    ``transform`` is flattened (``CacheDataset`` and ``PersistentDataset`` stop at a nested
    ``Compose``); its transforms up to the first random one are computed once per item and
    settings and stored in ``cache_dir`` (``PersistentDataset`` keyed by :func:`item_hash` and
    :func:`transform_hash`); the rest runs on top, as in ``CacheDataset``. Items are also held in
    memory, as before.

    Args:
        data: datalist (one record per lesion or patient).
        transform: the pipeline (a ``Compose`` or a list of transforms).
        cache_dir: folder of the persistent cache (created if absent); ``None``: no disk cache,
            the dataset is exactly ``CacheDataset(data, flattened transform)``.
        cache_rate: share of items cached in memory (``CacheDataset``).
        num_workers: threads filling the memory cache (``CacheDataset``).

    Returns:
        A ``monai.data.CacheDataset``.

    Raises:
        ValueError: ``cache_dir`` exists and is not a folder.

    Example:
        >>> ds = preprocessed_dataset(records, pipeline, cache_dir="runs/cmp/preprocess_cache")  # doctest: +SKIP
    """
    t = transform if isinstance(transform, Compose) else Compose(list(transform) if isinstance(transform, Sequence) else [transform])
    flat = t.flatten()
    if cache_dir is None:
        return CacheDataset(data, flat, cache_rate=cache_rate, num_workers=num_workers)
    cache_dir = Path(cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ValueError(f"cache_dir {str(cache_dir)!r} exists and is not a folder.")
    n = flat.get_index_of_first(lambda x: isinstance(x, RandomizableTrait) or not isinstance(x, Transform))
    n = len(flat.transforms) if n is None else n
    # weights_only=False: the cached items are MetaTensors, which torch's safe loader refuses
    # (MONAI then takes every file for corrupt and recomputes it); the folder is the run's own output
    disk = PersistentDataset(list(data), Compose(flat.transforms[:n]), cache_dir=cache_dir, hash_func=item_hash,
                             hash_transform=transform_hash, track_meta=True, weights_only=False)
    return CacheDataset(disk, Compose(flat.transforms[n:]), cache_rate=cache_rate, num_workers=num_workers)
