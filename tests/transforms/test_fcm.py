from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dce_monai.transforms.fcm import (
    FuzzyCMeansMask,
    FuzzyCMeansMaskd,
    fuzzy_cmeans,
    fuzzy_cmeans_histogram,
)


def reference_fcm(x, c, m=2.0, init=None, tol=1e-10, max_iter=1000):
    """Straightforward numpy FCM (the textbook loop) used as the reference."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    centers = np.asarray(init, np.float64).reshape(c, -1)
    with np.errstate(over="ignore", divide="ignore"):
        return _reference_loop(x, c, m, centers, tol, max_iter)


def _reference_loop(x, c, m, centers, tol, max_iter):
    for _ in range(max_iter):
        d = np.sqrt(((x[:, None, :] - centers[None]) ** 2).sum(-1))
        d = np.fmax(d, 1e-300)
        u = 1.0 / ((d[:, :, None] / d[:, None, :]) ** (2 / (m - 1))).sum(-1)
        new = (u**m).T @ x / (u**m).sum(0)[:, None]
        if np.abs(new - centers).max() < tol:
            centers = new
            break
        centers = new
    order = np.argsort(centers[:, 0])
    centers = centers[order]
    d = np.fmax(np.sqrt(((x[:, None, :] - centers[None]) ** 2).sum(-1)), 1e-300)
    u = 1.0 / ((d[:, :, None] / d[:, None, :]) ** (2 / (m - 1))).sum(-1)
    return centers, u


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(100, 15, n), rng.normal(400, 40, n // 2), rng.normal(900, 60, n // 4)]).round()


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
def test_full_mode_matches_reference(kind):
    x = _data()
    xin = {"numpy": x, "torch": torch.as_tensor(x), "meta": MetaTensor(torch.as_tensor(x))}[kind]
    res = fuzzy_cmeans(xin, 3, tol=1e-10, max_iter=1000)
    c_ref, u_ref = reference_fcm(x, 3, init=[50, 300, 800])
    np.testing.assert_allclose(res.centers.numpy().ravel(), c_ref.ravel(), atol=1e-3)
    assert np.abs(res.memberships.numpy() - u_ref).max() < 1e-3
    assert (res.memberships.argmax(1).numpy() == u_ref.argmax(1)).all()
    assert res.converged and torch.allclose(res.memberships.sum(1), torch.ones(len(x), dtype=torch.float64))


def test_histogram_mode_exact_and_runs_on_unique_values():
    x = _data(6000)
    res_h, u_h = fuzzy_cmeans_histogram(x, tol=1e-10, max_iter=1000)
    res_f = fuzzy_cmeans(x, tol=1e-10, max_iter=1000)
    assert np.abs(u_h.numpy() - res_f.memberships.numpy()).max() < 1e-3
    assert res_h.n_points == len(np.unique(x)) < len(x)
    # complexity: 10x more voxels with the same values -> same number of points iterated on
    res_big, _ = fuzzy_cmeans_histogram(np.tile(x, 10), tol=1e-10, max_iter=1000)
    assert res_big.n_points == res_h.n_points
    np.testing.assert_allclose(res_big.centers, res_h.centers, atol=1e-6)


def test_weights_equal_repeated_samples_and_zero_distance():
    x = np.array([0.0, 1.0, 10.0, 11.0, 20.0])
    w = np.array([3.0, 1.0, 2.0, 1.0, 1.0])
    a = fuzzy_cmeans(x, 3, weights=w, tol=1e-12, max_iter=2000, init=[0, 10, 20])
    b = fuzzy_cmeans(np.repeat(x, w.astype(int)), 3, tol=1e-12, max_iter=2000, init=[0, 10, 20])
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-8)
    res = fuzzy_cmeans(np.array([0.0, 5.0, 10.0]), 3, init=[0, 5, 10], max_iter=1)
    np.testing.assert_allclose(res.memberships.numpy(), np.eye(3))  # points on centres


def test_seed_type_error():
    with pytest.raises(TypeError, match=r"seed must be an integer, got 0.5"):
        fuzzy_cmeans(np.arange(10.0), init="random", seed=0.5)


def test_histogram_float_needs_bins():
    x = np.random.default_rng(0).normal(size=1000)
    with pytest.raises(ValueError, match="values are not integers; pass n_bins"):
        fuzzy_cmeans_histogram(x)
    res, u = fuzzy_cmeans_histogram(x, n_bins=256)
    assert u.shape == (1000, 3) and res.n_points <= 256
    with pytest.raises(ValueError, match=r"n_bins must be an integer >= 2 or None, got 1"):
        fuzzy_cmeans_histogram(x, n_bins=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.arange(10.0), "n_clusters": 1}, r"n_clusters must be an integer >= 2, got 1"),
        ({"x": np.arange(10.0), "m": 1.0}, r"fuzzifier m must be a number > 1, got 1.0"),
        ({"x": np.arange(10.0), "tol": 0}, r"tol must be a number > 0, got 0"),
        ({"x": np.ones((2, 2, 2))}, r"x must have shape \(N,\) or \(N, F\)"),
        ({"x": np.array([1.0, np.nan, 3.0, 4.0])}, r"x has 1 NaN/Inf values"),
        ({"x": np.array([1.0, 1.0, 2.0])}, r"needs at least n_clusters=3 distinct points \(with weight > 0\), got 2"),
        ({"x": np.arange(5.0), "weights": np.ones(4)}, r"weights must be finite, non-negative, with shape \(5,\); got shape \(4,\)"),
        ({"x": np.arange(5.0), "weights": -np.ones(5)}, r"weights must be finite, non-negative"),
        ({"x": np.arange(5.0), "weights": np.array([1, 1, 0, 0, 0.0])}, r"needs at least n_clusters=3 distinct points \(with weight > 0\), got 2"),
        ({"x": np.arange(10.0), "max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
        ({"x": np.arange(10.0), "dtype": torch.int32}, r"dtype must be torch.float32 or torch.float64"),
        ({"x": np.arange(10.0), "init": "kmeans++"}, r"kmeans\+\+"),
        ({"x": np.arange(10.0), "init": [1.0, 2.0]}, r"init must be 'quantile', 'random' or 3 finite centres of 1 feature\(s\), got shape \(2,\)"),
    ],
)
def test_fcm_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fuzzy_cmeans(**kwargs)


def _blob_volume(seed=0):
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 20, (1, 24, 24, 12)).round()
    zz, yy, xx = np.meshgrid(np.arange(24), np.arange(24), np.arange(12), indexing="ij")
    blob = (zz - 12) ** 2 + (yy - 12) ** 2 + ((xx - 6) * 2) ** 2 < 36
    img[0][blob] = rng.normal(800, 40, blob.sum()).round()
    img[0, 2:4, 2:4, 2:4] = 790  # small spurious bright blob
    return img, blob


@pytest.mark.parametrize("kind", ["numpy", "torch", "meta"])
@pytest.mark.parametrize("mode", ["histogram", "full"])
def test_mask_recovers_blob_and_cleanup(kind, mode):
    img, blob = _blob_volume()
    aff = torch.diag(torch.tensor([0.7, 0.7, 2.0, 1.0], dtype=torch.float64))
    x = {"numpy": img, "torch": torch.as_tensor(img), "meta": MetaTensor(torch.as_tensor(img), affine=aff)}[kind]
    m = FuzzyCMeansMask(3, mode=mode, keep_largest=True)(x)
    got = m[0].numpy().astype(bool)
    dice = 2 * (got & blob).sum() / (got.sum() + blob.sum())
    assert dice >= 0.9 and not got[2:4, 2:4, 2:4].any() and m.dtype == torch.uint8
    if kind == "meta":
        assert torch.equal(m.affine, aff)
    assert FuzzyCMeansMask(3, mode=mode)(x)[0, 2:4, 2:4, 2:4].all()  # without cleanup it stays
    assert not FuzzyCMeansMask(3, mode=mode, min_size=20)(x)[0, 2:4, 2:4, 2:4].any()


def test_dict_form_with_candidates_and_empty():
    img, blob = _blob_volume()
    cand = np.ones_like(img, dtype=np.uint8)
    cand[0, :5] = 0  # candidates exclude the spurious blob
    d = FuzzyCMeansMaskd(n_clusters=2)({"sub": torch.as_tensor(img), "mask": torch.as_tensor(cand), "patient_id": "P1"})
    got = d["mask"][0].numpy().astype(bool)
    assert 2 * (got & blob).sum() / (got.sum() + blob.sum()) >= 0.95 and not got[:5].any()
    empty = torch.zeros_like(torch.as_tensor(cand))
    with pytest.raises(ValueError, match=r"patient 'P1': 'mask' holds 0 voxel\(s\) of 'sub' with 0 distinct value\(s\)"):
        FuzzyCMeansMaskd()({"sub": torch.as_tensor(img), "mask": empty, "patient_id": "P1"})
    out = FuzzyCMeansMaskd(on_empty="empty")({"sub": torch.as_tensor(img), "mask": empty})
    assert int(out["mask"].sum()) == 0
    with pytest.raises(KeyError, match=r"FuzzyCMeansMaskd needs key\(s\) \['mask'\]"):
        FuzzyCMeansMaskd()({"sub": torch.as_tensor(img)})


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: FuzzyCMeansMask(mode="kmeans"), r"kmeans"),
        (lambda: FuzzyCMeansMask(on_empty="ignore"), r"ignore"),
        (lambda: FuzzyCMeansMask(membership_threshold=1.0), r"membership_threshold must be in \(0, 1\) or None"),
        (lambda: FuzzyCMeansMask(min_size=-1), r"min_size must be an integer >= 0, got -1"),
        (lambda: FuzzyCMeansMask(m=0.5), r"fuzzifier m must be a number > 1, got 0.5"),
        (lambda: FuzzyCMeansMask(n_bins=1), r"n_bins must be an integer >= 2, got 1"),
        (lambda: FuzzyCMeansMask(tol=-1.0), r"tol must be a number > 0, got -1.0"),
        (lambda: FuzzyCMeansMask(max_iter=0), r"max_iter must be an integer >= 1, got 0"),
        (lambda: FuzzyCMeansMask(seed_point=(1, 2)), r"seed_point must be None or 3 non-negative voxel indices"),
        (lambda: FuzzyCMeansMask(seed_point=(9, 0, 0))(torch.arange(64.0).reshape(1, 4, 4, 4)), r"seed_point \(9, 0, 0\) is outside 'img' of spatial shape \(4, 4, 4\)"),
        (lambda: FuzzyCMeansMask(n_clusters=1), r"n_clusters must be an integer >= 2"),
        (lambda: FuzzyCMeansMask()(torch.ones(1, 4, 4)), r"'img' must be channel-first with 3 spatial dims"),
        (lambda: FuzzyCMeansMask()(torch.ones(2, 4, 4, 4)), r"expects a single-channel 'img', got 2 channels"),
        (lambda: FuzzyCMeansMask()(torch.full((1, 2, 2, 2), float("inf"))), r"'img' has 8 NaN/Inf voxels"),
        (lambda: FuzzyCMeansMask()(torch.ones(1, 4, 4, 4), torch.full((1, 4, 4, 4), 2)), r"'candidates' must be binary"),
        (lambda: FuzzyCMeansMask()(torch.ones(1, 4, 4, 4), torch.ones(1, 4, 4, 3)), r"different grids"),
    ],
)
def test_mask_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_threshold_then_fcm_on_phantom():
    from dce_monai.data.phantom import simulate_patient
    from dce_monai.transforms.kinetics import EnhancementThresholdMaskd, Subtractd

    c = simulate_patient(1)
    d = {k: torch.as_tensor(v.astype(np.float32))[None] for k, v in c.images.items()}
    d["breast_mask"] = torch.as_tensor(c.breast_mask)[None]
    d = EnhancementThresholdMaskd(breast_mask_key="breast_mask")(Subtractd()(d))
    d = FuzzyCMeansMaskd(candidate_key="breast_mask", output_key="fcm_mask", membership_threshold=None)(d)
    truth = c.label_map > 0
    for key in ("mask", "fcm_mask"):  # threshold step, FCM step
        got = d[key][0].numpy().astype(bool)
        assert 2 * (got & truth).sum() / (got.sum() + truth.sum()) >= 0.8, key


def test_determinism_and_seeded_random_init():
    x = _data(1000)
    a, b = fuzzy_cmeans(x), fuzzy_cmeans(x)
    assert torch.equal(a.centers, b.centers) and torch.equal(a.memberships, b.memberships)
    state = torch.random.get_rng_state()
    r1 = fuzzy_cmeans(x, init="random", seed=3, tol=1e-10, max_iter=1000)
    r2 = fuzzy_cmeans(x, init="random", seed=3, tol=1e-10, max_iter=1000)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert torch.equal(r1.centers, r2.centers)
    np.testing.assert_allclose(r1.centers, fuzzy_cmeans(x, tol=1e-10, max_iter=1000).centers, atol=1e-4)


def test_multifeature_matches_reference_and_zero_distance():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (100, 2)), rng.normal((0, 10), 1, (100, 2))])
    init = np.array([[0.0, 0.0], [0.0, 10.0], [8.0, 8.0]])
    res = fuzzy_cmeans(x, 3, init=init, tol=1e-10, max_iter=1000)
    _, u_ref = reference_fcm(x, 3, init=init)
    assert np.abs(res.memberships.numpy() - u_ref).max() < 1e-3
    pts = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0], [1.0, 2.0]])
    one = fuzzy_cmeans(pts, 3, init=pts[:3], max_iter=1)
    np.testing.assert_array_equal(one.memberships.numpy(), np.eye(3)[[0, 1, 2, 0]])  # exactly 1 on its centre


def test_m_not_two_matches_reference():
    x = _data(800)
    res = fuzzy_cmeans(x, 3, m=1.6, init=[50, 300, 800], tol=1e-10, max_iter=1000)
    _, u_ref = reference_fcm(x, 3, m=1.6, init=[50, 300, 800])
    assert np.abs(res.memberships.numpy() - u_ref).max() < 1e-3


@pytest.mark.parametrize(
    "values, kwargs, match",
    [
        (np.array([1.0, np.inf, 3.0]), {}, r"values has 1 NaN/Inf values"),
        (np.array([], dtype=np.float64), {}, r"values is empty"),
        (np.arange(10), {"weights": np.ones(10)}, r"computes the weights itself"),
    ],
)
def test_histogram_errors(values, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fuzzy_cmeans_histogram(values, **kwargs)


def test_histogram_uint16_and_sparse_range_paths():
    x = _data(2000)
    base, _ = fuzzy_cmeans_histogram(x, tol=1e-10)
    res16, _ = fuzzy_cmeans_histogram((x - x.min()).astype(np.uint16), tol=1e-10)  # integer dtype, counting path
    np.testing.assert_allclose(res16.centers.ravel() + x.min(), base.centers.ravel(), atol=1e-6)
    sparse = np.array([0, 1, 2, 10**9, 10**9 + 1, 2 * 10**9] * 5)  # huge range: sorting path
    res, u = fuzzy_cmeans_histogram(sparse)
    assert res.n_points == 6 and u.shape == (30, 3)


@pytest.mark.parametrize("n_bins", [2, 256, 1024])
def test_float_image_histogram_mode_is_exact(n_bins):
    """Float input: binned warm start, then full iterations: full FCM's mask (2 bins < 3 clusters: full FCM itself)."""
    img, _ = _blob_volume()
    rng = np.random.default_rng(1)
    rel = torch.as_tensor(img / 100.0 + rng.uniform(0, 0.01, img.shape))  # non-integer, all values distinct
    full = FuzzyCMeansMask(3, mode="full", tol=1e-9, membership_threshold=0.5)(rel)
    hist = FuzzyCMeansMask(3, mode="histogram", n_bins=n_bins, tol=1e-9, membership_threshold=0.5)(rel)
    assert torch.equal(full, hist)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_histogram_refine_matches_full_fcm_and_binned_error_is_bounded(kind):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 4000), rng.normal(6, 1, 3000), rng.normal(12, 0.5, 1000)])
    xin = x if kind == "numpy" else torch.as_tensor(x)
    full = fuzzy_cmeans(xin, tol=1e-10)
    exact, u = fuzzy_cmeans_histogram(xin, n_bins=8, refine=True, tol=1e-10)
    assert u.shape == (len(x), 3) and exact.n_points == len(x)
    assert torch.allclose(exact.centers, full.centers, atol=1e-8)
    assert float((u - full.memberships).abs().max()) < 1e-8
    # without refinement: every value moves by at most half a bin, and so do the centres
    binned, ub = fuzzy_cmeans_histogram(xin, n_bins=64, tol=1e-10)
    half_bin = (x.max() - x.min()) / (2 * 64)
    assert float((binned.centers - full.centers).abs().max()) <= half_bin
    assert float((ub - full.memberships).abs().max()) > 1e-6  # an approximation, not the exact result


def test_seed_point_and_fill_holes():
    img, _ = _blob_volume()
    img[0, 12, 12, 6] = 100  # a hole in the middle of the blob
    t = torch.as_tensor(img)
    got = FuzzyCMeansMask(3, seed_point=(3, 3, 3))(t)[0]
    assert got[2:4, 2:4, 2:4].all() and int(got.sum()) == 8  # only the small component
    assert FuzzyCMeansMask(3, seed_point=(12, 12, 8))(t)[0, 2:4, 2:4, 2:4].sum() == 0
    assert FuzzyCMeansMask(3)(t)[0, 12, 12, 6] == 0
    assert FuzzyCMeansMask(3, fill_holes=True)(t)[0, 12, 12, 6] == 1
    with pytest.raises(ValueError, match=r"patient 'P2': seed_point \(0, 0, 0\) is not in the FCM mask of 'sub'"):
        FuzzyCMeansMaskd(candidate_key=None, n_clusters=3, seed_point=(0, 0, 0))({"sub": t, "patient_id": "P2"})
    out = FuzzyCMeansMask(3, seed_point=(0, 0, 0), on_empty="empty")(t)
    assert int(out.sum()) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = _data(2000)
    cpu = fuzzy_cmeans(x, tol=1e-10, max_iter=1000)
    gpu = fuzzy_cmeans(x, tol=1e-10, max_iter=1000, device="cuda")
    assert gpu.memberships.is_cuda
    assert (gpu.memberships.cpu() - cpu.memberships).abs().max() < 1e-6
    img, _ = _blob_volume()
    m_cpu = FuzzyCMeansMask(3)(torch.as_tensor(img))
    m_gpu = FuzzyCMeansMask(3, device="cuda")(torch.as_tensor(img).cuda())
    assert m_gpu.is_cuda and torch.equal(m_gpu.cpu(), m_cpu)


def test_skewed_data_gets_distinct_initial_centres():
    x = np.concatenate([np.zeros(1000), np.full(30, 300.0), np.full(20, 900.0)])  # quantiles all 0
    res = fuzzy_cmeans(x, 3, tol=1e-10)
    np.testing.assert_allclose(res.centers.ravel(), [0.0, 300.0, 900.0], atol=1e-6)
    sub = np.zeros((1, 8, 8, 4))
    sub[0, 2:5, 2:5, 1:3] = 500
    assert int(FuzzyCMeansMask(n_clusters=2)(sub).sum()) == 18
