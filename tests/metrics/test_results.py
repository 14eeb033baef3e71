from __future__ import annotations

import math

import numpy as np
import pytest

from dce_monai.metrics.results import (
    COLUMNS,
    format_markdown_table,
    read_predictions,
    summarize,
    write_predictions,
    write_table,
)
from dce_monai.metrics.stats import roc_auc


def _rows(n_folds: int = 3, per_fold: int = 10, model: str = "m", seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_folds):
        for i in range(per_fold):
            y = int(i % 2)
            rows.append(
                {
                    "experiment": "exp",
                    "model": model,
                    "fold": f,
                    "split": "test",
                    "patient_id": f"p{f}_{i // 2}",
                    "lesion_id": f"p{f}_{i}",
                    "label": y,
                    "prob": float(np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2), 0, 1)),
                }
            )
    return rows


def test_roundtrip_exact(tmp_path):
    rows = _rows()
    path = write_predictions(tmp_path / "sub" / "pred.csv", rows)
    back = read_predictions(path)
    assert back == rows
    assert list(tmp_path.glob("sub/.*tmp")) == []


def test_summarize_pooled_and_per_fold():
    rows = _rows() + _rows(model="other", seed=1)
    table = summarize(rows, n_boot=100)
    assert [t["model"] for t in table] == ["m", "other"]
    t = table[0]
    mine = [r for r in rows if r["model"] == "m"]
    assert t["auc"] == pytest.approx(roc_auc([r["label"] for r in mine], [r["prob"] for r in mine]))
    assert t["auc_ci_low"] <= t["auc"] <= t["auc_ci_high"]
    folds = [roc_auc([r["label"] for r in mine if r["fold"] == f], [r["prob"] for r in mine if r["fold"] == f]) for f in range(3)]
    assert t["auc_fold_mean"] == pytest.approx(np.mean(folds))
    assert t["auc_fold_sd"] == pytest.approx(np.std(folds, ddof=1))
    assert (t["n"], t["n_pos"], t["n_folds"]) == (30, 15, 3)


def test_summarize_flags_collapsed_folds():
    rows = _rows()
    flat = [{**r, "model": "flat", "prob": 0.4 + 1e-4 * r["label"] + 1e-5 * r["fold"]} for r in rows]  # ranks perfectly, span < 1e-3
    t = {r["model"]: r for r in summarize(rows + flat, n_boot=20)}
    assert t["flat"]["auc"] == 1.0 and t["flat"]["collapsed_folds"] == 3
    assert t["flat"]["collapse"].startswith("fold 0: near-constant scores (span 1e-04 <= 1e-03); fold 1: ")
    one_side = [{**r, "model": "low", "prob": 0.1 + 0.3 * r["label"]} for r in rows]  # all < 0.5, span 0.3
    t = {r["model"]: r for r in summarize(rows + one_side, n_boot=20)}
    assert t["low"]["collapsed_folds"] == 3 and "one predicted class (all 10 scores < 0.5)" in t["low"]["collapse"]
    assert t["m"]["collapsed_folds"] == 0 and t["m"]["collapse"] == ""


@pytest.mark.parametrize(("split", "fold"), [("inference", -1), ("train", 1), ("external", 2)])
def test_split_roundtrip(tmp_path, split, fold):
    rows = [{**r, "split": split, "fold": fold} for r in _rows()]
    assert read_predictions(write_predictions(tmp_path / "p.csv", rows)) == rows


def test_split_vocabulary():
    from dce_monai.metrics.results import HELD_OUT_SPLITS, SPLITS

    assert SPLITS == ("train", "test", "external", "inference") and HELD_OUT_SPLITS == ("test", "external")
    assert set(HELD_OUT_SPLITS) <= set(SPLITS) and "val" not in SPLITS


def test_old_val_split_is_refused_when_read(tmp_path):
    """An older version's held-out rows said `val`: reading them fails, naming file, line and value."""
    from dce_monai.metrics.results import OldSplitNameError

    path = tmp_path / "old.csv"
    path.write_text(",".join(COLUMNS) + "\ne,m,0,test,p1,l1,1,0.9\ne,m,0,val,p2,l2,0,0.2\n")
    with pytest.raises(OldSplitNameError, match=r"old\.csv line 3: split 'val' is how an older dce_monai version named the held-out fold"):
        read_predictions(path)
    with pytest.raises(ValueError, match=r"rename the split column's values: `val` -> `test`"):
        read_predictions(path)


def test_val_split_is_not_written(tmp_path):
    rows = [{**r, "split": "val"} for r in _rows()]
    with pytest.raises(ValueError, match="row 0: split 'val' is the inner validation split of the training patients, which is never a result"):
        write_predictions(tmp_path / "p.csv", rows)
    assert not (tmp_path / "p.csv").exists()


def test_single_class_group_gives_nan_auc():
    rows = [r for r in _rows() if r["label"] == 1]
    t = summarize(rows, n_boot=50)[0]
    assert math.isnan(t["auc"]) and math.isnan(t["auc_ci_low"]) and t["sensitivity"] >= 0


def test_tables(tmp_path):
    rows = summarize(_rows(), n_boot=50)
    csv_path, md_path = write_table(rows, tmp_path / "table", ["model", "auc", "n"])
    md = md_path.read_text()
    assert md.splitlines()[0] == "| model | auc | n |" and f"{rows[0]['auc']:.3f}" in md
    assert csv_path.read_text().splitlines()[0] == "model,auc,n"
    assert "| – |" in format_markdown_table([{"a": math.nan}])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"prob": 1.5}, r"row 0: prob must be a probability in \[0, 1\], got 1.5"),
        ({"prob": float("nan")}, "row 0: prob must be a probability"),
        ({"label": 2}, "row 0: label must be 0 or 1, got 2"),
        ({"split": "dev"}, "row 0: split must be one of"),
        ({"fold": "x"}, "row 0: fold/label/prob must be numbers, got 'x'"),
        ({"lesion_id": ""}, "row 0: lesion_id is empty"),
    ],
)
def test_bad_rows(tmp_path, change, match):
    rows = _rows()
    rows[0] = {**rows[0], **change}
    with pytest.raises(ValueError, match=match):
        write_predictions(tmp_path / "p.csv", rows)


def test_errors(tmp_path):
    rows = _rows()
    with pytest.raises(ValueError, match=r"row 0: missing column\(s\) \['prob'\]"):
        write_predictions(tmp_path / "p.csv", [{k: v for k, v in rows[0].items() if k != "prob"}])
    with pytest.raises(ValueError, match="row 1: lesion 'p0_0' appears twice"):
        write_predictions(tmp_path / "p.csv", [rows[0], rows[0]])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_predictions(tmp_path / "none.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a predictions table; missing column"):
        read_predictions(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text(",".join(COLUMNS) + "\ne,m,0,test,p,l,1,oops\n")
    with pytest.raises(ValueError, match="y.csv line 2: fold/label/prob must be numbers"):
        read_predictions(tmp_path / "y.csv")
    with pytest.raises(ValueError, match="by must name columns"):
        summarize(rows, by=("nope",))
    with pytest.raises(ValueError, match="no predictions to summarise"):
        summarize([])
    with pytest.raises(ValueError, match="no rows to format"):
        format_markdown_table([])
    with pytest.raises(ValueError, match="no rows to write"):
        write_table([], tmp_path / "t")
