"""The seven-channel patch cache: content, channel order, reuse/rebuild, errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from dce_monai.data.manifest import load_manifest
from dce_monai.sequences import SEQUENCES
from dce_monai.workflows import patch_cache as pc
from dce_monai.workflows.patch_cache import (
    build_patch_cache,
    get_patch_cache,
    load_patch_cache,
)
from dce_monai.workflows.search_channels import reference_patches

SIZE = (16, 16)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from dce_monai.data.phantom import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("pc_cohort"), n_patients=6, seed=3, size="tiny", progress=False)


@pytest.fixture(scope="module")
def cache32(cohort, tmp_path_factory):
    return get_patch_cache(cohort, tmp_path_factory.mktemp("pc32"), size=SIZE, dtype="float32", progress=False)


def test_shapes_ids_and_labels(cohort, tmp_path):
    c = get_patch_cache(cohort, tmp_path, size=SIZE, progress=False)
    n = len(c)
    assert n > 0 and c.images.shape == (n, 7, *SIZE) and c.images.dtype == torch.float16
    assert c.channel_names == list(SEQUENCES)
    assert len(c.lesion_ids) == len(c.patient_ids) == n and c.labels.shape == (n,) and c.slice_index.shape == (n,)
    m = load_manifest(cohort)
    truth = {les["lesion_id"]: (p["patient_id"], les["malignant"]) for p in m.patients for les in p["lesions"]}
    for lid, pid, y in zip(c.lesion_ids, c.patient_ids, c.labels.tolist()):
        assert truth[lid] == (pid, y)
    assert set(c.lesion_ids) | set(c.skipped_lesions) == set(truth)
    assert sum(r["n_patches"] for r in c.lesion_table()) == n
    assert c.settings["size"] == list(SIZE) and len(c.key) == 64


def test_channel_order_matches_a_per_triplet_pipeline(cohort, cache32):
    """Each cached channel equals the same channel computed by a pipeline for that triplet alone."""
    for trip in [("T2", "T1pre", "T1post1"), ("T1post2", "T1post3", "T1post4"), ("T1pre", "T1post3", "sub")]:
        imgs, lids, pids, ys = reference_patches(cohort, trip, SIZE)
        assert lids == cache32.lesion_ids and pids == cache32.patient_ids and torch.equal(ys, cache32.labels)
        assert torch.equal(imgs, cache32.images[:, cache32.channel_index(trip)])
    im = cache32.images
    i = {n: k for k, n in enumerate(cache32.channel_names)}
    assert torch.allclose(im[:, i["sub"]], im[:, i["T1post1"]] - im[:, i["T1pre"]], atol=1e-5)


def test_float16_cache_is_the_float32_cache_rounded(cohort, cache32, tmp_path):
    c16 = get_patch_cache(cohort, tmp_path, size=SIZE, dtype="float16", progress=False)
    assert torch.equal(c16.images, cache32.images.to(torch.float16))


def test_reuse_without_rebuild(cohort, tmp_path, monkeypatch):
    c1 = get_patch_cache(cohort, tmp_path, size=SIZE, progress=False)
    mtime = os.stat(c1.path).st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError("cache rebuilt although nothing changed")

    monkeypatch.setattr(pc, "build_patch_cache", no_build)
    c2 = get_patch_cache(cohort, tmp_path, size=SIZE, progress=False)
    assert c2.path == c1.path and os.stat(c2.path).st_mtime_ns == mtime and torch.equal(c1.images, c2.images)


def test_rebuild_when_manifest_or_settings_change(cohort, tmp_path):
    c1 = get_patch_cache(cohort, tmp_path / "c", size=SIZE, progress=False)
    c_size = get_patch_cache(cohort, tmp_path / "c", size=(12, 12), progress=False)
    assert c_size.path != c1.path and c_size.images.shape[-2:] == (12, 12)
    data = json.loads(cohort.read_text())
    flipped = data["patients"][0]["lesions"][0]
    flipped["malignant"] = 1 - flipped["malignant"]
    new = cohort.parent / "manifest_changed.json"
    new.write_text(json.dumps(data))
    c2 = get_patch_cache(new, tmp_path / "c", size=SIZE, progress=False)
    assert c2.path != c1.path
    lid = flipped["lesion_id"]
    if lid in c1.lesion_ids:
        k = c1.lesion_ids.index(lid)
        assert int(c2.labels[k]) == 1 - int(c1.labels[k])


def test_truncated_cache_file_is_rebuilt(cohort, tmp_path):
    c1 = get_patch_cache(cohort, tmp_path, size=SIZE, progress=False)
    c1.path.write_bytes(c1.path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable patch cache"):
        load_patch_cache(c1.path)
    c2 = get_patch_cache(cohort, tmp_path, size=SIZE, progress=False)
    assert torch.equal(c2.images, c1.images)


def test_subset_of_sequences(cohort, tmp_path):
    c = get_patch_cache(cohort, tmp_path, sequences=("T1post2", "sub"), size=SIZE, dtype="float32", progress=False)
    full = get_patch_cache(cohort, tmp_path, size=SIZE, dtype="float32", progress=False)
    assert c.channel_names == ["T1post2", "sub"]
    assert torch.equal(c.images, full.images[:, full.channel_index(["T1post2", "sub"])])


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
    new = cohort.parent / "manifest_masks.json"
    new.write_text(json.dumps(data))
    a = get_patch_cache(new, tmp_path, size=SIZE, progress=False)
    b = get_patch_cache(cohort, tmp_path, size=SIZE, progress=False)
    assert a.lesion_ids == b.lesion_ids and torch.equal(a.images, b.images)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": (16,)}, "size must be two positive integers"),
        ({"size": (0, 16)}, "size must be two positive integers"),
        ({"size_mm": (10.0, -1.0)}, "size_mm must be two positive numbers"),
        ({"dtype": "int8"}, "int8"),
        ({"sequences": ("T1pre", "T3")}, "unknown sequence name 'T3'"),
    ],
)
def test_bad_settings(cohort, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_patch_cache(cohort, tmp_path, **{"size": SIZE, "progress": False, **kwargs})


def test_missing_sequence_names_the_patient(cohort, tmp_path):
    data = json.loads(cohort.read_text())
    pid = data["patients"][1]["patient_id"]
    del data["patients"][1]["exam"]["sequences"]["T1post4"]
    del data["patients"][1]["exam"]["acquisition_times_s"]["T1post4"]
    new = cohort.parent / "manifest_no_post4.json"
    new.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"patient '{pid}'.*T1post4"):
        build_patch_cache(new, tmp_path, size=SIZE, progress=False)


def _rewrite_label_map(cohort, tmp_path, fn):
    """Copy of the manifest with patient 0 only and its label map replaced by ``fn(label_map)``."""
    import nibabel as nib
    import numpy as np

    data = json.loads(cohort.read_text())
    p = data["patients"][0]
    img = nib.load(str(cohort.parent / p["exam"]["label_map"]))
    lm, lesions = fn(np.asarray(img.dataobj).astype(np.uint8), p["lesions"])
    p["lesions"] = lesions
    rel = str(tmp_path / "label_map.nii.gz")
    nib.save(nib.Nifti1Image(lm, img.affine), rel)
    p["exam"]["label_map"] = rel
    data["patients"] = [p]
    new = cohort.parent / f"manifest_{tmp_path.name}.json"
    new.write_text(json.dumps(data))
    return new


def test_no_patch_at_all(cohort, tmp_path):
    """Two lesions on the same slices with a patch covering both: every patch is dropped."""
    import numpy as np

    def twin(lm, lesions):
        one = lm == lesions[0]["label_value"]
        out = one.astype(np.uint8)
        out[np.roll(one, 3, axis=0) & ~one] = 2
        les = [dict(lesions[0], label_value=1), dict(lesions[0], lesion_id="twin", label_value=2)]
        return out, les

    new = _rewrite_label_map(cohort, tmp_path, twin)
    with pytest.raises(ValueError, match="no lesion produced a patch"):
        build_patch_cache(new, tmp_path, size=(64, 64), progress=False)


def test_lesion_absent_from_label_map_names_the_case(cohort, tmp_path):
    new = _rewrite_label_map(cohort, tmp_path, lambda lm, les: (lm * 0, les))
    lid = json.loads(new.read_text())["patients"][0]["lesions"][0]["lesion_id"]
    with pytest.raises(ValueError, match=rf"lesion '{lid}': lesion is empty"):
        build_patch_cache(new, tmp_path, size=SIZE, progress=False)


def test_size_mm_on_different_spacings(cohort, tmp_path):
    from dce_monai.data.manifest import Manifest
    from dce_monai.data.phantom import generate_cohort

    other = load_manifest(generate_cohort(tmp_path / "demo", n_patients=1, seed=1, size="demo", progress=False))
    mixed = load_manifest(cohort)
    pats = []
    for tag, man in (("A", mixed), ("B", other)):
        for p in man.patients[:1]:
            p = json.loads(json.dumps(p))
            p["patient_id"] = tag + p["patient_id"]
            for les in p["lesions"]:
                les["lesion_id"] = tag + les["lesion_id"]
            ex = p["exam"]
            ex["sequences"] = {k: man.resolve(v) for k, v in ex["sequences"].items()}
            for key in ("label_map", "breast_mask", "bias_field"):
                if key in ex:
                    ex[key] = man.resolve(ex[key])
            pats.append(p)
    m = Manifest(tmp_path / "mixed.json", tmp_path, mixed.dataset, pats)
    (tmp_path / "mixed.json").write_text("{}")
    with pytest.raises(ValueError, match="patches differ in shape"):
        build_patch_cache(m, tmp_path / "c", size_mm=(30.0, 30.0), drop_other_lesions=False, progress=False)


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
