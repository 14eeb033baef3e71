"""A one-time cache of seed 1's 2D lesion patches with every channel a search compares.

Seed 1 compares all 35 channel triplets in 10-fold cross-validation: 350 trainings on the
same patches. Re-running the file pipeline (load, register, subtract, scale, cut patches) for
every triplet and every fold repeats the same work 350 times. :func:`build_patch_cache` runs
it ONCE per manifest and stores every patch with all requested channels as one tensor
``(N_patches, C, H, W)``; a triplet is then an index into the channel axis.

The pipeline is not defined here: the caller passes the per-lesion transform, which for the
channel search is the seed 1 bundle's own ``preprocessing`` (``train.json``: load, register,
subtract, scale, select the channels, cut the lesion's patches) with ``channels`` set to the
searched channels. So the patches a search cell trains on are the patches the bundle trains
on, value for value.

Patches keep their native size (50x50 by default); resizing to the network input (224)
happens on the device during training (:class:`~dce_monai.engines.prepare_batch.PatchBatch`),
so the cache stays small (seed 1's 1881 patches x 7 channels: 132 MB in float32).

The cache file is named by a SHA-256 key over the manifest's patient entries, the size and
modification time of every image it names, the caller's transform key and the settings, so
it is reused as long as nothing changes and rebuilt (under a new name) as soon as anything does.

Reference: Haarburger et al., BVM 2018, seed 1 (2D axial 50x50 patches, seven channels).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.data import Dataset
from monai.utils import look_up_option

from dce_monai.data.folds import fold_split
from dce_monai.data.manifest import Manifest, load_manifest
from dce_monai.sequences import SEQUENCES, source_sequences, validate_sequence_names

__all__ = [
    "CACHE_FORMAT", "PATCH_KEYS", "PatchCache", "PatchCacheDataset", "PatchDataset", "build_patch_cache", "cache_key", "files_needed", "get_patch_cache", "load_patch_cache",
]

logger = logging.getLogger(__name__)

#: Version of the cache file layout; part of the key, so a layout change rebuilds caches.
CACHE_FORMAT = 2
_DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass
class PatchCache:
    """All patches of a cohort, every channel, plus per-patch identifiers.

    Attributes:
        images: ``(N, C, H, W)`` tensor (float16 or float32), channels in ``channel_names`` order.
        channel_names: names of the C channels (canonical order).
        labels: ``(N,)`` int64 class label of each patch's lesion.
        lesion_ids: lesion id of each patch.
        patient_ids: patient id of each patch.
        slice_index: ``(N,)`` int64 axial slice each patch was cut from.
        skipped_lesions: lesions without any patch (all slices touched another lesion).
        settings: the settings the cache was built with.
        key: the cache key (hex).
        path: file the cache was read from / written to.
    """

    images: torch.Tensor
    channel_names: list[str]
    labels: torch.Tensor
    lesion_ids: list[str]
    patient_ids: list[str]
    slice_index: torch.Tensor
    skipped_lesions: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def channel_index(self, names: Sequence[str]) -> list[int]:
        """Positions of ``names`` in the channel axis.

        Raises:
            ValueError: a name not in the cache (the cached channels are listed).

        Example:
            >>> cache.channel_index(("T1pre", "T1post3", "sub"))  # doctest: +SKIP
            [1, 4, 6]
        """
        missing = [n for n in names if n not in self.channel_names]
        if missing:
            raise ValueError(f"channel(s) {missing} not in the patch cache; cached channels: {self.channel_names}.")
        return [self.channel_names.index(n) for n in names]

    def lesion_table(self) -> list[dict[str, Any]]:
        """One record per lesion (first-seen order): ``patient_id``, ``lesion_id``, ``label``, ``n_patches``."""
        out: dict[str, dict[str, Any]] = {}
        for lid, pid, y in zip(self.lesion_ids, self.patient_ids, self.labels.tolist()):
            if lid not in out:
                out[lid] = {"patient_id": pid, "lesion_id": lid, "label": int(y), "n_patches": 0}
            out[lid]["n_patches"] += 1
        return list(out.values())


def _settings(sequences: Sequence[str], transform_key: str, dtype: str, label: str) -> dict[str, Any]:
    seqs = validate_sequence_names(sequences, "sequences")
    if not isinstance(transform_key, str) or not transform_key:
        raise ValueError(f"transform_key must name the per-lesion transform's settings (a non-empty string), got {transform_key!r}.")
    dtype = look_up_option(dtype, tuple(_DTYPES))
    return {"format": CACHE_FORMAT, "sequences": list(seqs), "transform": transform_key, "dtype": dtype, "label": label}


def files_needed(seqs: Sequence[str]) -> list[str]:
    """Files to load for ``seqs`` (see :func:`dce_monai.sequences.source_sequences`)."""
    return source_sequences(seqs)


def cache_key(manifest: Manifest, settings: dict[str, Any]) -> str:
    """SHA-256 over the manifest's patients, the stats of every referenced image and the settings.

    Formula: ``sha256(json({manifest: sha256(json(root, patients)), files: [(path, size, mtime_ns)], settings}))``.
    The patients entries (ids, labels, lesions, paths) are hashed rather than the file bytes,
    so a manifest narrowed with ``Manifest.select`` gets its own cache.

    Args:
        manifest: loaded manifest.
        settings: the cache settings.

    Returns:
        64 hex digits.
    """
    h = hashlib.sha256(json.dumps({"root": str(manifest.root), "patients": manifest.patients}, sort_keys=True, default=str).encode()).hexdigest()
    files = []
    for p in manifest.patients:
        exam = p["exam"]
        rels = list(exam["sequences"].values()) + [exam[k] for k in ("label_map", "breast_mask") if k in exam]
        rels += [les["mask"] for les in p.get("lesions", []) if "mask" in les]
        for rel in rels:
            f = Path(manifest.resolve(rel))
            st = f.stat() if f.exists() else None
            files.append([rel, st.st_size if st else -1, st.st_mtime_ns if st else -1])
    blob = json.dumps({"manifest": h, "files": files, "settings": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def build_patch_cache(
    manifest: str | Path | Manifest,
    cache_dir: str | Path,
    lesion_transform: Callable[[dict[str, Any]], Any],
    transform_key: str,
    sequences: Sequence[str] = SEQUENCES,
    dtype: str = "float32",
    label: str | None = None,
    progress: bool = True,
) -> Path:
    """Run a per-lesion patch pipeline over a whole manifest once and write the cache file.

    Args:
        manifest: manifest path or loaded :class:`~dce_monai.data.manifest.Manifest`.
        cache_dir: folder of the cache file ``patches_<key[:16]>.pt`` (created).
        lesion_transform: maps a lesion datalist record (``Manifest.to_datalist(level="lesion")``)
            to the lesion's list of patch dicts, each with ``image`` ``(C, H, W)`` holding
            ``sequences`` in this order and ``slice_index`` (e.g. the seed 1 bundle's
            ``preprocessing``, ending in :class:`~dce_monai.transforms.LesionPatchesd`).
        transform_key: a string that changes whenever ``lesion_transform`` would give other
            patches (e.g. a hash of its configuration); part of the cache key.
        sequences: the channels the transform stacks, canonical names and order.
        dtype: ``"float32"`` (the values the bundle trains on) or ``"float16"`` (half the
            memory; ~1e-3 relative precision).
        label: lesion target (default: the manifest's target; see ``Manifest.to_datalist``).
        progress: tqdm progress bar over lesions.

    Returns:
        Path of the written cache file.

    Raises:
        ValueError: bad settings; an image of the wrong channel count; no lesion yields a patch.
        FileNotFoundError: the manifest does not exist.

    Example:
        >>> path = build_patch_cache("cohort/manifest.json", "cache", preprocessing, "train.json:3f2a")  # doctest: +SKIP
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    label = m.target if label is None else label
    st = _settings(sequences, transform_key, dtype, label)
    key = cache_key(m, st)
    out_dir = Path(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"patches_{key[:16]}.pt"
    seqs = st["sequences"]
    datalist = m.to_datalist(level="lesion", label=label)
    need = files_needed(seqs)
    for rec in datalist:
        lacking = [q for q in need if q not in rec]
        if lacking:
            raise ValueError(f"patient {rec['patient_id']!r} has no {lacking} in {m.path}; the cache of channels {seqs} needs {need} for every patient.")
    from tqdm.auto import tqdm

    images: list[torch.Tensor] = []
    labels: list[int] = []
    lids: list[str] = []
    pids: list[str] = []
    zs: list[int] = []
    skipped: list[str] = []
    for rec in tqdm(datalist, desc="patch cache", unit="lesion", disable=not progress):
        patches = lesion_transform(dict(rec))
        patches = [patches] if isinstance(patches, dict) else list(patches)
        if not patches:
            skipped.append(str(rec["lesion_id"]))
            continue
        for p in patches:
            img = torch.as_tensor(p["image"])
            img = img.as_tensor() if hasattr(img, "as_tensor") else img
            if img.ndim != 3 or img.shape[0] != len(seqs):
                raise ValueError(f"lesion {rec['lesion_id']!r}: the transform gave an image of shape {tuple(img.shape)}; expected ({len(seqs)}, H, W) for channels {seqs}.")
            images.append(img.to(_DTYPES[st["dtype"]]))
            labels.append(int(rec["label"]))
            lids.append(str(rec["lesion_id"]))
            pids.append(str(rec["patient_id"]))
            zs.append(int(p.get("slice_index", -1)))
    if skipped:
        logger.warning("%d lesion(s) have no patch (every slice touches another lesion) and are left out: %s", len(skipped), skipped)
    if not images:
        raise ValueError(f"{m.path}: no lesion produced a patch ({len(datalist)} lesions, {len(skipped)} without a patch).")
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise ValueError(f"{m.path}: patches differ in shape {sorted(shapes)}; with a patch size in mm the spacing differs between patients, use a size in voxels.")
    payload = {
        "images": torch.stack(images),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "slice_index": torch.tensor(zs, dtype=torch.int64),
        "lesion_ids": lids,
        "patient_ids": pids,
        "channel_names": list(seqs),
        "skipped_lesions": skipped,
        "settings_json": json.dumps(st, sort_keys=True),
        "key": key,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_patch_cache(path: str | Path) -> PatchCache:
    """Read a cache file written by :func:`build_patch_cache` (``weights_only=True``: no pickle).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a patch cache of this format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"patch cache not found: {path}")
    try:
        p = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated files raise several error types
        raise ValueError(f"{path}: not a readable patch cache ({type(e).__name__}: {e}); delete it to rebuild.") from None
    need = ("images", "labels", "slice_index", "lesion_ids", "patient_ids", "channel_names", "settings_json", "key")
    if not isinstance(p, dict) or any(k not in p for k in need):
        raise ValueError(f"{path}: not a patch cache of format {CACHE_FORMAT} (missing entries); delete it to rebuild.")
    return PatchCache(
        images=p["images"], channel_names=list(p["channel_names"]), labels=p["labels"], lesion_ids=list(p["lesion_ids"]),
        patient_ids=list(p["patient_ids"]), slice_index=p["slice_index"], skipped_lesions=list(p.get("skipped_lesions", [])),
        settings=json.loads(p["settings_json"]), key=str(p["key"]), path=path,
    )


def get_patch_cache(
    manifest: str | Path | Manifest,
    cache_dir: str | Path,
    lesion_transform: Callable[[dict[str, Any]], Any],
    transform_key: str,
    sequences: Sequence[str] = SEQUENCES,
    dtype: str = "float32",
    label: str | None = None,
    progress: bool = True,
) -> PatchCache:
    """The cache for this manifest, transform and settings: read when present, built otherwise.

    Same arguments as :func:`build_patch_cache`. A cache file that cannot be read (e.g. a
    killed build) is rebuilt.

    Example:
        >>> cache = get_patch_cache("cohort/manifest.json", "out/cache", preprocessing, key)  # doctest: +SKIP
        >>> cache.images.shape  # (N, 7, 50, 50)  # doctest: +SKIP
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    label = m.target if label is None else label
    st = _settings(sequences, transform_key, dtype, label)
    path = Path(cache_dir) / f"patches_{cache_key(m, st)[:16]}.pt"
    if path.is_file():
        try:
            return load_patch_cache(path)
        except ValueError as e:
            logger.warning("rebuilding the patch cache: %s", e)
    path = build_patch_cache(m, cache_dir, lesion_transform, transform_key, sequences, dtype, label, progress)
    return load_patch_cache(path)


class PatchCacheDataset(Dataset):
    """The patches of one split of one fold of a :class:`PatchCache`, as MONAI dataset items.

    Items are ``{"image": (C, H, W) float32, "label", "lesion_id", "patient_id", "slice_index"}``
    in cache order (lesions in manifest order, then slices): the order in which the bundle's
    ``PatchDataset`` lists the same split's patches, so a data loader draws the same batches.

    Args:
        cache: a loaded cache or the path of a cache file.
        folds: patient ids per fold (``read_folds``), or a folds file path.
        fold: the held-out fold.
        split: ``"train"`` (every other fold) or ``"test"`` (the held-out fold).
        device: where the images are kept (e.g. ``"cuda"``: moved once, batches are then
            assembled on the device); None: where they are.

    Raises:
        ValueError: an unknown split, ``fold`` out of range, or an empty split (named).

    Example:
        >>> ds = PatchCacheDataset("out/cache/patches_ab12.pt", "out/folds.json", fold=0, split="train")  # doctest: +SKIP
    """

    def __init__(self, cache: PatchCache | str | Path, folds: Sequence[Sequence[str]] | str | Path, fold: int, split: str = "train",
                 device: str | torch.device | None = None) -> None:
        from dce_monai.data.folds import read_folds

        c = cache if isinstance(cache, PatchCache) else load_patch_cache(cache)
        fl = read_folds(folds) if isinstance(folds, (str, Path)) else [list(f) for f in folds]
        split = look_up_option(split, ("train", "test"))
        records = [{"patient_id": p, "i": i} for i, p in enumerate(c.patient_ids)]
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(fl):
            raise ValueError(f"fold must be in [0, {len(fl)}), got {fold!r}.")
        idx = [r["i"] for r in fold_split(records, fl, fold)[split]]
        if not idx:
            raise ValueError(f"split {split!r} of fold {fold} holds no patch of the cache {c.path}.")
        self.cache, self.index = c, torch.as_tensor(idx, dtype=torch.long)
        images = c.images.index_select(0, self.index)
        self.images = images.to(device) if device is not None else images
        self.labels = c.labels.index_select(0, self.index)
        super().__init__(data=idx)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        j = int(self.index[i])
        c = self.cache
        return {"image": self.images[i].float(), "label": self.labels[i], "lesion_id": c.lesion_ids[j],
                "patient_id": c.patient_ids[j], "slice_index": c.slice_index[j]}


PATCH_KEYS = ("image", "label", "lesion_id", "patient_id", "label_value", "slice_index")


class PatchDataset(Dataset):
    """Flat dataset of 2D patches made from a dataset of lesions that each yield a list of patches.

    ``lesions[i]`` is a list of patch dicts (output of
    :class:`dce_monai.transforms.LesionPatchesd`, usually through a ``CacheDataset`` so the
    deterministic part runs once); all patches are gathered (order: lesion, then slice), only
    ``keys`` are kept, and ``transform`` (random augmentation, resizing, normalisation) is
    applied per patch on access. MONAI's ``PatchDataset`` samples a fixed number of patches
    per item, which does not fit a per-lesion, variable patch count; hence this class.

    Args:
        lesions: sequence whose items are lists of patch dicts (or single dicts).
        transform: per-patch transform applied in ``__getitem__``.
        keys: patch keys kept (missing ones are skipped).
        allow_empty: accept a dataset without any patch (e.g. the validation set of a run
            that does not validate); otherwise no patch at all is an error.

    Raises:
        TypeError: an item is not a dict or a list of dicts.
        ValueError: no patch at all (unless ``allow_empty``).

    Example:
        >>> ds = PatchDataset(CacheDataset(datalist, preprocessing), transform=augment)  # doctest: +SKIP
    """

    def __init__(self, lesions: Sequence[Any], transform: Callable | None = None, keys: Sequence[str] = PATCH_KEYS, allow_empty: bool = False) -> None:
        patches: list[dict[str, Any]] = []
        for i in range(len(lesions)):
            item = lesions[i]
            items = [item] if isinstance(item, Mapping) else item
            if not isinstance(items, (list, tuple)) or not all(isinstance(p, Mapping) for p in items):
                raise TypeError(f"lesions[{i}] must be a dict or a list of dicts, got {type(item).__name__}.")
            patches.extend({k: p[k] for k in keys if k in p} for p in items)
        if not patches and not allow_empty:
            raise ValueError(f"no patch in {len(lesions)} lesion(s): every lesion yielded an empty list.")
        super().__init__(data=patches, transform=transform)
