"""Report figures: ROC curves with bootstrap bands, channel-triplet ranking, kinetic curves, per-fold AUCs.

All figures are drawn with matplotlib's non-interactive Agg backend (no display needed) and
saved as PNG; every function returns the saved path. Inputs are plain arrays and dicts, so
the functions plot any experiment's results, not only those of this package's workflows.

The ROC band is a percentile bootstrap of the curve: each resample's true-positive rate is
interpolated on a fixed grid of false-positive rates, and the band spans the
``alpha/2 .. 1 - alpha/2`` quantiles per grid point (patients resampled together when
patient ids are given, as in :func:`dce_monai.metrics.stats.bootstrap_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dce_monai.metrics.stats import bootstrap_ci, roc_auc

__all__ = ["plot_channel_ranking", "plot_fold_metrics", "plot_kinetic_curves", "plot_roc_curves", "roc_curve_points"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def roc_curve_points(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of every threshold (from (0, 0) to (1, 1)).

    Tied scores move the curve diagonally, as the AUC's one-half rule for ties does.

    Raises:
        ValueError: lengths differ, one class only, labels not 0/1.

    Example:
        >>> fpr, tpr = roc_curve_points([0, 1], [0.2, 0.8])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    """
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {np.unique(y[~np.isin(y, (0, 1))]).tolist()[:5]}.")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"a ROC curve needs both classes: {n1} positive and {n0} negative lesions.")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / n0], np.r_[0.0, tp / n1]


def _parse_group(name: str, value: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise ValueError(f"group {name!r}: expected (labels, scores) or (labels, scores, patient_ids), got {type(value).__name__} of length {len(value) if hasattr(value, '__len__') else '?'}.")
    y = np.asarray(value[0]).reshape(-1)
    s = np.asarray(value[1], dtype=np.float64).reshape(-1)
    g = np.asarray(value[2]).reshape(-1) if len(value) == 3 else None
    if y.size != s.size or (g is not None and g.size != y.size):
        raise ValueError(f"group {name!r}: labels, scores (and patient ids) differ in length: {y.size}, {s.size}{'' if g is None else f', {g.size}'}.")
    return y, s, g


def _roc_band(y: np.ndarray, s: np.ndarray, g: np.ndarray | None, grid: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    members = [np.array([i]) for i in range(y.size)] if g is None else [np.flatnonzero(g == u) for u in np.unique(g)]
    rng = np.random.default_rng(seed)
    curves: list[np.ndarray] = []
    for _ in range(10 * n_boot):
        if len(curves) >= n_boot:
            break
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        if y[idx].min() == y[idx].max():
            continue
        fpr, tpr = roc_curve_points(y[idx], s[idx])
        curves.append(np.interp(grid, fpr, tpr))
    c = np.asarray(curves)
    return np.quantile(c, alpha / 2, axis=0), np.quantile(c, 1 - alpha / 2, axis=0)


def plot_roc_curves(
    groups: Mapping[str, Any],
    path: str | Path,
    ci: bool = True,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """ROC curve per group (model / triplet / experiment), with AUC [95 % CI] in the legend.

    With ``ci`` each curve gets a shaded percentile-bootstrap band (see the module docstring)
    and the legend shows the bootstrap AUC CI from :func:`dce_monai.metrics.stats.bootstrap_ci`.

    Args:
        groups: ``{name: (labels, scores)}`` or ``{name: (labels, scores, patient_ids)}`` (patient
            ids make the bootstrap resample patients, not lesions); plotted in the given order.
        path: output PNG.
        ci: draw bands and CIs.
        n_boot: bootstrap resamples (>= 10).
        alpha: 1 - confidence level.
        seed: bootstrap seed.
        title: figure title.
        dpi: resolution.

    Returns:
        The saved PNG path.

    Raises:
        ValueError: no group, a malformed group, one class only, ``path`` not ``.png``,
            ``n_boot`` < 10.

    Example:
        >>> plot_roc_curves({"logreg": ([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.7])}, "roc.png", ci=False)  # doctest: +SKIP

    Reference: seed 1 (Hu et al.) and seed 2 (Liu et al.) report ROC AUC per model.
    """
    if not groups:
        raise ValueError("groups is empty: nothing to plot.")
    if ci and int(n_boot) < 10:
        raise ValueError(f"n_boot must be >= 10, got {n_boot!r}.")
    parsed = {str(k): _parse_group(str(k), v) for k, v in groups.items()}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    grid = np.linspace(0.0, 1.0, 101)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, (y, s, g)) in enumerate(parsed.items()):
        fpr, tpr = roc_curve_points(y, s)
        auc = roc_auc(y, s)
        label = f"{name}: AUC {auc:.3f}"
        color = colors[i % len(colors)]
        if ci and y.size > 2:
            lo, hi = bootstrap_ci(y, s, n_boot=n_boot, alpha=alpha, seed=seed, groups=None if g is None else list(g))
            label += f" [{lo:.3f}, {hi:.3f}]"
            blo, bhi = _roc_band(y, s, g, grid, n_boot, alpha, seed)
            ax.fill_between(grid, blo, bhi, color=color, alpha=0.15, linewidth=0)
        ax.plot(fpr, tpr, color=color, lw=1.8, label=f"{label} (n={y.size})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_title(title or "ROC per lesion" + (f" (bands: {100 * (1 - alpha):.0f} % bootstrap)" if ci else ""), fontsize=10)
    ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9)
    return _save(fig, path, dpi)


def plot_channel_ranking(
    table_rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    top: int | None = None,
    title: str | None = None,
    reference: float | None = None,
    dpi: int = 110,
) -> Path:
    """Horizontal bars of AUC with 95 % CI error bars per model (triplet), best on top.

    Args:
        table_rows: rows with ``model`` (or ``channels``), ``auc``, and optionally ``auc_ci_low``
            / ``auc_ci_high`` (e.g. ``ranking.csv`` of ``dce-monai search-channels``).
        path: output PNG.
        top: plot only the ``top`` best rows (default all).
        title: figure title.
        reference: optional AUC drawn as a vertical dashed line (e.g. the kinetic baseline).
        dpi: resolution.

    Returns:
        The saved PNG path.

    Raises:
        ValueError: no rows, a row without ``model``/``auc`` or with a non-numeric AUC, bad ``top``.

    Example:
        >>> plot_channel_ranking([{"model": "T1pre+T1post3+sub", "auc": 0.84, "auc_ci_low": 0.8, "auc_ci_high": 0.88}], "rank.png")  # doctest: +SKIP

    Reference: seed 1 (Hu et al.), AUC of the 35 channel triplets.
    """
    if not table_rows:
        raise ValueError("table_rows is empty: nothing to plot.")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top must be a positive integer or None, got {top!r}.")
    items = []
    for i, r in enumerate(table_rows):
        name = r.get("model", r.get("channels"))
        if name is None or "auc" not in r:
            raise ValueError(f"row {i} needs 'model' and 'auc', got keys {sorted(r)}.")
        try:
            auc = float(r["auc"])
            lo = float(r.get("auc_ci_low", math.nan) or math.nan)
            hi = float(r.get("auc_ci_high", math.nan) or math.nan)
        except (TypeError, ValueError):
            raise ValueError(f"row {i} ({name}): auc/auc_ci_low/auc_ci_high must be numbers, got {r.get('auc')!r}/{r.get('auc_ci_low')!r}/{r.get('auc_ci_high')!r}.") from None
        items.append((str(name).replace("+", ", "), auc, lo, hi))
    items.sort(key=lambda t: -t[1] if not math.isnan(t[1]) else math.inf)
    items = items[:top] if top else items
    items = items[::-1]  # barh draws bottom-up: best last = on top
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.26 * len(items)))
    ypos = np.arange(len(items))
    aucs = np.array([t[1] for t in items])
    los = np.array([t[2] for t in items])
    his = np.array([t[3] for t in items])
    err = np.vstack([np.where(np.isnan(los), 0, aucs - los), np.where(np.isnan(his), 0, his - aucs)])
    colors = ["tab:orange" if i == len(items) - 1 else "tab:blue" for i in range(len(items))]
    ax.barh(ypos, aucs, xerr=err, color=colors, alpha=0.85, ecolor="0.25", capsize=2, height=0.7)
    ax.set_yticks(ypos, [t[0] for t in items], fontsize=7.5)
    ax.set_xlim(min(0.4, float(np.nanmin(np.r_[los, aucs])) - 0.05), 1.0)
    if reference is not None:
        ax.axvline(float(reference), ls="--", color="tab:red", lw=1, label=f"reference AUC {float(reference):.3f}")
        ax.legend(fontsize=7.5, loc="lower right")
    ax.axvline(0.5, color="0.6", lw=0.8)
    ax.set_xlabel("per-lesion AUC (bars: 95 % CI)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "Channel ranking (best on top)", fontsize=10)
    return _save(fig, path, dpi)


def plot_kinetic_curves(
    curves_by_class: Mapping[str, Any],
    times: Sequence[float] | None,
    path: str | Path,
    ylabel: str = "relative enhancement (S - S0)/S0",
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Mean +- SD relative-enhancement curve per class (e.g. malignant vs benign).

    Args:
        curves_by_class: ``{class name: array (n_lesions, K)}``, RE of the K post phases per lesion.
        times: acquisition time of each post phase after the pre-contrast one (s; plotted in
            min), or None to plot against the phase index 1..K. The pre-contrast point
            (t = 0, RE = 0) is added.
        path: output PNG.
        ylabel: y-axis label.
        title: figure title.
        dpi: resolution.

    Returns:
        The saved PNG path.

    Raises:
        ValueError: no class, a class with no curve or a non-2D array, classes with different K,
            ``times`` of another length than K, non-finite values.

    Example:
        >>> plot_kinetic_curves({"benign": [[0.6, 1.0]], "malignant": [[1.5, 1.2]]}, [90, 180], "k.png")  # doctest: +SKIP

    Reference: ACR BI-RADS kinetic curve types (persistent, plateau, washout).
    """
    if not curves_by_class:
        raise ValueError("curves_by_class is empty: nothing to plot.")
    arrs = {}
    for name, c in curves_by_class.items():
        a = np.asarray(c, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"class {name!r}: expected a non-empty (n_lesions, K) array, got shape {a.shape}.")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"class {name!r}: curves contain NaN/Inf.")
        arrs[str(name)] = a
    ks = {a.shape[1] for a in arrs.values()}
    if len(ks) != 1:
        raise ValueError(f"classes have different numbers of phases: { {n: a.shape[1] for n, a in arrs.items()} }.")
    k = ks.pop()
    if times is not None:
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        if t.size != k:
            raise ValueError(f"times has {t.size} values for {k} post phases.")
        x, xlabel = np.r_[0.0, t / 60.0], "time after pre-contrast (min)"
    else:
        x, xlabel = np.arange(k + 1, dtype=np.float64), "post-contrast phase (0 = pre)"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    palette = {"malignant": "tab:red", "benign": "tab:blue"}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, a) in enumerate(arrs.items()):
        m = np.r_[0.0, a.mean(0)]
        sd = np.r_[0.0, a.std(0, ddof=1) if a.shape[0] > 1 else np.zeros(k)]
        color = palette.get(name.lower(), colors[i % len(colors)])
        ax.plot(x, m, marker="o", color=color, lw=2, label=f"{name} (n={a.shape[0]})")
        ax.fill_between(x, m - sd, m + sd, color=color, alpha=0.18, linewidth=0)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Mean ± SD enhancement curve per class", fontsize=10)
    return _save(fig, path, dpi)


def plot_fold_metrics(
    fold_values: Mapping[str, Sequence[float]],
    path: str | Path,
    metric: str = "AUC",
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Per-fold metric per model: one dot per fold and the mean +- SD bar (seed 2 reports mean +- SD over folds).

    Args:
        fold_values: ``{model: [value of fold 0, fold 1, ...]}`` (NaN folds, e.g. one class only, are skipped).
        path: output PNG.
        metric: axis label.
        title: figure title.
        dpi: resolution.

    Returns:
        The saved PNG path.

    Raises:
        ValueError: no model, or a model without any finite value.

    Example:
        >>> plot_fold_metrics({"logreg": [0.8, 0.9], "gboost": [0.7, 0.85]}, "folds.png")  # doctest: +SKIP
    """
    if not fold_values:
        raise ValueError("fold_values is empty: nothing to plot.")
    vals = {}
    for name, v in fold_values.items():
        a = np.asarray(v, dtype=np.float64).reshape(-1)
        a = a[np.isfinite(a)]
        if a.size == 0:
            raise ValueError(f"model {name!r} has no finite per-fold value.")
        vals[str(name)] = a
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.5, 1.1 * len(vals) + 1.5), 3.8))
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for i, a in enumerate(vals.values()):
        ax.scatter(i + rng.uniform(-0.12, 0.12, a.size), a, s=18, color="tab:blue", alpha=0.7, zorder=3)
        sd = a.std(ddof=1) if a.size > 1 else 0.0
        ax.errorbar(i + 0.25, a.mean(), yerr=sd, fmt="D", color="black", capsize=4, ms=5, zorder=4)
    ax.set_xticks(range(len(vals)), list(vals), rotation=30 if len(vals) > 4 else 0, ha="right" if len(vals) > 4 else "center", fontsize=8)
    ax.set_ylabel(f"per-fold {metric}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"Per-fold {metric} (dots) and mean ± SD", fontsize=10)
    return _save(fig, path, dpi)
