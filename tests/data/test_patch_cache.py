"""The patch cache: built by the seed 1 bundle's own preprocessing; content, channel order, reuse/rebuild, splits, errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from dce_monai.data import patch_cache as pc
from dce_monai.data.folds import patient_folds
from dce_monai.data.manifest import load_manifest
from dce_monai.data.patch_cache import PatchCacheDataset, PatchDataset, build_patch_cache, get_patch_cache, load_patch_cache
from dce_monai.sequences import SEQUENCES
from dce_monai.workflows.search_channels import bundle_preprocessing

SIZE = (16, 16)
# the cache machinery is tested here, without N4 (~0.4 s per tiny lesion); the bundle's default (N4 on)
# is what tests/workflows/test_search_channels.py builds its caches with
NO_N4 = {"bias_correction": False}


def _get(cohort, folder, seqs=SEQUENCES, size=SIZE, dtype="float32", build=False):
    pre, key = bundle_preprocessing(cohort, seqs, size, **NO_N4)
    fn = build_patch_cache if build else get_patch_cache
    out = fn(cohort, folder, pre, key, sequences=seqs, dtype=dtype, progress=False)
    return load_patch_cache(out) if build else out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from dce_monai.data.phantom import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("pc_cohort"), n_patients=6, seed=3, size="tiny", progress=False)


@pytest.fixture(scope="module")
def cache32(cohort, tmp_path_factory):
    return _get(cohort, tmp_path_factory.mktemp("pc32"))


def test_shapes_ids_and_labels(cohort, cache32):
    c = cache32
    n = len(c)
    assert n > 0 and c.images.shape == (n, 7, *SIZE) and c.images.dtype == torch.float32
    assert c.channel_names == list(SEQUENCES)
    assert len(c.lesion_ids) == len(c.patient_ids) == n and c.labels.shape == (n,) and c.slice_index.shape == (n,)
    m = load_manifest(cohort)
    truth = {les["lesion_id"]: (p["patient_id"], les["malignant"]) for p in m.patients for les in p["lesions"]}
    for lid, pid, y in zip(c.lesion_ids, c.patient_ids, c.labels.tolist()):
        assert truth[lid] == (pid, y)
    assert set(c.lesion_ids) | set(c.skipped_lesions) == set(truth)
    assert sum(r["n_patches"] for r in c.lesion_table()) == n
    assert c.settings["transform"] and len(c.key) == 64


def test_channels_equal_the_bundle_pipeline_for_a_triplet_alone(cohort, cache32):
    """Each cached channel equals the same channel the bundle's preprocessing gives for that triplet alone."""
    from monai.data import Dataset

    for trip in [("T2", "T1pre", "T1post1"), ("T1pre", "T1post3", "sub")]:
        pre, _ = bundle_preprocessing(cohort, trip, SIZE, **NO_N4)
        ds = Dataset(load_manifest(cohort).to_datalist(level="lesion"), transform=pre)
        patches = [p for i in range(len(ds)) for p in ds[i]]
        assert [str(p["lesion_id"]) for p in patches] == cache32.lesion_ids
        imgs = torch.stack([p["image"].as_tensor() for p in patches])
        assert torch.equal(imgs, cache32.images[:, cache32.channel_index(trip)])
    im, i = cache32.images, {n: k for k, n in enumerate(cache32.channel_names)}
    assert torch.allclose(im[:, i["sub"]], im[:, i["T1post1"]] - im[:, i["T1pre"]], atol=1e-5)


def test_float16_cache_is_the_float32_cache_rounded(cohort, cache32, tmp_path):
    assert torch.equal(_get(cohort, tmp_path, dtype="float16").images, cache32.images.to(torch.float16))


def test_reuse_without_rebuild(cohort, tmp_path, monkeypatch):
    c1 = _get(cohort, tmp_path)
    mtime = os.stat(c1.path).st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError("cache rebuilt although nothing changed")

    monkeypatch.setattr(pc, "build_patch_cache", no_build)
    c2 = _get(cohort, tmp_path)
    assert c2.path == c1.path and os.stat(c2.path).st_mtime_ns == mtime and torch.equal(c1.images, c2.images)


def test_rebuild_when_manifest_or_transform_change(cohort, tmp_path):
    c1 = _get(cohort, tmp_path / "c")
    c_size = _get(cohort, tmp_path / "c", size=(12, 12))
    assert c_size.path != c1.path and c_size.images.shape[-2:] == (12, 12)
    data = json.loads(cohort.read_text())
    flipped = data["patients"][0]["lesions"][0]
    flipped["malignant"] = 1 - flipped["malignant"]
    new = cohort.parent / "manifest_changed.json"
    new.write_text(json.dumps(data))
    c2 = _get(new, tmp_path / "c")
    assert c2.path != c1.path
    lid = flipped["lesion_id"]
    if lid in c1.lesion_ids:
        k = c1.lesion_ids.index(lid)
        assert int(c2.labels[k]) == 1 - int(c1.labels[k])


def test_truncated_cache_file_is_rebuilt(cohort, tmp_path):
    c1 = _get(cohort, tmp_path)
    c1.path.write_bytes(c1.path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable patch cache"):
        load_patch_cache(c1.path)
    assert torch.equal(_get(cohort, tmp_path).images, c1.images)


def test_subset_of_sequences(cohort, cache32, tmp_path):
    c = _get(cohort, tmp_path, seqs=("T1post2", "sub"))
    assert c.channel_names == ["T1post2", "sub"]
    assert torch.equal(c.images, cache32.images[:, cache32.channel_index(["T1post2", "sub"])])


def test_lesion_masks_instead_of_label_values(cohort, tmp_path):
    """Lesions given by their own mask file give the same patches as label values."""
    import nibabel as nib
    import numpy as np

    data = json.loads(cohort.read_text())
    for p in data["patients"]:
        lm_path = cohort.parent / p["exam"]["label_map"]
        img = nib.load(str(lm_path))
        lm = np.asarray(img.dataobj)
        for les in p["lesions"]:
            rel = f"{p['patient_id']}/{les['lesion_id']}_mask.nii.gz"
            nib.save(nib.Nifti1Image((lm == les["label_value"]).astype(np.uint8), img.affine), str(cohort.parent / rel))
            les["mask"] = rel
            del les["label_value"]
        del p["exam"]["label_map"]
    new = cohort.parent / "manifest_masks.json"
    new.write_text(json.dumps(data))
    a = _get(new, tmp_path, seqs=("T1pre", "T1post1", "sub"), build=True)
    b = _get(cohort, tmp_path, seqs=("T1pre", "T1post1", "sub"))
    assert set(a.lesion_ids) >= set(b.lesion_ids) and len(a) >= len(b)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"dtype": "int8"}, "int8"), ({"sequences": ("T1pre", "T3")}, "unknown sequence name 'T3'"),
     ({"transform_key": ""}, "transform_key must name")],
)
def test_bad_settings(cohort, tmp_path, kwargs, match):
    pre, key = bundle_preprocessing(cohort, SEQUENCES, SIZE, **NO_N4)
    with pytest.raises(ValueError, match=match):
        build_patch_cache(cohort, tmp_path, pre, **{"transform_key": key, "progress": False, **kwargs})


def test_transform_of_other_channels_refused(cohort, tmp_path):
    pre, key = bundle_preprocessing(cohort, ("T1pre", "T1post1", "sub"), SIZE)
    with pytest.raises(ValueError, match=r"lesion 'PH0000-L\d': the transform gave an image of shape \(3, 16, 16\); expected \(7, H, W\)"):
        build_patch_cache(cohort, tmp_path, pre, key, progress=False)


def test_patches_of_different_shapes_refused(cohort, tmp_path):
    calls = []

    def odd(rec):
        calls.append(rec)
        return [{"image": torch.zeros(1, 8 + len(calls), 8), "slice_index": 0}]

    with pytest.raises(ValueError, match="patches differ in shape"):
        build_patch_cache(cohort, tmp_path, odd, "odd", sequences=("T1pre",), progress=False)


def test_missing_sequence_names_the_patient(cohort, tmp_path):
    data = json.loads(cohort.read_text())
    pid = data["patients"][1]["patient_id"]
    del data["patients"][1]["exam"]["sequences"]["T1post4"]
    del data["patients"][1]["exam"]["acquisition_times_s"]["T1post4"]
    new = cohort.parent / "manifest_no_post4.json"
    new.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"patient '{pid}' has no \['T1post4'\]"):
        _get(new, tmp_path, build=True)


def test_no_patch_at_all(cohort, tmp_path):
    import nibabel as nib
    import numpy as np

    data = json.loads(cohort.read_text())
    p = data["patients"][0]
    img = nib.load(str(cohort.parent / p["exam"]["label_map"]))
    rel = str(tmp_path / "label_map.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), rel)
    p["exam"]["label_map"] = rel
    data["patients"] = [p]
    new = cohort.parent / "manifest_empty.json"
    new.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no lesion produced a patch"):
        _get(new, tmp_path, build=True)


def test_dataset_splits_partition_the_cache(cache32):
    folds = patient_folds(cache32.lesion_table(), k=2, seed=0)
    tr, te = PatchCacheDataset(cache32, folds, 0, "train"), PatchCacheDataset(cache32, folds, 0, "test")
    assert len(tr) + len(te) == len(cache32)
    assert {tr[i]["patient_id"] for i in range(len(tr))}.isdisjoint(folds[0])
    assert {te[i]["patient_id"] for i in range(len(te))} <= set(folds[0])
    item = te[0]
    j = cache32.patient_ids.index(item["patient_id"])
    assert torch.equal(item["image"], cache32.images[j]) and item["lesion_id"] == cache32.lesion_ids[j]
    assert tr.index.tolist() == sorted(tr.index.tolist())


@pytest.mark.parametrize("fold, split, match", [(2, "train", r"fold must be in \[0, 2\)"), (0, "val", "val")])
def test_dataset_errors(cache32, fold, split, match):
    folds = patient_folds(cache32.lesion_table(), k=2, seed=0)
    with pytest.raises(ValueError, match=match):
        PatchCacheDataset(cache32, folds, fold, split)


def test_dataset_empty_split(cache32):
    with pytest.raises(ValueError, match="split 'test' of fold 0 holds no patch"):
        PatchCacheDataset(cache32, [["nobody"], sorted(set(cache32.patient_ids))], 0, "test")


def test_channel_index_and_loading_errors(cache32, tmp_path):
    assert cache32.channel_index(("T1pre", "T1post3", "sub")) == [1, 4, 6]
    with pytest.raises(ValueError, match=r"channel\(s\) \['T1post7'\] not in the patch cache"):
        cache32.channel_index(("T1pre", "T1post7"))
    with pytest.raises(FileNotFoundError, match="patch cache not found"):
        load_patch_cache(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"images": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a patch cache of format"):
        load_patch_cache(bad)


@pytest.mark.parametrize("kind", ["list", "tensor"])
def test_patch_dataset_flattens(kind):
    img = torch.zeros(3, 4, 4) if kind == "tensor" else [[0.0]]
    lesions = [[{"image": img, "label": 1, "lesion_id": "A", "other": 1}] * 2, [], {"image": img, "label": 0, "lesion_id": "B"}]
    ds = PatchDataset(lesions)
    assert len(ds) == 3 and [d["lesion_id"] for d in ds] == ["A", "A", "B"] and "other" not in ds[0]


def test_patch_dataset_errors():
    with pytest.raises(TypeError, match=r"lesions\[0\] must be a dict or a list of dicts, got int"):
        PatchDataset([3])
    with pytest.raises(ValueError, match="no patch in 2 lesion"):
        PatchDataset([[], []])
