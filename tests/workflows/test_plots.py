"""Tests of the report figures: files written, sizes, inputs checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dce_monai.metrics.stats import roc_auc
from dce_monai.workflows import plots


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    s = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    return y, s


@pytest.mark.parametrize("kind", ["list", "numpy", "torch"])
def test_roc_curves(tmp_path, kind):
    y, s = _data()
    conv = {"list": lambda a: a.tolist(), "numpy": lambda a: a, "torch": torch.as_tensor}[kind]
    pids = [f"P{i // 2}" for i in range(len(y))]
    p = plots.plot_roc_curves({"a": (conv(y), conv(s)), "b": (conv(y), conv(1 - s), pids)}, tmp_path / "roc.png", n_boot=30)
    assert p == tmp_path / "roc.png" and p.stat().st_size > 5000
    w, h = _png_size(p)
    assert 450 < w < 800 and 450 < h < 800
    p2 = plots.plot_roc_curves({"a": (y, s)}, tmp_path / "sub" / "roc_noci.png", ci=False)
    assert p2.is_file()


def test_roc_points_match_auc():
    y, s = _data(40, 3)
    s = np.round(s, 1)  # ties
    fpr, tpr = plots.roc_curve_points(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))


def test_channel_ranking_best_on_top(tmp_path):
    rows = [{"model": f"T1pre+T1post{k}+sub", "auc": 0.6 + 0.05 * k, "auc_ci_low": 0.5 + 0.05 * k, "auc_ci_high": 0.7 + 0.05 * k} for k in range(1, 5)]
    rows.append({"channels": "T2+T1pre+sub", "auc": "0.7", "auc_ci_low": "", "auc_ci_high": ""})
    p = plots.plot_channel_ranking(rows, tmp_path / "rank.png", reference=0.75)
    w, h = _png_size(p)
    assert p.stat().st_size > 5000 and w > h
    p3 = plots.plot_channel_ranking(rows, tmp_path / "rank3.png", top=3)
    assert _png_size(p3)[1] < h


def test_kinetic_and_fold_plots(tmp_path):
    curves = {"malignant": np.array([[1.5, 1.4, 1.3], [1.7, 1.5, 1.2]]), "benign": [[0.5, 0.8, 1.0]]}
    p = plots.plot_kinetic_curves(curves, [90, 180, 270], tmp_path / "k.png")
    assert p.stat().st_size > 5000
    assert plots.plot_kinetic_curves(curves, None, tmp_path / "k2.png").is_file()
    f = plots.plot_fold_metrics({"logreg": [0.8, 0.9, np.nan], "gboost": [0.7]}, tmp_path / "f.png")
    assert f.stat().st_size > 3000 and _png_size(f)[0] > 300


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
