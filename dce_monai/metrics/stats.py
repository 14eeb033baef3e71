"""Binary classification statistics for lesion-level results: metrics, CIs, DeLong.

Both seed papers report per-lesion ROC AUC with sensitivity, specificity and accuracy; seed 1
compares 35 channel triplets, so differences between AUCs need a paired test. These functions
work on plain arrays (labels in {0, 1}, scores in any monotone unit, usually probabilities).

The conventions follow R's pROC (Robin et al. 2011), the reference most medical papers cite:
the DeLong variance and the paired DeLong test are undefined (NaN, with a reason) when a class
holds a single lesion; the DeLong CI of one AUC is AUC ± z·SE clipped to [0, 1]; the
bootstrap may resample within each class (stratified, pROC's default). Which CI fits which
data is discussed in ``docs/statistics.md``.

Written here rather than taken from a package: scikit-learn has no DeLong test and no grouped
(patient-level) bootstrap, and the fast DeLong algorithm is a few lines of numpy.

References:
    E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson, "Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach",
    Biometrics 44 (1988) 837-845.
    X. Sun, W. Xu, "Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves", IEEE SPL 21 (2014) 1389-1393.
    X. Robin et al., "pROC: an open-source package for R and S+ to analyze and compare ROC
    curves", BMC Bioinformatics 12 (2011) 77.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from monai.utils import look_up_option
from scipy import stats as _sps

__all__ = [
    "ConfidenceInterval",
    "as_id_list",
    "auc_ci",
    "binary_metrics",
    "bootstrap_ci",
    "delong_ci",
    "delong_test",
    "roc_auc",
    "youden_threshold",
]

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
    """Ranks 1..n of ``x`` with ties given their mean rank (as in Sun & Xu 2014).

    Same values as ``scipy.stats.rankdata(x, method="average")``; written out because that call
    spends about 0.5 ms per array in scipy's array-API dispatch, which dominated the bootstrap
    (one ranking per resample).
    """
    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    out = np.empty(n, dtype=np.float64)
    out[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return out


def _auc(y: np.ndarray, s: np.ndarray, n1: int) -> float:
    """AUC of checked arrays with ``0 < n1 < y.size`` (Mann-Whitney U / (n1 n0))."""
    n0 = y.size - n1
    return float((_midrank(s)[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


_VAR_TOL = 1e-15  # a variance at or below this is zero up to rounding


class ConfidenceInterval(tuple):
    """A ``(low, high)`` confidence interval that also says how it was obtained.

    A tuple subclass, so ``lo, hi = bootstrap_ci(...)`` and ``ci == (lo, hi)`` work as for a
    plain pair, while ``ci.method`` etc. tell a report which method made it.

    Attributes:
        low: lower bound (NaN when undefined, see ``reason``).
        high: upper bound.
        estimate: the metric on the full data.
        method: ``"delong"`` or ``"bootstrap"``.
        level: coverage, ``1 - alpha``.
        stratified: bootstrap resampled within each class.
        grouped: bootstrap resampled whole groups (patients).
        n_boot: bootstrap resamples (``None`` for DeLong).
        reason: why the interval is undefined or has no width; ``""`` otherwise.
    """

    estimate: float
    method: str
    level: float
    stratified: bool
    grouped: bool
    n_boot: int | None
    reason: str

    def __new__(
        cls,
        low: float,
        high: float,
        *,
        estimate: float,
        method: str,
        level: float,
        stratified: bool = False,
        grouped: bool = False,
        n_boot: int | None = None,
        reason: str = "",
    ) -> ConfidenceInterval:
        self = super().__new__(cls, (float(low), float(high)))
        self.estimate, self.method, self.level = float(estimate), str(method), float(level)
        self.stratified, self.grouped, self.n_boot, self.reason = bool(stratified), bool(grouped), n_boot, str(reason)
        return self

    @property
    def low(self) -> float:
        """Lower bound."""
        return self[0]

    @property
    def high(self) -> float:
        """Upper bound."""
        return self[1]

    def describe(self) -> str:
        """The method in words, e.g. ``"DeLong"`` or ``"stratified bootstrap over patients, 1000 resamples"``."""
        if self.method == "delong":
            return "DeLong"
        unit = "patients" if self.grouped else "lesions"
        return f"{'stratified ' if self.stratified else ''}bootstrap over {unit}, {self.n_boot} resamples"

    def __repr__(self) -> str:
        extra = f", reason={self.reason!r}" if self.reason else ""
        return (f"ConfidenceInterval(low={self.low!r}, high={self.high!r}, estimate={self.estimate!r}, level={self.level!r}, "
                f"method={self.describe()!r}{extra})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_ci, (tuple(self), dict(vars(self))))


def _rebuild_ci(bounds: tuple[float, float], attrs: dict[str, Any]) -> ConfidenceInterval:
    return ConfidenceInterval(*bounds, **attrs)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(x, str) and not x.strip())


def as_id_list(ids: Any, what: str = "ids") -> list[Hashable]:
    """Ids as a list of hashable values, kept as given; refuses missing ones.

    Ids are compared as Python values: ``1`` and ``"1"`` are two ids (no ``str()``), ``1`` and
    ``np.int64(1)`` one. numpy/torch arrays are flattened and their elements made Python
    scalars; a list is taken element by element (``np.asarray`` would turn ``[1, "1"]`` into
    two equal strings).

    Args:
        ids: a sequence or array of ids (patient or lesion ids).
        what: name used in error messages.

    Returns:
        The ids in order.

    Raises:
        ValueError: ``ids`` is a string; an id is missing (``None``, NaN, empty string), naming
            the positions; an id is unhashable, naming the position.

    Example:
        >>> as_id_list([1, "1", "P2"], "patient ids")
        [1, '1', 'P2']
    """
    if isinstance(ids, (str, bytes)):
        raise ValueError(f"{what} must be a sequence of ids, got the string {ids!r}.")
    if isinstance(ids, (list, tuple)):
        seq = list(ids)
    elif isinstance(ids, np.ndarray) or type(ids).__module__.split(".")[0] == "torch":
        seq = ids.reshape(-1).tolist()
    else:
        seq = list(ids)
    out: list[Hashable] = []
    missing: list[int] = []
    for i, x in enumerate(seq):
        if getattr(x, "ndim", None) == 0 and hasattr(x, "item"):
            x = x.item()
        if _is_missing(x):
            missing.append(i)
            continue
        try:
            hash(x)
        except TypeError:
            raise ValueError(f"{what} at position {i} is {x!r} ({type(x).__name__}), not a hashable id such as a str or int.") from None
        out.append(x)
    if missing:
        raise ValueError(f"{what} missing (None, NaN or empty) at positions {missing[:10]} ({len(missing)} of {len(seq)}); "
                         "every lesion needs one.")
    return out


def _group_members(groups: Any, n: int) -> list[np.ndarray]:
    """Lesion indices of each group; groups sorted when their ids sort (as ``np.unique`` did), else first-seen."""
    g = as_id_list(groups, "groups")
    if len(g) != n:
        raise ValueError(f"groups has {len(g)} entries for {n} lesions.")
    index: dict[Hashable, list[int]] = {}
    for i, k in enumerate(g):
        index.setdefault(k, []).append(i)
    keys = list(index)
    try:
        keys = sorted(keys)  # type: ignore[type-var]
    except TypeError:
        pass  # mixed id types (1 and "1"): first-seen order
    return [np.asarray(index[k]) for k in keys]


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
    return _auc(y, s, n1)


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
    stratified: bool = False,
) -> ConfidenceInterval:
    """Percentile bootstrap ``(1 - alpha)`` confidence interval of a metric.

    With ``groups`` (e.g. patient ids) whole groups are resampled, so lesions of one patient
    stay together (the folds are patient-wise; the CI should be too). With ``stratified``
    each class is resampled to its own size, as pROC does by default; with ``groups`` the
    groups are stratified by the labels they hold (negative only, positive only, both), so
    every resample keeps the number of groups of each kind.

    Minimum number of resamples: the interval is always taken over exactly ``n_boot`` valid
    resamples. A non-stratified resample that lacks a class the metric needs (both for AUC,
    positives for sensitivity, negatives for specificity) is redrawn, at most
    ``10 * n_boot`` draws in all; if fewer than ``n_boot`` valid resamples came out of them
    the function raises instead of using the few it has. With both classes present a
    resample lacks one with probability at most 1/2 (two lesions, one of each), so this
    only fires on a broken input; a stratified resample is always valid.

    Args:
        labels: 0/1 per lesion.
        scores: score per lesion.
        metric: ``auc``, ``sensitivity``, ``specificity`` or ``accuracy``.
        n_boot: number of bootstrap resamples (>= 10).
        alpha: two-sided level, 0 < alpha < 1 (0.05 gives a 95 % CI).
        seed: seed of the resampling RNG (same seed, same interval).
        groups: optional group id per lesion, kept as given (``1`` and ``"1"`` are two
            groups; ``None``, NaN or an empty string is refused).
        threshold: decision threshold for the threshold metrics.
        stratified: resample within each class (pROC's ``boot.stratified``).

    Returns:
        A :class:`ConfidenceInterval`: unpacks as ``(low, high)`` and says how it was made
        (``method="bootstrap"``, ``stratified``, ``grouped``, ``n_boot``, ``estimate``).

    Raises:
        ValueError: unknown metric, bad ``n_boot``/``alpha``, ``groups`` of another length or
            with a missing id, the class the metric needs absent, fewer than ``n_boot`` valid
            resamples in ``10 * n_boot`` draws.

    Example:
        >>> lo, hi = bootstrap_ci([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.8, 0.6, 0.5, 0.4], n_boot=200)
        >>> 0.0 <= lo <= hi <= 1.0
        True
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    if int(n_boot) < 10:
        raise ValueError(f"n_boot must be >= 10, got {n_boot!r}.")
    n_boot = int(n_boot)
    _check_alpha(alpha)
    y, s = _arrays(labels, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    if metric == "auc" and (n1 == 0 or n0 == 0):
        raise ValueError(f"AUC is undefined with one class ({y.size} lesions, all label {int(y[0])}).")
    if (metric == "sensitivity" and n1 == 0) or (metric == "specificity" and n0 == 0):
        missing = "positive" if metric == "sensitivity" else "negative"
        raise ValueError(f"{metric} is undefined without {missing} lesions ({y.size} lesions, all label {int(y[0])}).")
    members = [np.array([i]) for i in range(y.size)] if groups is None else _group_members(groups, y.size)
    if stratified:
        kinds = [frozenset(y[m].tolist()) for m in members]
        strata = [np.array([k for k, kd in enumerate(kinds) if kd == key]) for key in (frozenset({0}), frozenset({1}), frozenset({0, 1}))]
        strata = [st for st in strata if st.size]
    else:
        strata = [np.arange(len(members))]
    rng = np.random.default_rng(seed)
    vals: list[float] = []
    draws = 0
    max_draws = 10 * n_boot
    while len(vals) < n_boot and draws < max_draws:
        draws += 1
        pick = np.concatenate([st[rng.integers(0, st.size, st.size)] for st in strata])
        idx = pick if groups is None else np.concatenate([members[k] for k in pick])
        yb, sb = y[idx], s[idx]
        if metric == "auc":
            n1b = int(yb.sum())
            if n1b == 0 or n1b == yb.size:
                continue
            vals.append(_auc(yb, sb, n1b))
        else:
            v = binary_metrics(yb, sb, threshold)[metric]
            if not math.isnan(v):
                vals.append(v)
    if len(vals) < n_boot:
        raise ValueError(
            f"only {len(vals)} of {draws} bootstrap resamples held the classes {metric} needs; the CI needs "
            f"n_boot={n_boot} valid resamples within {max_draws} draws (stratified=True never draws an invalid one)."
        )
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    est = roc_auc(y, s) if metric == "auc" else binary_metrics(y, s, threshold)[metric]
    return ConfidenceInterval(lo, hi, estimate=est, method="bootstrap", level=1.0 - float(alpha), stratified=bool(stratified),
                              grouped=groups is not None, n_boot=n_boot)


def _placements(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's placement values (structural components) of one score.

    V10[i] = P(score of positive i > a random negative) (ties count 1/2), V01[j] = P(a random
    positive > negative j); AUC = mean(V10) = mean(V01). Computed from midranks (Sun & Xu 2014)
    in O(n log n) instead of the n1 x n0 pairwise comparisons of DeLong et al. (1988).
    """
    n1 = int(y.sum())
    pos, neg = s[y == 1], s[y == 0]
    tx, ty, tz = _midrank(pos), _midrank(neg), _midrank(np.concatenate([pos, neg]))
    n0 = neg.size
    v10 = (tz[:n1] - tx) / n0
    v01 = 1.0 - (tz[n1:] - ty) / n1
    return float((tz[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)), v10, v01


def _too_few(n1: int, n0: int) -> str:
    """Reason why the DeLong variance is undefined (a class with one lesion), or ``""``."""
    if n1 < 2 and n0 < 2:
        return "one lesion per class"
    if n1 < 2:
        return "only one positive lesion"
    if n0 < 2:
        return "only one negative lesion"
    return ""


def delong_ci(labels: Any, scores: Any, alpha: float = 0.05) -> ConfidenceInterval:
    """DeLong ``(1 - alpha)`` confidence interval of one AUC (pROC's default ``ci.auc``).

    Formula: with placement values V10 (positives) and V01 (negatives),
    Var(AUC) = var(V10)/n1 + var(V01)/n0 (sample variances, ddof 1) and the interval is
    AUC ± z_{1-alpha/2}·sqrt(Var), each bound clipped to [0, 1]. DeLong treats the lesions as
    independent; for several lesions per patient use :func:`bootstrap_ci` with ``groups``.

    Args:
        labels: 0/1 per lesion.
        scores: score per lesion.
        alpha: two-sided level, 0 < alpha < 1.

    Returns:
        A :class:`ConfidenceInterval` with ``method="delong"``. With a single lesion in a
        class the variance is undefined: both bounds are NaN and ``reason`` says why (pROC
        returns NA). With zero variance (perfect separation, constant scores) the interval
        has zero width and ``reason`` says so.

    Raises:
        ValueError: one class only, bad ``alpha``, lengths differ, labels not 0/1, NaN scores.

    Example:
        >>> ci = delong_ci([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.5, 0.5, 0.5, 0.9])
        >>> round(ci.estimate, 4), round(ci.low, 4), ci.high
        (0.8889, 0.6454, 1.0)
    """
    _check_alpha(alpha)
    y, s = _arrays(labels, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"DeLong CI needs both classes: {n1} positive and {n0} negative lesions.")
    auc, v10, v01 = _placements(y, s)
    level = 1.0 - float(alpha)
    why = _too_few(n1, n0)
    if why:
        return ConfidenceInterval(math.nan, math.nan, estimate=auc, method="delong", level=level, reason=why)
    var = float(np.var(v10, ddof=1) / n1 + np.var(v01, ddof=1) / n0)
    half = float(_sps.norm.ppf(1.0 - alpha / 2)) * math.sqrt(max(var, 0.0))
    reason = "zero DeLong variance (perfect separation or constant scores): the interval has no width" if var <= _VAR_TOL else ""
    return ConfidenceInterval(max(0.0, auc - half), min(1.0, auc + half), estimate=auc, method="delong", level=level, reason=reason)


def auc_ci(
    labels: Any,
    scores: Any,
    method: str = "delong",
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
    stratified: bool = True,
) -> ConfidenceInterval:
    """Confidence interval of the AUC by DeLong or by bootstrap, with pROC's defaults.

    ``method="delong"`` calls :func:`delong_ci` (independent lesions); ``"bootstrap"`` calls
    :func:`bootstrap_ci` with ``metric="auc"`` (stratified, 2000 resamples, as pROC's
    ``ci.auc(method="bootstrap")``; with ``groups`` whole patients are resampled).

    Args:
        labels: 0/1 per lesion.
        scores: score per lesion.
        method: ``"delong"`` or ``"bootstrap"``.
        alpha: two-sided level.
        n_boot: bootstrap resamples (bootstrap only).
        seed: bootstrap seed (bootstrap only).
        groups: group (patient) id per lesion (bootstrap only).
        stratified: resample within each class (bootstrap only).

    Returns:
        A :class:`ConfidenceInterval`; its ``method`` and ``describe()`` say which was used.

    Raises:
        ValueError: unknown ``method``; ``groups`` with ``method="delong"`` (DeLong cannot
            keep a patient's lesions together); and whatever the called function raises.

    Example:
        >>> auc_ci([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.5, 0.5, 0.5, 0.9]).describe()
        'DeLong'
    """
    method = look_up_option(method, ("delong", "bootstrap"))
    if method == "delong":
        if groups is not None:
            raise ValueError("groups were given with method='delong': DeLong assumes independent lesions and cannot keep a "
                             "patient's lesions together; use method='bootstrap' to resample whole groups.")
        return delong_ci(labels, scores, alpha)
    return bootstrap_ci(labels, scores, "auc", n_boot=n_boot, alpha=alpha, seed=seed, groups=groups, stratified=stratified)


def delong_test(labels: Any, scores_a: Any, scores_b: Any) -> dict[str, Any]:
    """DeLong's paired test of two correlated AUCs on the same lesions (two-sided).

    Formula (Sun & Xu 2014): with structural components V10 (positives) and V01 (negatives)
    of each score, S = cov(V10)/n1 + cov(V01)/n0; z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab).
    Corner cases as in pROC's ``roc.test``: zero variance and equal AUCs give z = 0, p = 1;
    zero variance and different AUCs give z = ±inf, p = 0; a class with a single lesion leaves
    the covariance undefined, so z and p are NaN and ``reason`` says why.

    Returns:
        ``{"auc_a", "auc_b", "z", "p", "reason"}``; ``reason`` is ``""`` when z and p are defined.

    Raises:
        ValueError: one class only, lengths differ, labels not 0/1, NaN scores.

    Example:
        >>> r = delong_test([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.8, 0.6, 0.5, 0.7], [0.1, 0.3, 0.8, 0.6, 0.5, 0.7])
        >>> r["p"]
        1.0
        >>> delong_test([0, 1, 1], [0.2, 0.9, 0.4], [0.3, 0.6, 0.1])["reason"]
        'only one negative lesion'
    """
    y, a = _arrays(labels, scores_a, "scores_a")
    _, b = _arrays(labels, scores_b, "scores_b")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"DeLong test needs both classes: {n1} positive and {n0} negative lesions.")
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = _placements(y, a), _placements(y, b)
    why = _too_few(n1, n0)
    if why:
        return {"auc_a": auc_a, "auc_b": auc_b, "z": math.nan, "p": math.nan, "reason": why}
    cov = np.cov(np.stack([v10a, v10b])) / n1 + np.cov(np.stack([v01a, v01b])) / n0
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    if var <= _VAR_TOL:
        z = 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
    else:
        z = diff / math.sqrt(var)
    p = float(2 * _sps.norm.sf(abs(z)))
    return {"auc_a": auc_a, "auc_b": auc_b, "z": float(z), "p": p, "reason": ""}
