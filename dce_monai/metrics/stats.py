"""Binary classification statistics for lesion-level results: metrics, bootstrap CIs, DeLong.

Both seed papers report per-lesion ROC AUC with sensitivity, specificity and accuracy; seed 1
compares 35 channel triplets, so differences between AUCs need a paired test. These functions
work on plain arrays (labels in {0, 1}, scores in any monotone unit, usually probabilities).

Written here rather than taken from a package: scikit-learn has no DeLong test and no grouped
(patient-level) bootstrap, and the fast DeLong algorithm is a few lines of numpy.

References:
    E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson, "Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach",
    Biometrics 44 (1988) 837-845.
    X. Sun, W. Xu, "Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves", IEEE SPL 21 (2014) 1389-1393.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as _sps

__all__ = ["binary_metrics", "bootstrap_ci", "delong_test", "roc_auc", "youden_threshold"]

_METRICS = ("auc", "sensitivity", "specificity", "accuracy")


def _arrays(labels: Any, scores: Any, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and {name} differ in length: {y.size} vs {s.size}.")
    if y.size == 0:
        raise ValueError("labels are empty: no lesion to evaluate.")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 or 1, got {np.unique(y[bad]).tolist()[:5]}.")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contain NaN/Inf at positions {np.flatnonzero(~np.isfinite(s))[:5].tolist()}.")
    return y.astype(np.int64), s


def _midrank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` with ties given their mean rank (as in Sun & Xu 2014)."""
    return _sps.rankdata(x, method="average")


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n1 n0); ties count one half).

    Raises:
        ValueError: a single class present, mismatched lengths, labels not 0/1, NaN scores.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y, s = _arrays(labels, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"AUC is undefined with one class: {n1} positive and {n0} negative lesions.")
    r = _midrank(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def youden_threshold(labels: Any, scores: Any) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 (predict positive if score >= t).

    Ties between thresholds are broken towards the one closest to 0.5 (the untuned default).

    Example:
        >>> youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9])
        0.7
    """
    y, s = _arrays(labels, scores)
    if y.min() == y.max():
        raise ValueError(f"a threshold cannot be tuned on one class ({y.size} lesions, all label {int(y[0])}).")
    cands = np.unique(s)
    pos = s[y == 1][None, :] >= cands[:, None]
    neg = s[y == 0][None, :] < cands[:, None]
    j = pos.mean(1) + neg.mean(1) - 1.0
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(cands[best[np.argmin(np.abs(cands[best] - 0.5))]])


def binary_metrics(labels: Any, scores: Any, threshold: float = 0.5) -> dict[str, float]:
    """AUC and, at ``threshold`` (positive if score >= threshold), sensitivity, specificity, accuracy.

    Returns:
        dict with ``auc`` (NaN with one class), ``sensitivity`` (NaN without positives),
        ``specificity`` (NaN without negatives), ``accuracy``, ``threshold``, ``n``, ``n_pos``.

    Example:
        >>> m = binary_metrics([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.6])
        >>> m["auc"], m["sensitivity"], m["specificity"]
        (0.75, 0.5, 0.5)
    """
    y, s = _arrays(labels, scores)
    pred = s >= threshold
    n1 = int(y.sum())
    n0 = y.size - n1
    tp = int(np.sum(pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    return {
        "auc": roc_auc(y, s) if n1 and n0 else math.nan,
        "sensitivity": tp / n1 if n1 else math.nan,
        "specificity": tn / n0 if n0 else math.nan,
        "accuracy": (tp + tn) / y.size,
        "threshold": float(threshold),
        "n": int(y.size),
        "n_pos": n1,
    }


def bootstrap_ci(
    labels: Any,
    scores: Any,
    metric: str = "auc",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    threshold: float = 0.5,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` confidence interval of a metric.

    With ``groups`` (e.g. patient ids) whole groups are resampled, so lesions of one patient
    stay together (the folds are patient-wise; the CI should be too). Resamples holding one
    class only are redrawn for AUC (at most ``10 * n_boot`` draws in total).

    Args:
        labels: 0/1 per lesion.
        scores: score per lesion.
        metric: ``auc``, ``sensitivity``, ``specificity`` or ``accuracy``.
        n_boot: number of bootstrap resamples (>= 10).
        alpha: two-sided level, 0 < alpha < 1 (0.05 gives a 95 % CI).
        seed: seed of the resampling RNG (same seed, same interval).
        groups: optional group id per lesion.
        threshold: decision threshold for the threshold metrics.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: unknown metric, bad ``n_boot``/``alpha``, ``groups`` of another length,
            one class only for AUC.

    Example:
        >>> lo, hi = bootstrap_ci([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.8, 0.6, 0.5, 0.4], n_boot=200)
        >>> 0.0 <= lo <= hi <= 1.0
        True
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    if int(n_boot) < 10:
        raise ValueError(f"n_boot must be >= 10, got {n_boot!r}.")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    y, s = _arrays(labels, scores)
    if metric == "auc" and y.min() == y.max():
        raise ValueError(f"AUC is undefined with one class ({y.size} lesions, all label {int(y[0])}).")
    if groups is None:
        members = [np.array([i]) for i in range(y.size)]
    else:
        g = np.asarray(groups).reshape(-1)
        if g.size != y.size:
            raise ValueError(f"groups has {g.size} entries for {y.size} lesions.")
        _, inv = np.unique(g, return_inverse=True)
        members = [np.flatnonzero(inv == k) for k in range(inv.max() + 1)]
    rng = np.random.default_rng(seed)
    vals: list[float] = []
    draws = 0
    while len(vals) < n_boot and draws < 10 * n_boot:
        draws += 1
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[k] for k in pick])
        yb, sb = y[idx], s[idx]
        if metric == "auc":
            if yb.min() == yb.max():
                continue
            vals.append(roc_auc(yb, sb))
        else:
            v = binary_metrics(yb, sb, threshold)[metric]
            if not math.isnan(v):
                vals.append(v)
    if len(vals) < 10:
        raise ValueError(f"only {len(vals)} of {draws} bootstrap resamples held both classes; too few lesions for a CI.")
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def delong_test(labels: Any, scores_a: Any, scores_b: Any) -> dict[str, float]:
    """DeLong's paired test of two correlated AUCs on the same lesions (two-sided).

    Formula (Sun & Xu 2014): with structural components V10 (positives) and V01 (negatives)
    of each score, S = cov(V10)/n1 + cov(V01)/n0; z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab).

    Returns:
        ``{"auc_a", "auc_b", "z", "p"}``; identical scores give z = 0, p = 1.

    Raises:
        ValueError: one class only, lengths differ, labels not 0/1, NaN scores.

    Example:
        >>> r = delong_test([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.8, 0.6, 0.5, 0.7], [0.1, 0.3, 0.8, 0.6, 0.5, 0.7])
        >>> r["p"]
        1.0
    """
    y, a = _arrays(labels, scores_a, "scores_a")
    _, b = _arrays(labels, scores_b, "scores_b")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"DeLong test needs both classes: {n1} positive and {n0} negative lesions.")
    aucs, v10, v01 = [], [], []
    for s in (a, b):
        pos, neg = s[y == 1], s[y == 0]
        tx, ty, tz = _midrank(pos), _midrank(neg), _midrank(np.concatenate([pos, neg]))
        auc = (tz[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
        aucs.append(float(auc))
        v10.append((tz[:n1] - tx) / n0)
        v01.append(1.0 - (tz[n1:] - ty) / n1)
    s10 = np.cov(np.stack(v10)) if n1 > 1 else np.zeros((2, 2))
    s01 = np.cov(np.stack(v01)) if n0 > 1 else np.zeros((2, 2))
    cov = s10 / n1 + s01 / n0
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = aucs[0] - aucs[1]
    if var <= 1e-15:
        z = 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
    else:
        z = diff / math.sqrt(var)
    p = float(2 * _sps.norm.sf(abs(z)))
    return {"auc_a": aucs[0], "auc_b": aucs[1], "z": float(z), "p": p}
