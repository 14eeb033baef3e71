from __future__ import annotations

import itertools
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dce_monai.metrics import stats as stats_mod
from dce_monai.metrics.stats import (
    ConfidenceInterval,
    as_id_list,
    auc_ci,
    binary_metrics,
    bootstrap_ci,
    delong_ci,
    delong_test,
    roc_auc,
    youden_threshold,
)

# Two-sided 95 % normal quantile z_0.975, from standard normal tables (Abramowitz & Stegun
# 26.2): 1.959963984540054.
Z975 = 1.959963984540054


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
    assert r["p"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2.0)), rel=1e-9)  # two-sided normal p of the pairwise z


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
        (lambda: bootstrap_ci([0, 0], [0.1, 0.2], metric="sensitivity", n_boot=10), r"sensitivity is undefined without positive lesions \(2 lesions, all label 0\)"),
        (lambda: bootstrap_ci([1, 1], [0.1, 0.2], metric="specificity", n_boot=10), r"specificity is undefined without negative lesions \(2 lesions, all label 1\)"),
        (lambda: bootstrap_ci([0, 1], [0.1, 0.2], groups=[None, "P1"]), r"groups missing \(None, NaN or empty\) at positions \[0\] \(1 of 2\)"),
        (lambda: delong_ci([0, 0], [0.1, 0.2]), "DeLong CI needs both classes: 0 positive and 2 negative"),
        (lambda: delong_ci([0, 1], [0.1, 0.2], alpha=0), r"alpha must be in \(0, 1\), got 0"),
        (lambda: auc_ci([0, 1], [0.1, 0.2], method="wald"), "wald"),
        (lambda: auc_ci([0, 1], [0.1, 0.2], groups=["P1", "P2"]), "groups were given with method='delong': DeLong assumes independent lesions"),
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


# ----------------------------------------------------------------------------- reference values
# Each case below states its reference numbers and where they come from: placement values
# (DeLong et al. 1988, eq. for V10 / V01) derived by hand in the comments, or a published data set.


def test_delong_ci_hand_computed_with_ties_and_clipping():
    # positives 0.9, 0.5, 0.5; negatives 0.5, 0.3, 0.1 (a tie across the classes at 0.5).
    # V10 (share of negatives below each positive, ties 1/2):
    #   0.9 -> 3/3 = 1;  0.5 -> (0.5 + 1 + 1)/3 = 5/6;  0.5 -> 5/6
    # V01 (share of positives above each negative, ties 1/2):
    #   0.5 -> (1 + 0.5 + 0.5)/3 = 2/3;  0.3 -> 1;  0.1 -> 1
    # AUC = mean V10 = (1 + 5/6 + 5/6)/3 = 8/9 = mean V01.
    # var(V10, ddof 1) = [(1/9)^2 + 2 (1/18)^2]/2 = (1/54)/2 = 1/108
    # var(V01, ddof 1) = [(2/9)^2 + 2 (1/9)^2]/2 = (2/27)/2 = 1/27
    # Var(AUC) = (1/108)/3 + (1/27)/3 = 1/324 + 4/324 = 5/324, SE = sqrt(5)/18 = 0.12422599...
    # 95 % CI = 8/9 -+ 1.959964 * 0.124226 = [0.645411, 1.132367] -> upper bound clipped to 1.
    y = [1, 1, 1, 0, 0, 0]
    s = [0.9, 0.5, 0.5, 0.5, 0.3, 0.1]
    ci = delong_ci(y, s)
    se = math.sqrt(5) / 18
    assert ci.estimate == pytest.approx(8 / 9, abs=1e-15)
    assert ci.low == pytest.approx(8 / 9 - Z975 * se, abs=1e-12)
    assert ci.low == pytest.approx(0.645411, abs=1e-6)
    assert ci.high == 1.0
    assert (ci.method, ci.level, ci.n_boot, ci.reason, ci.describe()) == ("delong", 0.95, None, "", "DeLong")
    lo, hi = ci  # unpacks like the plain pair it replaces
    assert (lo, hi) == ci
    # a 50 % interval is not clipped: z_0.75 = 0.6744897501960817 (normal tables)
    half = delong_ci(y, s, alpha=0.5)
    assert tuple(half) == pytest.approx((8 / 9 - 0.6744897501960817 * se, 8 / 9 + 0.6744897501960817 * se), abs=1e-12)


def test_delong_on_hanley_mcneil_1982_published_ratings():
    # Hanley & McNeil, Radiology 143 (1982) 29-36, Table 1: CT ratings (1 = definitely normal
    # .. 5 = definitely abnormal) of 58 normal and 51 abnormal patients; published AUC 0.893.
    normal = [33, 6, 6, 11, 2]
    abnormal = [3, 2, 2, 11, 33]
    y = [0] * 58 + [1] * 51
    s = [r for r, c in enumerate(normal, 1) for _ in range(c)] + [r for r, c in enumerate(abnormal, 1) for _ in range(c)]
    # placements per rating, by hand from the counts (ties count 1/2):
    #   abnormal rated r: V10 = (#normal below r + #normal at r / 2)/58
    #     r=1: 16.5/58  r=2: (33+3)/58  r=3: (39+3)/58  r=4: (45+5.5)/58  r=5: (56+1)/58
    #   normal rated r: V01 = (#abnormal above r + #abnormal at r / 2)/51
    #     r=1: (48+1.5)/51  r=2: (46+1)/51  r=3: (44+1)/51  r=4: (33+5.5)/51  r=5: 16.5/51
    # AUC = (3*16.5 + 2*36 + 2*42 + 11*50.5 + 33*57)/(58*51) = 2642/2958 = 0.89317 (paper: 0.893)
    v10 = [Fraction(33, 116), Fraction(36, 58), Fraction(42, 58), Fraction(101, 116), Fraction(57, 58)]
    v01 = [Fraction(99, 102), Fraction(47, 51), Fraction(45, 51), Fraction(77, 102), Fraction(33, 102)]
    theta = Fraction(2642, 2958)
    assert sum(c * v for c, v in zip(abnormal, v10)) / 51 == theta == sum(c * v for c, v in zip(normal, v01)) / 58
    var = (sum(c * (v - theta) ** 2 for c, v in zip(abnormal, v10)) / 50 / 51
           + sum(c * (v - theta) ** 2 for c, v in zip(normal, v01)) / 57 / 58)
    assert var == Fraction(17089, 18102960)  # SE 0.030724; the paper's own (exponential) SE is 0.032
    ci = delong_ci(y, s)
    assert ci.estimate == pytest.approx(0.893, abs=5e-4)
    assert ci.estimate == pytest.approx(float(theta), abs=1e-14)
    se = math.sqrt(float(var))
    assert tuple(ci) == pytest.approx((float(theta) - Z975 * se, float(theta) + Z975 * se), abs=1e-12)
    # paired test of the ratings against their own reversal: AUC 0.893 vs 0.107, and the V's of
    # the reversal are 1 - V, so cov = -var and Var(diff) = 4 var; z = (2 theta - 1)/(2 SE)
    r = delong_test(y, s, [-v for v in s])
    assert r["auc_b"] == pytest.approx(1 - float(theta), abs=1e-14)
    assert r["z"] == pytest.approx((2 * float(theta) - 1) / (2 * se), rel=1e-12)


def test_delong_test_hand_computed_with_correlation():
    # same lesions as the CI case; score a as there, score b: positives 0.7, 0.2, 0.6;
    # negatives 0.4, 0.3, 0.8.
    # a: V10 = [1, 5/6, 5/6], V01 = [2/3, 1, 1], AUC 8/9 (see test above)
    # b: V10: 0.7 -> 2/3 (above 0.4, 0.3), 0.2 -> 0, 0.6 -> 2/3;  V01: 0.4 -> 2/3, 0.3 -> 2/3, 0.8 -> 0
    #    AUC_b = (2/3 + 0 + 2/3)/3 = 4/9
    # deviations from the means, positives: a [1/9, -1/18, -1/18], b [2/9, -4/9, 2/9]
    #   var_a 1/108, var_b (4+16+4)/81/2 = 4/27, cov (2/81 + 4/162 - 2/162)/2 = 1/54
    # negatives: a [-2/9, 1/9, 1/9], b [2/9, 2/9, -4/9]
    #   var_a 1/27, var_b 4/27, cov (-4/81 + 2/81 - 4/81)/2 = -1/27
    # Var(AUC_a - AUC_b) = (1/108 + 4/27 - 2/54)/3 + (1/27 + 4/27 + 2/27)/3 = 13/324 + 28/324 = 41/324
    # z = (4/9) / sqrt(41/324) = 8/sqrt(41) = 1.249390;  p = 2 (1 - Phi(z)) = erfc(z / sqrt 2) = erfc(8/sqrt 82)
    y = [1, 1, 1, 0, 0, 0]
    a = [0.9, 0.5, 0.5, 0.5, 0.3, 0.1]
    b = [0.7, 0.2, 0.6, 0.4, 0.3, 0.8]
    r = delong_test(y, a, b)
    assert (r["auc_a"], r["auc_b"]) == (pytest.approx(8 / 9, abs=1e-15), pytest.approx(4 / 9, abs=1e-15))
    assert r["z"] == pytest.approx(8 / math.sqrt(41), rel=1e-12)
    assert r["p"] == pytest.approx(math.erfc(8 / math.sqrt(82)), rel=1e-9)
    assert r["reason"] == ""
    swapped = delong_test(y, b, a)
    assert swapped["z"] == pytest.approx(-r["z"], rel=1e-12) and swapped["p"] == pytest.approx(r["p"], rel=1e-12)


def test_delong_test_against_a_perfect_score():
    # positives 0.9, 0.4; negatives 0.6, 0.1. a: V10 = [1, 1/2], V01 = [1/2, 1], AUC 3/4.
    # b = perfect (V's all 1, zero variance, zero covariance with a).
    # Var(diff) = var(V10_a)/2 + var(V01_a)/2 = (1/8)/2 + (1/8)/2 = 1/8 (var of {1, 1/2}, ddof 1, = 1/8)
    # z = (3/4 - 1)/sqrt(1/8) = -1/sqrt(2);  p = erfc(1/2) = 0.4795001221869535
    r = delong_test([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], [0.8, 0.7, 0.3, 0.2])
    assert r["z"] == pytest.approx(-1 / math.sqrt(2), rel=1e-12)
    assert r["p"] == pytest.approx(math.erfc(0.5), rel=1e-12)


@pytest.mark.parametrize(
    ("y", "a", "auc_a", "reason"),
    [
        # one lesion per class: AUC 1 (0.8 > 0.3); pROC returns NA for both the test and the CI
        ([1, 0], [0.8, 0.3], 1.0, "one lesion per class"),
        ([0, 1], [0.8, 0.8], 0.5, "one lesion per class"),
        # one positive (0.55) among nine negatives 0.1..0.9: 5 negatives below -> AUC 5/9;
        # the former zero-variance shortcut gave a confident z from this single lesion
        ([1] + [0] * 9, [0.55] + [k / 10 for k in range(1, 10)], 5 / 9, "only one positive lesion"),
        # one negative (0.5) among three positives 0.9, 0.2, 0.5: (1 + 0 + 0.5)/3 = 1/2
        ([0, 1, 1, 1], [0.5, 0.9, 0.2, 0.5], 0.5, "only one negative lesion"),
    ],
)
@pytest.mark.parametrize("kind", [list, np.asarray, torch.tensor])
def test_one_lesion_in_a_class_gives_nan_with_reason(y, a, auc_a, reason, kind):
    b = list(reversed(a))
    r = delong_test(kind(y), kind(a), kind(b))
    assert r["auc_a"] == pytest.approx(auc_a, abs=1e-15)
    assert math.isnan(r["z"]) and math.isnan(r["p"]) and r["reason"] == reason
    ci = delong_ci(kind(y), kind(a))
    assert math.isnan(ci.low) and math.isnan(ci.high) and ci.reason == reason
    assert ci.estimate == pytest.approx(auc_a, abs=1e-15)


def test_constant_and_perfect_scores_follow_proc():
    y = [0, 0, 1, 1, 1]
    const = [0.5] * 5
    perfect = [0.1, 0.2, 0.7, 0.8, 0.9]
    # constant: every placement is 1/2 -> AUC 1/2 and zero variance; perfect: every placement 1
    ci = delong_ci(y, const)
    assert tuple(ci) == (0.5, 0.5) and ci.estimate == 0.5 and "zero DeLong variance" in ci.reason
    assert tuple(delong_ci(y, perfect)) == (1.0, 1.0)
    # pROC's roc.test: d = 0 and sigma = 0 -> z = 0, p = 1; d != 0 and sigma = 0 -> z = d/0 = inf, p = 0
    same = delong_test(y, const, const)
    assert (same["z"], same["p"], same["reason"]) == (0.0, 1.0, "")
    diff = delong_test(y, perfect, const)
    assert (diff["auc_a"], diff["auc_b"], diff["z"], diff["p"]) == (1.0, 0.5, math.inf, 0.0)
    assert delong_test(y, const, perfect)["z"] == -math.inf


# ----------------------------------------------------------------------------- bootstrap options


def test_stratified_bootstrap_keeps_class_sizes():
    # every lesion scores 0.9 >= 0.5 (all called positive), so a resample's accuracy is its share
    # of positives: a stratified resample always holds 1 positive of 4 -> accuracy exactly 1/4
    y = [1, 0, 0, 0]
    s = [0.9] * 4
    ci = bootstrap_ci(y, s, "accuracy", n_boot=200, stratified=True)
    assert tuple(ci) == (0.25, 0.25)
    assert (ci.method, ci.stratified, ci.grouped, ci.n_boot) == ("bootstrap", True, False, 200)
    assert ci.describe() == "stratified bootstrap over lesions, 200 resamples"
    plain = bootstrap_ci(y, s, "accuracy", n_boot=200)
    assert plain.high - plain.low > 0.2 and not plain.stratified
    # patients stratified by the labels they hold: P1 holds both classes, P2 and P3 negatives only;
    # each resample = P1 once + two negative-only patients of one lesion each -> 1 of 4 positive
    g = ["P1", "P1", "P2", "P3"]
    gci = bootstrap_ci(y, s, "accuracy", n_boot=200, groups=g, stratified=True)
    assert tuple(gci) == (0.25, 0.25) and gci.grouped
    assert gci.describe() == "stratified bootstrap over patients, 200 resamples"
    assert bootstrap_ci(y, s, "accuracy", n_boot=200, groups=g).high > 0.25


def test_stratified_auc_bootstrap_with_one_positive_never_redraws():
    # one positive (0.9) and negatives 0.1, 0.95: a stratified resample keeps the positive and
    # draws two negatives; its AUC = share of drawn negatives below 0.9, so it is 0, 1/2 or 1 with
    # probabilities 1/4, 1/2, 1/4. The 2.5 % and 97.5 % quantiles are therefore 0 and 1.
    ci = bootstrap_ci([1, 0, 0], [0.9, 0.1, 0.95], n_boot=400, stratified=True)
    assert tuple(ci) == (0.0, 1.0) and ci.estimate == 0.5


class _FakeRng:
    """Stands in for numpy's Generator: draws index 0 only, except every ``every``-th draw is the identity."""

    def __init__(self, every: int) -> None:
        self.every, self.calls = every, 0

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        self.calls += 1
        return np.arange(size) if self.every and self.calls % self.every == 0 else np.zeros(size, dtype=np.int64)


@pytest.mark.parametrize(("every", "valid"), [(0, 0), (20, 5)])
def test_bootstrap_refuses_fewer_valid_resamples_than_n_boot(monkeypatch, every, valid):
    # an RNG that keeps drawing lesion 0 only (one class): n_boot=10 allows 100 draws; with one
    # valid draw in 20 there are 5 valid resamples, fewer than the 10 required -> refused
    monkeypatch.setattr(stats_mod.np.random, "default_rng", lambda seed: _FakeRng(every))
    with pytest.raises(ValueError, match=rf"only {valid} of 100 bootstrap resamples held the classes auc needs; the CI needs n_boot=10"):
        bootstrap_ci([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], n_boot=10)


def test_auc_ci_defaults_and_methods():
    y, a, _ = _data(n=60)
    d = auc_ci(y, a)
    assert d == delong_ci(y, a) and d.method == "delong"
    b = auc_ci(y, a, method="bootstrap", n_boot=300, seed=2)
    assert b.stratified and b.n_boot == 300 and b.low < d.estimate < b.high
    assert b == bootstrap_ci(y, a, n_boot=300, seed=2, stratified=True)
    # DeLong and the bootstrap estimate the same spread on independent lesions
    assert (b.high - b.low) == pytest.approx(d.high - d.low, rel=0.3)
    g = auc_ci(y, a, method="bootstrap", n_boot=100, groups=np.arange(60) // 2)
    assert g.grouped and "over patients" in g.describe()


def test_confidence_interval_pickles_and_prints():
    ci = bootstrap_ci([0, 1, 0, 1, 1, 0], [0.2, 0.7, 0.4, 0.9, 0.3, 0.1], n_boot=50, stratified=True)
    back = pickle.loads(pickle.dumps(ci))
    assert isinstance(back, ConfidenceInterval) and back == ci and vars(back) == vars(ci)
    assert "stratified bootstrap over lesions, 50 resamples" in repr(ci)


# ----------------------------------------------------------------------------- identifiers


def test_group_ids_are_kept_as_given():
    y, a, _ = _data(n=40)
    lesion = bootstrap_ci(y, a, n_boot=200)
    # 1 and "1" (and 2 and "2", ...) are different patients: one lesion each, as without groups
    mixed = [k // 2 if k % 2 else str(k // 2) for k in range(40)]
    assert bootstrap_ci(y, a, n_boot=200, groups=mixed) == lesion
    # through str() they would merge into 20 patients of two lesions, a different interval
    assert bootstrap_ci(y, a, n_boot=200, groups=[str(g) for g in mixed]) != lesion
    # sortable ids give the same groups in any container
    ids = np.arange(40) // 2
    ref = bootstrap_ci(y, a, n_boot=200, groups=ids.tolist())
    assert bootstrap_ci(y, a, n_boot=200, groups=torch.tensor(ids)) == ref == bootstrap_ci(y, a, n_boot=200, groups=ids)


@pytest.mark.parametrize("kind", [list, lambda v: np.asarray(v, dtype=object)])
@pytest.mark.parametrize(("bad", "label"), [(None, "None"), (float("nan"), "NaN"), (np.float32("nan"), "float32 NaN"), ("", "empty"), (" ", "blank")])
def test_missing_group_ids_are_refused_with_position(kind, bad, label):
    g = kind(["P1", "P2", bad, "P3"])
    with pytest.raises(ValueError, match=r"groups missing \(None, NaN or empty\) at positions \[2\] \(1 of 4\)"):
        bootstrap_ci([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], n_boot=10, groups=g)


def test_as_id_list():
    assert as_id_list([1, "1", np.int64(2), np.str_("P3")], "ids") == [1, "1", 2, "P3"]
    assert as_id_list(torch.tensor([[3, 4]])) == [3, 4]
    with pytest.raises(ValueError, match=r"patient ids must be a sequence of ids, got the string 'P1'"):
        as_id_list("P1", "patient ids")
    with pytest.raises(ValueError, match=r"ids at position 1 is \[2\] \(list\), not a hashable id"):
        as_id_list([1, [2]])


@pytest.mark.parametrize("x", [[3.0, 1.0, 2.0, 1.0, 3.0], [0.5] * 6, [7.0], np.round(np.random.default_rng(0).normal(size=300), 1).tolist()])
def test_midrank_equals_scipy_rankdata(x):
    from scipy.stats import rankdata

    assert np.array_equal(stats_mod._midrank(np.asarray(x)), rankdata(x, method="average"))
