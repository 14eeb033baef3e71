"""Tests for ``dce_monai.data.preprocess_cache``: reuse across datasets and processes, invalidation."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, MetaTensor
from monai.transforms import Compose, MapTransform, RandomizableTransform

from dce_monai.data.preprocess_cache import describe, item_hash, preprocessed_dataset, transform_hash

CALLS: list[str] = []


class LoadScaled(MapTransform):
    """Deterministic test step: reads ``path`` (a .npy) into ``image`` (a MetaTensor) times ``factor``; counts calls."""

    def __init__(self, factor: float = 2.0, tags: set[str] | None = None) -> None:
        super().__init__(["path"])
        self.factor, self.tags = factor, tags or {"b", "a", "c"}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        CALLS.append(str(d["id"]))
        arr = torch.as_tensor(np.load(d["path"])) * self.factor
        d["image"] = MetaTensor(arr, affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])), meta={"filename_or_obj": d["path"]})
        return d


class AddNoise(RandomizableTransform):
    """Random test step (must run on every access, never from a cache)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize(None)
        d = dict(data)
        d["noise"] = float(self.R.uniform())
        return d


@pytest.fixture()
def records(tmp_path: Path) -> list[dict[str, Any]]:
    out = []
    for i in range(3):
        p = tmp_path / f"img{i}.npy"
        np.save(p, np.full((1, 4, 4, 2), float(i + 1), np.float32))
        out.append({"id": f"L{i}", "path": str(p), "label": i % 2})
    return out


def _build(records: list[dict[str, Any]], cache: Path | None, factor: float = 2.0) -> CacheDataset:
    return preprocessed_dataset(records, Compose([Compose([LoadScaled(factor)]), AddNoise()]), cache_dir=cache)


def test_second_dataset_and_rerun_load_from_disk(records: list[dict[str, Any]], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    CALLS.clear()
    first = _build(records, cache)
    assert sorted(CALLS) == ["L0", "L1", "L2"] and len(list(cache.glob("*.pt"))) == 3
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.pt")}
    CALLS.clear()
    again = _build(records, cache)  # a new dataset (another cell, fold or run) with the same settings
    assert CALLS == [] and {p.name: p.stat().st_mtime_ns for p in cache.glob("*.pt")} == mtimes
    for a, b in zip(first, again):
        assert torch.equal(a["image"], b["image"]) and isinstance(b["image"], MetaTensor)
        assert torch.equal(b["image"].affine, a["image"].affine) and b["image"].meta["filename_or_obj"] == a["image"].meta["filename_or_obj"]
    # the random step is not cached: it runs on every access
    assert len({again[0]["noise"] for _ in range(5)}) > 1


def test_changed_setting_is_not_served_from_the_old_cache(records: list[dict[str, Any]], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(records, cache, factor=2.0)
    CALLS.clear()
    ds = _build(records, cache, factor=3.0)
    assert sorted(CALLS) == ["L0", "L1", "L2"] and len(list(cache.glob("*.pt"))) == 6
    assert float(ds[0]["image"].max()) == 3.0  # image 1.0 x the new factor, not the cached 2.0
    CALLS.clear()
    _build(records, cache, factor=2.0)  # the first settings are still on disk
    assert CALLS == []


def test_changed_image_file_is_recomputed(records: list[dict[str, Any]], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _build(records, cache)
    np.save(records[1]["path"], np.full((1, 4, 4, 2), 7.0, np.float32))
    st = os.stat(records[1]["path"])
    os.utime(records[1]["path"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime even on coarse clocks
    CALLS.clear()
    ds = _build(records, cache)
    assert CALLS == ["L1"] and float(ds[1]["image"].max()) == 14.0


def test_without_cache_dir_it_is_the_plain_cache_dataset(records: list[dict[str, Any]], tmp_path: Path) -> None:
    CALLS.clear()
    ds = _build(records, None)
    assert type(ds) is CacheDataset and not isinstance(ds.data, CacheDataset) and sorted(CALLS) == ["L0", "L1", "L2"]
    assert not any(tmp_path.glob("**/*.pt"))
    cached = _build(records, tmp_path / "cache")
    for a, b in zip(ds, cached):
        assert torch.equal(a["image"], b["image"])


def test_cache_dir_that_is_a_file_is_refused(records: list[dict[str, Any]], tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"cache_dir '.*file' exists and is not a folder"):
        _build(records, f)


def test_settings_hash_is_the_same_in_every_process() -> None:
    """Sets and dicts are described in sorted order, so the key does not depend on PYTHONHASHSEED."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_preprocess_cache import LoadScaled\n"
        "from dce_monai.data.preprocess_cache import transform_hash\n"
        "print(transform_hash([LoadScaled(2.0, {'x', 'y', 'z', 'w'})]).decode())\n"
    ) % str(Path(__file__).parent)
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=300).stdout.strip())
    assert len(outs) == 1


def test_describe_and_hashes() -> None:
    assert describe({"b": {1, 3, 2}, "a": (np.float32(1.5), Path("/x"))}) == {"a": [1.5, "/x"], "b": [1, 2, 3]}
    d = describe(torch.ones(2, 3))
    assert d["shape"] == [2, 3] and d["array"] == "float32" and len(d["sha256"]) == 64
    assert "0x" not in str(describe(object()))  # no repr with a memory address
    assert transform_hash([LoadScaled(2.0)]) == transform_hash([LoadScaled(2.0)]) != transform_hash([LoadScaled(2.5)])
    assert transform_hash([LoadScaled(2.0, {"a"})]) != transform_hash([LoadScaled(2.0, {"b"})])
    assert item_hash({"id": "L0", "label": 0}) != item_hash({"id": "L0", "label": 1})


def test_key_is_the_same_before_and_after_the_pipeline_ran(tmp_path: Path) -> None:
    """Readers remember their last files and croppers a tracing flag: run-time state, not settings."""
    import nibabel as nib
    from monai.transforms import CropForegroundd, EnsureChannelFirstd, LoadImaged, ResizeWithPadOrCropd

    path = tmp_path / "img.nii.gz"
    arr = np.zeros((8, 8, 4), np.float32)
    arr[2:5, 3:6, 1:3] = 1.0
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    pipeline = Compose([LoadImaged("img", image_only=True), EnsureChannelFirstd("img"),
                        CropForegroundd("img", source_key="img", margin=1), ResizeWithPadOrCropd("img", (6, 6, 4))]).flatten()
    before = transform_hash(pipeline.transforms)
    pipeline({"img": str(path)})
    assert transform_hash(pipeline.transforms) == before
