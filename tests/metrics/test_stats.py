from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dce_monai.metrics.stats import (
    binary_metrics,
    bootstrap_ci,
    delong_test,
    roc_auc,
    youden_threshold,
)


def _data(n: int = 60, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    a = y * 0.8 + rng.normal(0, 0.6, n)
    b = y * 0.3 + rng.normal(0, 0.6, n) + 0.5 * a
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return y, a, b


def _slow_delong_var(y, a, b):
    """Direct DeLong (1988) structural components by pairwise comparison."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(x, z):
        return 1.0 if x > z else 0.5 if x == z else 0.0

    comps = []
    for s in (a, b):
        v10 = np.array([np.mean([psi(s[i], s[j]) for j in neg]) for i in pos])
        v01 = np.array([np.mean([psi(s[i], s[j]) for i in pos]) for j in neg])
        comps.append((v10, v01))
    s10 = np.cov(np.stack([comps[0][0], comps[1][0]]))
    s01 = np.cov(np.stack([comps[0][1], comps[1][1]]))
    c = s10 / len(pos) + s01 / len(neg)
    return c[0, 0] + c[1, 1] - 2 * c[0, 1]


@pytest.mark.parametrize("kind", [list, np.asarray, torch.tensor])
@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(kind, ties):
    y, a, _ = _data(ties=ties)
    assert roc_auc(kind(y.tolist()), kind(a.tolist())) == pytest.approx(roc_auc_score(y, a), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_pairwise_definition(ties):
    y, a, b = _data(n=40, ties=ties)
    r = delong_test(y, a, b)
    assert r["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert r["auc_b"] == pytest.approx(roc_auc_score(y, b))
    z = (r["auc_a"] - r["auc_b"]) / math.sqrt(_slow_delong_var(y, a, b))
    assert r["z"] == pytest.approx(z, rel=1e-9)
    assert 0.0 <= r["p"] <= 1.0


def test_delong_identical_and_clearly_different():
    y, a, _ = _data(n=200)
    assert delong_test(y, a, a)["p"] == 1.0
    noise = np.random.default_rng(5).normal(size=y.size)
    assert delong_test(y, a, noise)["p"] < 1e-3


def test_binary_metrics_counts():
    m = binary_metrics([1, 1, 1, 0, 0], [0.9, 0.6, 0.2, 0.4, 0.7], threshold=0.5)
    assert (m["sensitivity"], m["specificity"], m["accuracy"]) == (pytest.approx(2 / 3), 0.5, pytest.approx(3 / 5))
    assert (m["n"], m["n_pos"]) == (5, 3)
    one = binary_metrics([1, 1], [0.2, 0.8])
    assert math.isnan(one["auc"]) and math.isnan(one["specificity"]) and one["sensitivity"] == 0.5


def test_youden_is_optimal():
    y, a, _ = _data(n=50, seed=3)
    t = youden_threshold(y, a)
    j = lambda th: binary_metrics(y, a, th)["sensitivity"] + binary_metrics(y, a, th)["specificity"]
    assert all(j(t) >= j(c) - 1e-12 for c in np.unique(a))


@pytest.mark.parametrize("metric", ["auc", "sensitivity", "specificity", "accuracy"])
def test_bootstrap_ci_contains_estimate_and_is_reproducible(metric):
    y, a, _ = _data(n=80)
    lo, hi = bootstrap_ci(y, a, metric=metric, n_boot=200, seed=1)
    est = binary_metrics(y, a)[metric]
    assert lo <= est <= hi and hi - lo > 0
    assert bootstrap_ci(y, a, metric=metric, n_boot=200, seed=1) == (lo, hi)


def test_bootstrap_groups_resample_whole_patients():
    # each patient holds two identical lesions: grouped resampling keeps pairs together, so
    # the CI is wider than the lesion-level one that treats the copies as independent
    y, a, _ = _data(n=40)
    y2, a2 = np.repeat(y, 2), np.repeat(a, 2)
    groups = np.repeat(np.arange(40), 2)
    lo_g, hi_g = bootstrap_ci(y2, a2, n_boot=400, groups=groups)
    lo_l, hi_l = bootstrap_ci(y2, a2, n_boot=400)
    assert hi_g - lo_g > hi_l - lo_l


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: roc_auc([0, 1], [0.1]), "differ in length: 2 vs 1"),
        (lambda: roc_auc([], []), "labels are empty"),
        (lambda: roc_auc([0, 2], [0.1, 0.2]), r"labels must be 0 or 1, got \[2\]"),
        (lambda: roc_auc([0, 1], [0.1, float("nan")]), r"NaN/Inf at positions \[1\]"),
        (lambda: roc_auc([1, 1], [0.1, 0.2]), "AUC is undefined with one class: 2 positive and 0 negative"),
        (lambda: youden_threshold([0, 0], [0.1, 0.2]), "cannot be tuned on one class"),
        (lambda: bootstrap_ci([0, 1], [0.1, 0.2], metric="f1"), "metric must be one of"),
        (lambda: bootstrap_ci([0, 1], [0.1, 0.2], n_boot=5), "n_boot must be >= 10, got 5"),
        (lambda: bootstrap_ci([0, 1], [0.1, 0.2], alpha=1.5), r"alpha must be in \(0, 1\), got 1.5"),
        (lambda: bootstrap_ci([0, 0], [0.1, 0.2]), "AUC is undefined with one class"),
        (lambda: bootstrap_ci([0, 1], [0.1, 0.2], groups=[1]), "groups has 1 entries for 2 lesions"),
        (lambda: bootstrap_ci([0, 0], [0.1, 0.2], metric="sensitivity", n_boot=10), "only 0 of 100 bootstrap resamples"),
        (lambda: delong_test([0, 1], [0.1, 0.2], [0.3]), "labels and scores_b differ in length"),
        (lambda: delong_test([1, 1], [0.1, 0.2], [0.3, 0.4]), "needs both classes: 2 positive and 0 negative"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_all_pairs_of_small_sets_agree_with_sklearn():
    for y in itertools.product([0, 1], repeat=5):
        if 0 < sum(y) < 5:
            s = [0.3, 0.3, 0.1, 0.9, 0.5]
            assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
