"""A one-time cache of seed 1's 2D lesion patches with all seven channels.

Seed 1 compares all 35 channel triplets in 10-fold cross-validation: 350 trainings on the
same patches. Re-running the file pipeline (load, subtract, scale, cut patches) for every
triplet and every fold repeats the same work 350 times. :func:`build_patch_cache` runs it
ONCE per manifest and stores every patch with all channels of :data:`~dce_monai.sequences.SEQUENCES`
as one tensor ``(N_patches, C, H, W)``; a triplet is then an index into the channel axis.

The pipeline is made of the package's MONAI transforms, per patient::

    LoadImaged -> EnsureChannelFirstd -> Subtractd (sub = T1post1 - T1pre)
    -> ScaleIntensityDCEd (T1 phases and sub: one scale from T1pre; T2: its own scale)
    -> SelectSequencesd (channels stacked in SEQUENCES order) -> LesionPatchesd (per lesion)

Patches keep their native size (50x50 by default); resizing to the network input (224)
happens on the device during training, so the cache stays small (seed 1's 1881 patches:
66 MB in float16).

The cache file is named by a SHA-256 key over the manifest's patient entries, the size and
modification time of every image it names and the settings, so it is reused as long as
nothing changes and rebuilt (under a new name) as soon as anything does.

Reference: Haarburger et al., BVM 2018, seed 1 (2D axial 50x50 patches, seven channels).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from monai.utils import look_up_option

from dce_monai.data.manifest import Manifest, load_manifest
from dce_monai.sequences import PRE, SEQUENCES, SUB, is_post, source_sequences, validate_sequence_names
from dce_monai.transforms import (
    LesionPatchesd,
    RegisterPhasesd,
    ScaleIntensityDCEd,
    SelectSequencesd,
    Subtractd,
)

__all__ = [
    "CACHE_FORMAT", "PatchCache", "build_patch_cache", "cache_key", "files_needed", "get_patch_cache", "load_patch_cache", "patient_pipeline",
]

logger = logging.getLogger(__name__)

#: Version of the cache file layout; part of the key, so a layout change rebuilds caches.
CACHE_FORMAT = 1
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


def _settings(
    sequences: Sequence[str], size: Sequence[int], size_mm: Sequence[float] | None, dtype: str, label: str, drop_other_lesions: bool,
    register: bool = False,
) -> dict[str, Any]:
    seqs = validate_sequence_names(sequences, "sequences")
    if len(size) != 2 or any(isinstance(s, bool) or int(s) != s or int(s) < 1 for s in size):
        raise ValueError(f"size must be two positive integers (x, y) in voxels, got {tuple(size)!r}.")
    if size_mm is not None and (len(size_mm) != 2 or any(not float(s) > 0 for s in size_mm)):
        raise ValueError(f"size_mm must be two positive numbers (x, y) in mm, got {tuple(size_mm)!r}.")
    dtype = look_up_option(dtype, tuple(_DTYPES))
    return {
        "format": CACHE_FORMAT,
        "sequences": list(seqs),
        "size": [int(size[0]), int(size[1])],
        "size_mm": None if size_mm is None else [float(size_mm[0]), float(size_mm[1])],
        "dtype": dtype,
        "label": label,
        "drop_other_lesions": bool(drop_other_lesions),
        "sub": "T1post1 - T1pre",
        "scaling": "T1 phases and sub / p99(T1pre); T2 / p99(T2)",
        "register_phases": bool(register),
    }


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


def patient_pipeline(file_seqs: Sequence[str], seqs: Sequence[str], register: bool = False) -> Compose:
    """The per-patient MONAI pipeline: load ``file_seqs`` (+ label map), register, compute ``sub``, scale, stack ``seqs`` into ``image``.

    Args:
        file_seqs: sequences read from files (see :func:`files_needed`).
        seqs: channels stacked into ``image``, in this order.
        register: rigidly register the post-contrast phases to T1pre before subtraction
            (:class:`~dce_monai.transforms.RegisterPhasesd`; the manifest's ``register_phases``).

    Returns:
        A ``Compose`` mapping a datalist dict (paths) to a dict with ``image`` (C, X, Y, Z).
    """
    keys = list(file_seqs) + ["label_map"]
    t1 = [s for s in seqs if s != "T2"]
    steps: list[Any] = [LoadImaged(keys, image_only=True, allow_missing_keys=True), EnsureChannelFirstd(keys, allow_missing_keys=True)]
    posts = [s for s in file_seqs if is_post(s)]
    if register and posts:
        steps.append(RegisterPhasesd(keys=posts))
    if SUB in seqs:
        steps.append(Subtractd())
    if t1:
        steps.append(ScaleIntensityDCEd(t1, reference_keys=[PRE]))
    if "T2" in seqs:
        steps.append(ScaleIntensityDCEd(["T2"]))
    steps.append(SelectSequencesd(seqs, output_key="image", drop_inputs=True))
    return Compose(steps)


def build_patch_cache(
    manifest: str | Path | Manifest,
    cache_dir: str | Path,
    sequences: Sequence[str] = SEQUENCES,
    size: Sequence[int] = (50, 50),
    size_mm: Sequence[float] | None = None,
    dtype: str = "float16",
    label: str | None = None,
    drop_other_lesions: bool = True,
    progress: bool = True,
) -> Path:
    """Run the patch pipeline over a whole manifest once and write the cache file.

    Args:
        manifest: manifest path or loaded :class:`~dce_monai.data.manifest.Manifest`.
        cache_dir: folder of the cache file ``patches_<key[:16]>.pt`` (created).
        sequences: channels to cache, canonical names (default: seed 1's seven).
        size: patch size (x, y) in voxels (seed 1: 50x50).
        size_mm: patch size in mm instead of voxels (per-patient spacing).
        dtype: ``"float16"`` (half the memory; ~1e-3 relative precision) or ``"float32"``.
        label: lesion target (default: the manifest's target; see ``Manifest.to_datalist``).
        drop_other_lesions: drop patches touching another lesion (seed 1).
        progress: tqdm progress bar over patients.

    Returns:
        Path of the written cache file.

    Raises:
        ValueError: bad settings; a patient lacking a requested sequence (patient and
            sequence named); no lesion yields a patch.
        FileNotFoundError: the manifest does not exist.

    Example:
        >>> path = build_patch_cache("cohort/manifest.json", "cache")  # doctest: +SKIP
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    label = m.target if label is None else label
    st = _settings(sequences, size, size_mm, dtype, label, drop_other_lesions, m.register_phases)
    key = cache_key(m, st)
    out_dir = Path(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"patches_{key[:16]}.pt"
    seqs = st["sequences"]
    file_seqs = files_needed(seqs)
    datalist = m.to_datalist(level="lesion", sequences=file_seqs, label=label)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for entry in datalist:
        by_patient.setdefault(entry["patient_id"], []).append(entry)
    pipe = patient_pipeline(file_seqs, seqs, register=st["register_phases"])
    cutter = LesionPatchesd(size=tuple(st["size"]), size_mm=None if size_mm is None else tuple(st["size_mm"]), drop_other_lesions=drop_other_lesions, on_empty="raise")
    mask_loader = Compose([LoadImaged(["mask"], image_only=True), EnsureChannelFirstd(["mask"])])
    from tqdm.auto import tqdm

    images: list[torch.Tensor] = []
    labels: list[int] = []
    lids: list[str] = []
    pids: list[str] = []
    zs: list[int] = []
    skipped: list[str] = []
    for pid, lesions in tqdm(by_patient.items(), desc="patch cache", unit="patient", disable=not progress):
        first = lesions[0]
        pdict = {k: v for k, v in first.items() if k not in ("lesion_id", "label", "label_value", "mask")}
        pdict = pipe(pdict)
        for les in lesions:
            d: dict[Hashable, Any] = {
                "patient_id": pid, "lesion_id": les["lesion_id"], "label": les["label"], "image": pdict["image"],
            }
            if "label_map" in pdict:
                d["label_map"] = pdict["label_map"]
            if les.get("label_map", first.get("label_map")) != first.get("label_map"):  # lesions with label maps of their own
                d["label_map"] = mask_loader({"mask": les["label_map"], "patient_id": pid, "lesion_id": les["lesion_id"]})["mask"]
            if "mask" not in les:  # a validated manifest has label_map with label_value, or a lesion mask
                d["label_value"] = les["label_value"]
            else:
                d["mask"] = mask_loader({"mask": les["mask"], "patient_id": pid, "lesion_id": les["lesion_id"]})["mask"]
            patches = cutter(d)
            if not patches:
                skipped.append(str(les["lesion_id"]))
                continue
            for p in patches:
                images.append(p["image"].as_tensor().to(_DTYPES[st["dtype"]]))
                labels.append(int(les["label"]))
                lids.append(str(les["lesion_id"]))
                pids.append(str(pid))
                zs.append(int(p["slice_index"]))
    if skipped:
        logger.warning("%d lesion(s) have no patch (every slice touches another lesion) and are left out: %s", len(skipped), skipped)
    if not images:
        raise ValueError(f"{m.path}: no lesion produced a patch ({len(datalist)} lesions, {len(skipped)} without a patch).")
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise ValueError(f"{m.path}: patches differ in shape {sorted(shapes)}; with size_mm the spacing differs between patients, use size (voxels) instead.")
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
    sequences: Sequence[str] = SEQUENCES,
    size: Sequence[int] = (50, 50),
    size_mm: Sequence[float] | None = None,
    dtype: str = "float16",
    label: str | None = None,
    drop_other_lesions: bool = True,
    progress: bool = True,
) -> PatchCache:
    """The cache for this manifest and these settings: read when present, built otherwise.

    Same arguments as :func:`build_patch_cache`. A cache file that cannot be read (e.g. a
    killed build) is rebuilt.

    Example:
        >>> cache = get_patch_cache("cohort/manifest.json", "out/cache")  # doctest: +SKIP
        >>> cache.images.shape  # (N, 7, 50, 50)  # doctest: +SKIP
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    label = m.target if label is None else label
    st = _settings(sequences, size, size_mm, dtype, label, drop_other_lesions, m.register_phases)
    path = Path(cache_dir) / f"patches_{cache_key(m, st)[:16]}.pt"
    if path.is_file():
        try:
            return load_patch_cache(path)
        except ValueError as e:
            logger.warning("rebuilding the patch cache: %s", e)
    path = build_patch_cache(m, cache_dir, sequences, size, size_mm, dtype, label, drop_other_lesions, progress)
    return load_patch_cache(path)
