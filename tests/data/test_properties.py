"""Property-based ("break-it") tests: odd shapes, dtypes, spacings and NaNs through the DCE
transforms, and random JSON through manifest parsing. Hypothesis draws the inputs; each
property states what must hold for every input, or which clear error must be raised."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from monai.data import MetaTensor

from dce_monai.data.manifest import ManifestError, check_manifest, load_manifest
from dce_monai.transforms import (
    Augment34,
    EnhancementThresholdMask,
    FuzzyCMeansMask,
    ScaleIntensityDCE,
    Subtract,
)

# Fast and reproducible by default (25 examples, fixed seed). To hunt for new failures, run with
# DCE_MONAI_HYPOTHESIS_EXAMPLES=500: more examples, random seed.
_N = int(os.environ.get("DCE_MONAI_HYPOTHESIS_EXAMPLES", "25"))
FAST = settings(
    max_examples=_N,
    deadline=None,
    derandomize="DCE_MONAI_HYPOTHESIS_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KINDS = ("numpy", "torch", "meta")
DTYPES = (np.uint16, np.int16, np.float16, np.float32)

shapes = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4))


def _bounds(dtype: Any) -> tuple[float, float]:
    """Value range drawn per dtype: uint16 up to its max, int16 with negatives, float16 within range."""
    return {np.uint16: (0, 65535), np.int16: (-32768, 32767), np.float16: (-6e4, 6e4), np.float32: (-1e6, 1e6)}[dtype]


@st.composite
def volumes(draw: Any, n_channels: int = 1, dtype: Any = None, positive: bool = False, shape: tuple[int, ...] | None = None) -> np.ndarray:
    dt = dtype or draw(st.sampled_from(DTYPES))
    shp = shape or draw(shapes)
    lo, hi = _bounds(dt)
    if positive:
        lo = max(lo, 1)
    if np.issubdtype(dt, np.integer):
        el = st.integers(int(lo), int(hi))
    else:
        el = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=16 if dt == np.float16 else 32)
    return draw(hnp.arrays(dt, (n_channels, *shp), elements=el))


spacings = st.tuples(*[st.floats(0.1, 5.0) for _ in range(3)])


def as_kind(arr: np.ndarray, kind: str, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Any:
    if kind == "numpy":
        return arr
    t = torch.from_numpy(arr.copy())  # uint16 stays torch.uint16 (few torch ops support it)
    if kind == "torch":
        return t
    return MetaTensor(t, affine=torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)))


def _np(x: Any) -> np.ndarray:
    if isinstance(x, MetaTensor):
        x = x.as_tensor()
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ----------------------------------------------------------------------------- Subtract


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data(), spacing=spacings)
def test_subtract_is_exact_float_difference(kind: str, data: Any, spacing: tuple[float, float, float]) -> None:
    a = data.draw(volumes())
    b = data.draw(volumes(dtype=a.dtype.type, shape=a.shape[1:]))
    out = Subtract()(as_kind(a, kind, spacing), as_kind(b, kind, spacing))
    assert out.dtype == torch.float32
    assert tuple(out.shape) == a.shape
    ref = a.astype(np.float64) - b.astype(np.float64)  # no uint16 wrap-around
    np.testing.assert_allclose(_np(out), ref, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(ref).max(initial=0))))
    if kind == "meta":
        np.testing.assert_allclose(out.affine.numpy()[:3, :3], np.diag(spacing), rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_subtract_nan_is_a_clear_error(kind: str, data: Any) -> None:
    a = data.draw(volumes(dtype=np.float32))
    b = a.copy()
    idx = tuple(data.draw(st.integers(0, n - 1)) for n in a.shape)
    b[idx] = np.nan
    with pytest.raises(ValueError, match=r"input: 'subtrahend' has 1 NaN/Inf voxels"):
        Subtract()(as_kind(a, kind), as_kind(b, kind))


@FAST
@given(a=volumes(dtype=np.float32), extra=st.integers(1, 3))
def test_subtract_grid_mismatch_is_a_clear_error(a: np.ndarray, extra: int) -> None:
    b = np.zeros((1, a.shape[1] + extra, *a.shape[2:]), np.float32)
    with pytest.raises(ValueError, match=r"sequences are on different grids: 'minuend' has spatial shape"):
        Subtract()(a, b)


# ----------------------------------------------------------------------------- EnhancementThresholdMask


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data(), thr=st.floats(0.05, 3.0), floor=st.floats(0.0, 100.0))
def test_threshold_mask_selects_exactly_the_enhancing_voxels(kind: str, data: Any, thr: float, floor: float) -> None:
    pre = data.draw(volumes())
    post = data.draw(volumes(dtype=pre.dtype.type, shape=pre.shape[1:]))
    out = EnhancementThresholdMask(threshold=thr, noise_floor=floor)(as_kind(pre, kind), as_kind(post, kind))
    m = _np(out)
    assert m.shape == pre.shape and set(np.unique(m).tolist()) <= {0, 1}
    p32, q32 = pre.astype(np.float32).astype(np.float64), post.astype(np.float32).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (q32 - p32) / p32
    sure_in = (p32 > floor) & (rel >= thr * (1 + 1e-5) + 1e-6)
    sure_out = (p32 <= floor) | (rel < thr * (1 - 1e-5) - 1e-6)
    assert np.all(m[sure_in] == 1) and np.all(m[sure_out] == 0)


@FAST
@given(pre=volumes(dtype=np.float32))
def test_threshold_mask_nan_and_bad_dims(pre: np.ndarray) -> None:
    post = pre.copy()
    post.flat[0] = np.nan
    with pytest.raises(ValueError, match=r"input: 'post' has 1 NaN/Inf voxels"):
        EnhancementThresholdMask()(pre, post)
    with pytest.raises(ValueError, match=r"input: 'pre' must be channel-first with 3 spatial dims \(C, X, Y, Z\)"):
        EnhancementThresholdMask()(pre[0], pre[0])


# ----------------------------------------------------------------------------- FuzzyCMeansMask


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data(), mode=st.sampled_from(["histogram", "full"]))
def test_fcm_mask_is_binary_and_holds_the_brightest_voxel(kind: str, data: Any, mode: str) -> None:
    img = data.draw(volumes(dtype=data.draw(st.sampled_from((np.uint16, np.int16, np.float32)))))
    flat = img.astype(np.float64).ravel()
    hypothesis.assume(len(np.unique(flat)) >= 2)
    out = FuzzyCMeansMask(n_clusters=2, mode=mode)(as_kind(img, kind))
    m = _np(out)
    assert m.shape == img.shape and set(np.unique(m).tolist()) <= {0, 1}
    assert m.ravel()[int(np.argmax(flat))] == 1
    assert m.sum() < m.size  # the lowest value is never in the top cluster
    if kind == "meta":
        assert isinstance(out, MetaTensor)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(shape=shapes, value=st.integers(0, 65535))
def test_fcm_constant_or_empty_is_a_clear_error(kind: str, shape: tuple[int, int, int], value: int) -> None:
    img = np.full((1, *shape), value, np.uint16)
    with pytest.raises(ValueError, match=r"input: 'candidates' holds \d+ voxel\(s\) of 'img' with 1 distinct value\(s\)"):
        FuzzyCMeansMask()(as_kind(img, kind))
    img2 = img.astype(np.float32)
    img2.flat[0] += 1
    with pytest.raises(ValueError, match=r"input: 'candidates' holds 0 voxel\(s\) of 'img' with 0 distinct value\(s\)"):
        FuzzyCMeansMask()(as_kind(img2, kind), np.zeros(img.shape, np.uint8))
    img2.flat[-1] = np.nan
    with pytest.raises(ValueError, match=r"input: 'img' has 1 NaN/Inf voxels"):
        FuzzyCMeansMask()(as_kind(img2, kind))


# ----------------------------------------------------------------------------- ScaleIntensityDCE


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data(), pct=st.floats(1.0, 100.0), n_ch=st.integers(1, 4))
def test_scale_dce_uses_one_scale_for_all_channels(kind: str, data: Any, pct: float, n_ch: int) -> None:
    img = data.draw(volumes(n_channels=n_ch, dtype=data.draw(st.sampled_from((np.uint16, np.float32))), positive=True))
    out = _np(ScaleIntensityDCE(percentile=pct)(as_kind(img, kind)))
    x = img.astype(np.float32)
    ratio = out / x  # positive inputs: one scale everywhere, so every phase ratio survives
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(shape=shapes, n_ch=st.integers(1, 3))
def test_scale_dce_all_background_and_empty_mask_are_clear_errors(kind: str, shape: tuple[int, int, int], n_ch: int) -> None:
    zeros = np.zeros((n_ch, *shape), np.float32)
    with pytest.raises(ValueError, match=r"input: no voxel above the floor 0.0; cannot compute an intensity scale"):
        ScaleIntensityDCE()(as_kind(zeros, kind))
    with pytest.raises(ValueError, match=r"input: 'mask' is empty \(no foreground voxel\)"):
        ScaleIntensityDCE()(as_kind(zeros + 1, kind), mask=np.zeros((1, *shape), np.uint8))
    bad = zeros + 1
    bad.flat[0] = np.inf
    with pytest.raises(ValueError, match=r"input: 'img' has 1 NaN/Inf voxels"):
        ScaleIntensityDCE()(as_kind(bad, kind))


# ----------------------------------------------------------------------------- Augment34


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data(), index=st.integers(0, 33), spacing=spacings)
def test_augment34_odd_shapes(kind: str, data: Any, index: int, spacing: tuple[float, float, float]) -> None:
    img = data.draw(volumes(dtype=data.draw(st.sampled_from((np.int16, np.float32)))))
    x = as_kind(img.astype(np.float32) if index >= 32 else img, kind, spacing)
    t = Augment34(index, shift=2)
    out = t(x)
    assert isinstance(out, MetaTensor)
    assert sorted(out.shape[1:]) == sorted(img.shape[1:])  # cube rotations permute the axes
    if index < 24:  # exact: a permutation of the voxels, undone by inverse
        assert sorted(_np(out).ravel().tolist()) == sorted(img.astype(_np(out).dtype).ravel().tolist())
        np.testing.assert_array_equal(_np(t.inverse(out)), _np(as_kind(img, kind)))
        if kind == "meta":  # voxel spacing travels with the permuted axes
            sp = np.linalg.norm(out.affine.numpy()[:3, :3], axis=0)
            assert sorted(sp.round(5).tolist()) == sorted(np.round(spacing, 5).tolist())
    else:
        assert tuple(out.shape) == img.shape
        assert np.isfinite(_np(out)).all()


@FAST
@given(img=volumes(dtype=np.uint16), index=st.sampled_from([32, 33]))
def test_augment34_axial_rotation_on_uint16(img: np.ndarray, index: int) -> None:
    out = Augment34(index)(img)
    assert tuple(out.shape) == img.shape
    assert np.isfinite(_np(out).astype(np.float64)).all()


def test_augment34_bad_index_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"augmentation variant index must be an integer in \[0, 33\], got 34"):
        Augment34(34)


# ----------------------------------------------------------------------------- degenerate inputs: clear errors


def test_threshold_mask_zero_size_axis_is_a_clear_error() -> None:
    x = np.ones((1, 0, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"input: 'pre' is empty: shape \(1, 0, 3, 2\) has a zero-size axis"):
        EnhancementThresholdMask()(x, x)


def test_fcm_complex_input_is_refused() -> None:
    x = (np.arange(8, dtype=np.float32) + 1j * np.arange(8, dtype=np.float32)[::-1]).astype(np.complex64).reshape(1, 2, 2, 2)
    with pytest.raises(TypeError, match=r"image data must be real-valued, got complex dtype complex64"):
        FuzzyCMeansMask()(x)


def test_fcm_object_input_is_refused() -> None:
    x = np.array([[[["a", "b"]]]], dtype=object)
    with pytest.raises(TypeError, match=r"image data must be numeric, got dtype object"):
        FuzzyCMeansMask()(x)


# ----------------------------------------------------------------------------- manifest parsing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=12,
)


def _valid_manifest() -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "dataset": {"name": "x"},
        "patients": [
            {
                "patient_id": "P1",
                "exam": {
                    "sequences": {"T1pre": "a.nii.gz", "T1post1": "b.nii.gz"},
                    "acquisition_times_s": {"T1pre": 0, "T1post1": 90},
                    "label_map": "l.nii.gz",
                },
                "labels": {"her2": 1},
                "lesions": [{"lesion_id": "P1-L1", "label_value": 1, "malignant": 0}],
            }
        ],
    }


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, (*prefix, i))
    return out


@FAST
@given(data=json_values)
def test_manifest_random_json_only_manifest_errors(data: Any) -> None:
    try:
        check_manifest(data, "m.json")
    except ManifestError as e:
        assert e.problems and all(p.field for p in e.problems)
        assert str(e).startswith("m.json: ")


@FAST
@given(choice=st.data(), value=json_values)
def test_manifest_mutations_name_the_field(choice: Any, value: Any) -> None:
    base = _valid_manifest()
    check_manifest(base)  # the unmutated manifest is valid
    path = choice.draw(st.sampled_from(_paths(base)))
    d = json.loads(json.dumps(base))
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    try:
        check_manifest(d, "m.json")
    except ManifestError as e:
        assert e.problems
        for p in e.problems:  # every problem names a case and a field
            assert p.case and p.field
    else:
        # accepted: the new value must itself be valid where it was put
        check_manifest(json.loads(json.dumps(d)))


@FAST
@given(blob=st.binary(max_size=64))
def test_load_manifest_random_bytes(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    p = tmp_path_factory.mktemp("m") / "manifest.json"
    p.write_bytes(blob)
    with pytest.raises(ManifestError, match=r"manifest\.json: \d+ problem\(s\)"):
        load_manifest(p)


def test_load_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_manifest(tmp_path / "none.json")
