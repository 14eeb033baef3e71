"""Tests of dce_monai.workflows.plots: the drawn data (ROC points, bar order and whiskers, class means, fold dots) and the saved PNG read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dce_monai.metrics.stats import roc_auc
from dce_monai.workflows import plots


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    s = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    return y, s


@pytest.fixture()
def drawn(monkeypatch):
    """The figures the plot functions save, captured on their way to ``_save`` (artists stay readable after close)."""
    figs = []
    orig = plots._save

    def _capture(fig, path, dpi):
        figs.append(fig)
        return orig(fig, path, dpi)

    monkeypatch.setattr(plots, "_save", _capture)
    return figs


def _png_pixels(path):
    """RGB(A) pixels of a saved figure, read back; asserts it is not a blank page."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    rgb = img[..., :3]
    assert float((rgb < 0.9).any(axis=2).mean()) > 0.01  # ink on more than 1 % of the pixels
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # several colours (curves, bands, text), not one flat tone
    return img


@pytest.mark.parametrize("kind", ["list", "numpy", "torch"])
def test_roc_curves(tmp_path, kind, drawn):
    from sklearn.metrics import roc_curve

    y, s = _data()
    conv = {"list": lambda a: a.tolist(), "numpy": lambda a: a, "torch": torch.as_tensor}[kind]
    pids = [f"P{i // 2}" for i in range(len(y))]
    p = plots.plot_roc_curves({"a": (conv(y), conv(s)), "b": (conv(y), conv(1 - s), pids)}, tmp_path / "roc.png", n_boot=30)
    assert p == tmp_path / "roc.png"
    h, w = _png_pixels(p).shape[:2]
    assert 450 < w < 800 and 450 < h < 800
    ax = drawn[0].axes[0]
    curves, diagonal = ax.lines[:2], ax.lines[2]
    for line, scores in zip(curves, (s, 1 - s)):
        fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)  # sklearn's ROC: same points as plotted
        np.testing.assert_allclose(line.get_xdata(), fpr, atol=1e-12)
        np.testing.assert_allclose(line.get_ydata(), tpr, atol=1e-12)
    np.testing.assert_array_equal(diagonal.get_xdata(), [0, 1])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith(f"a: AUC {roc_auc(y, s):.3f} [") and labels[0].endswith("(n=30)")
    assert labels[1].startswith(f"b: AUC {roc_auc(y, 1 - s):.3f} [")
    assert len(ax.collections) == 2  # one bootstrap band per group
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 0].min() == 0.0 and band[:, 0].max() == 1.0 and 0.0 <= band[:, 1].min() and band[:, 1].max() <= 1.0
    p2 = plots.plot_roc_curves({"a": (y, s)}, tmp_path / "sub" / "roc_noci.png", ci=False)
    _png_pixels(p2)
    ax2 = drawn[1].axes[0]
    assert len(ax2.collections) == 0 and ax2.get_legend().get_texts()[0].get_text() == f"a: AUC {roc_auc(y, s):.3f} (n=30)"


def test_roc_points_match_auc():
    from sklearn.metrics import roc_curve

    y, s = _data(40, 3)
    s = np.round(s, 1)  # ties
    fpr, tpr = plots.roc_curve_points(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)
    f, t = plots.roc_curve_points([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])  # a tie moves the curve diagonally
    assert f.tolist() == [0.0, 0.0, 0.5, 1.0] and t.tolist() == [0.0, 0.5, 1.0, 1.0]


def _bars(fig):
    """(labels bottom-up, bar widths, whisker (low, high) per bar) of a channel-ranking figure."""
    ax = fig.axes[0]
    from matplotlib.container import BarContainer

    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    widths = [r.get_width() for r in bars.patches]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    segs = bars.errorbar.lines[2][0].get_segments()
    whiskers = [(float(sg[0][0]), float(sg[1][0])) for sg in segs]
    return labels, widths, whiskers


def test_channel_ranking_best_on_top(tmp_path, drawn):
    rows = [{"model": f"T1pre+T1post{k}+sub", "auc": 0.6 + 0.05 * k, "auc_ci_low": 0.5 + 0.05 * k, "auc_ci_high": 0.7 + 0.05 * k} for k in (3, 1, 4, 2)]
    rows.append({"channels": "T2+T1pre+sub", "auc": "0.72", "auc_ci_low": "", "auc_ci_high": ""})
    p = plots.plot_channel_ranking(rows, tmp_path / "rank.png", reference=0.75)
    h, w = _png_pixels(p).shape[:2]
    assert w > h
    labels, widths, whiskers = _bars(drawn[0])
    # bottom-up = worst first: the best model's bar is on top, bars sorted by AUC
    assert labels == ["T1pre, T1post1, sub", "T1pre, T1post2, sub", "T2, T1pre, sub", "T1pre, T1post3, sub", "T1pre, T1post4, sub"]
    np.testing.assert_allclose(widths, [0.65, 0.70, 0.72, 0.75, 0.80])
    # whiskers span the table's CI; a row without CI gets a zero-length whisker at its AUC
    np.testing.assert_allclose(whiskers, [(0.55, 0.75), (0.60, 0.80), (0.72, 0.72), (0.65, 0.85), (0.70, 0.90)], atol=1e-12)
    ax = drawn[0].axes[0]
    ref = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(ref) == 1 and list(ref[0].get_xdata()) == [0.75, 0.75]
    patches = [pa for pa in ax.patches if hasattr(pa, "get_width")]
    assert patches[-1].get_facecolor()[:3] != patches[0].get_facecolor()[:3]  # best highlighted
    p3 = plots.plot_channel_ranking(rows, tmp_path / "rank3.png", top=3)
    assert _png_pixels(p3).shape[0] < h
    labels3, widths3, _ = _bars(drawn[1])
    assert labels3 == labels[-3:] and widths3 == pytest.approx(widths[-3:])


def test_kinetic_and_fold_plots(tmp_path, drawn):
    curves = {"malignant": np.array([[1.5, 1.4, 1.3], [1.7, 1.5, 1.2]]), "benign": [[0.5, 0.8, 1.0]]}
    p = plots.plot_kinetic_curves(curves, [90, 180, 270], tmp_path / "k.png")
    _png_pixels(p)
    ax = drawn[0].axes[0]
    mal, ben = ax.lines[:2]
    np.testing.assert_allclose(mal.get_xdata(), [0.0, 1.5, 3.0, 4.5])  # seconds -> minutes, 0 = pre-contrast
    np.testing.assert_allclose(mal.get_ydata(), [0.0, 1.6, 1.45, 1.25])  # class mean per phase
    np.testing.assert_allclose(ben.get_ydata(), [0.0, 0.5, 0.8, 1.0])
    assert mal.get_label() == "malignant (n=2)" and ben.get_label() == "benign (n=1)"
    band = ax.collections[0].get_paths()[0].vertices  # mean +- SD (ddof=1) band of the malignant class
    sd = np.std([[1.5, 1.4, 1.3], [1.7, 1.5, 1.2]], axis=0, ddof=1)
    assert band[:, 1].max() == pytest.approx(1.6 + sd[0]) and band[:, 1].min() == pytest.approx(0.0)
    assert ax.get_xlabel() == "time after pre-contrast (min)"
    _png_pixels(plots.plot_kinetic_curves(curves, None, tmp_path / "k2.png"))
    np.testing.assert_array_equal(drawn[1].axes[0].lines[0].get_xdata(), [0, 1, 2, 3])
    f = plots.plot_fold_metrics({"logreg": [0.8, 0.9, np.nan], "gboost": [0.7]}, tmp_path / "f.png")
    assert _png_pixels(f).shape[1] > 300
    axf = drawn[2].axes[0]
    from matplotlib.collections import PathCollection

    dots = [c.get_offsets() for c in axf.collections if isinstance(c, PathCollection)]
    assert len(dots) == 2
    assert sorted(np.asarray(dots[0])[:, 1].tolist()) == [0.8, 0.9] and np.asarray(dots[1])[:, 1].tolist() == [0.7]  # NaN fold dropped
    assert np.all(np.abs(np.asarray(dots[0])[:, 0] - 0) <= 0.12) and np.all(np.abs(np.asarray(dots[1])[:, 0] - 1) <= 0.12)
    means = [ln for ln in axf.lines if ln.get_marker() == "D"]
    assert [(float(m.get_xdata()[0]), float(m.get_ydata()[0])) for m in means] == [(0.25, pytest.approx(0.85)), (1.25, pytest.approx(0.7))]
    assert [t.get_text() for t in axf.get_xticklabels()] == ["logreg", "gboost"]


def test_plot_errors(tmp_path):
    y, s = _data()
    with pytest.raises(ValueError, match="groups is empty"):
        plots.plot_roc_curves({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="n_boot must be >= 10"):
        plots.plot_roc_curves({"a": (y, s)}, tmp_path / "a.png", n_boot=5)
    with pytest.raises(ValueError, match=r"group 'a': expected \(labels, scores\)"):
        plots.plot_roc_curves({"a": (y,)}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="group 'a': labels, scores .* differ in length: 30, 29"):
        plots.plot_roc_curves({"a": (y, s[:-1])}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="path must end in .png"):
        plots.plot_roc_curves({"a": (y, s)}, tmp_path / "a.jpg", ci=False)
    with pytest.raises(ValueError, match="needs both classes: 0 positive and 3 negative"):
        plots.roc_curve_points([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        plots.roc_curve_points([0, 1], [0.1])
    with pytest.raises(ValueError, match=r"labels must be 0 or 1, got \[2\]"):
        plots.roc_curve_points([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="table_rows is empty"):
        plots.plot_channel_ranking([], tmp_path / "r.png")
    with pytest.raises(ValueError, match="top must be a positive integer"):
        plots.plot_channel_ranking([{"model": "a", "auc": 0.5}], tmp_path / "r.png", top=0)
    with pytest.raises(ValueError, match="row 0 needs 'model' and 'auc'"):
        plots.plot_channel_ranking([{"auc": 0.5}], tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"row 0 \(a\): auc/auc_ci_low/auc_ci_high must be numbers"):
        plots.plot_channel_ranking([{"model": "a", "auc": "high"}], tmp_path / "r.png")
    with pytest.raises(ValueError, match="curves_by_class is empty"):
        plots.plot_kinetic_curves({}, None, tmp_path / "k.png")
    with pytest.raises(ValueError, match=r"class 'benign': expected a non-empty \(n_lesions, K\) array"):
        plots.plot_kinetic_curves({"benign": [1.0, 2.0]}, None, tmp_path / "k.png")
    with pytest.raises(ValueError, match="class 'benign': curves contain NaN/Inf"):
        plots.plot_kinetic_curves({"benign": [[1.0, np.nan]]}, None, tmp_path / "k.png")
    with pytest.raises(ValueError, match="different numbers of phases"):
        plots.plot_kinetic_curves({"a": [[1.0, 2.0]], "b": [[1.0]]}, None, tmp_path / "k.png")
    with pytest.raises(ValueError, match="times has 3 values for 2 post phases"):
        plots.plot_kinetic_curves({"a": [[1.0, 2.0]]}, [1, 2, 3], tmp_path / "k.png")
    with pytest.raises(ValueError, match="fold_values is empty"):
        plots.plot_fold_metrics({}, tmp_path / "f.png")
    with pytest.raises(ValueError, match="model 'x' has no finite per-fold value"):
        plots.plot_fold_metrics({"x": [np.nan]}, tmp_path / "f.png")
