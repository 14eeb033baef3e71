"""Tests of ``dce-monai report`` on synthetic run folders."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys

import numpy as np
import pytest

from dce_monai.metrics.results import write_predictions
from dce_monai.workflows import report as rp

TRIPLETS = ["T1pre+T1post3+sub", "T2+T1pre+sub", "T1post1+T1post2+T1post3"]


def _lesions(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"P{i // 2:02d}", f"P{i // 2:02d}-L{i % 2 + 1}", int(rng.random() < 0.5) if i > 1 else i) for i in range(n)]


def _rows(experiment, models, seed=0, k=3):
    rng = np.random.default_rng(seed)
    out = []
    for j, m in enumerate(models):
        for pid, lid, y in _lesions():
            out.append({"experiment": experiment, "model": m, "fold": int(pid[1:]) % k, "split": "test", "patient_id": pid, "lesion_id": lid,
                        "label": y, "prob": float(np.clip(0.3 + (0.2 + 0.1 * j) * y + rng.normal(0, 0.2), 0, 1))})
    return out


@pytest.fixture()
def full_run(tmp_path):
    run = tmp_path / "run"
    write_predictions(run / "search" / "predictions.csv", _rows("channel_search", TRIPLETS))
    with open(run / "search" / "ranking.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["rank", "model", "auc", "auc_ci_low", "auc_ci_high"])
        w.writeheader()
        for i, t in enumerate(TRIPLETS):
            w.writerow({"rank": i + 1, "model": t, "auc": 0.8 - 0.05 * i, "auc_ci_low": 0.7 - 0.05 * i, "auc_ci_high": 0.9 - 0.05 * i})
    (run / "search" / "ranking.md").write_text("| rank | channels |\n|---:|---|\n| 1 | T1pre, T1post3, sub |\n")
    (run / "search" / "run.json").write_text(json.dumps({"k": 3, "triplets": TRIPLETS}))
    base = run / "baseline"
    write_predictions(base / "predictions.csv", _rows("baseline_kinetics", ["logreg", "gboost"], seed=1))
    (base / "baseline_kinetics_table.md").write_text("| experiment | model |\n|---|---|\n| baseline_kinetics | logreg |\n")
    (base / "run.json").write_text(json.dumps({"command": "baseline-kinetics", "label": "malignant"}))
    with open(base / "features.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "lesion_id", "washin_mean", "re_top_T1post1", "re_top_T1post2", "time_T1post1_s", "time_T1post2_s"])
        for pid, lid, y in _lesions():
            w.writerow([pid, lid, 1.0, 1.5 if y else 0.6, 1.2 if y else 0.9, 90, 180])
        w.writerow(["P99", "P99-L1", 1.0, 1.0, 1.0, 90, 180])  # a lesion without prediction
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (run / "maskguided" / "cams").mkdir(parents=True)
    plt.imsave(run / "maskguided" / "cams" / "P00-L1_cam.png", np.random.default_rng(0).random((16, 16)))
    plt.imsave(run / "maskguided" / "cams" / "overlay_1.png", np.random.default_rng(1).random((16, 16)))
    plt.imsave(run / "maskguided" / "loss.png", np.random.default_rng(1).random((16, 16)))  # not a CAM
    return run


def test_full_report(full_run):
    paths = rp.write_report(full_run, n_boot=20, progress=False)
    out = full_run / "report"
    assert paths == {"markdown": out / "report.md", "html": out / "report.html"}
    md = paths["markdown"].read_text()
    assert "## Experiment `channel_search`" in md and "## Experiment `baseline_kinetics`" in md
    assert md.index("## Overview: best model of each experiment") < md.index("## Experiment `channel_search`")
    assert re.search(r"\| channel_search \| [^|]+ \| test \| \d\.\d{3} \[", md)
    assert "| model | split | pooled AUC [95 % CI] | sensitivity | specificity | accuracy | per-fold AUC mean ± SD |" in md
    assert "| pooled AUC [95 % CI] | per-fold AUC mean ± SD (folds) |" in md
    assert re.search(r"\| T1post1\+T1post2\+T1post3 \| test \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", md)
    assert "| 24 (" in md
    assert "- `compare_masking`: run `dce-monai compare-masking" in md
    assert "- `channel_search`" not in md
    assert "Source: `search/ranking.csv`" in md and "### Channel-triplet ranking (search-channels)" in md
    assert "| 1 | T1pre, T1post3, sub |" in md and "| baseline_kinetics | logreg |" in md
    assert "1 lesion(s) without a label in the predictions left out" in md
    assert "`maskguided/cams/P00-L1_cam.png`" in md and '"triplets"' in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"figures/roc_channel_search_test.png", "figures/channel_ranking.png", "figures/kinetic_curves.png",
            "figures/roc_best_per_experiment.png", "figures/folds_baseline_kinetics.png"} <= set(links)
    for link in links:
        assert not link.startswith("/") and (out / link).stat().st_size > 500
    html = paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and 'src="figures/channel_ranking.png"' in html
    assert 'src="cam/maskguided__cams__P00-L1_cam.png"' in html


def test_subset_reports_missing(tmp_path):
    run = tmp_path / "run"
    write_predictions(run / "predictions.csv", _rows("baseline_kinetics", ["logreg"]))
    md = rp.write_report(run, tmp_path / "rep", n_boot=20, progress=False)["markdown"].read_text()
    assert "- `channel_search`: run `dce-monai search-channels" in md and "- `compare_masking`" in md
    assert "- `baseline_kinetics`" not in md and "## Channel ranking" not in md
    assert "Not available: no kinetic feature table found" in md and "None found (PNG files with `cam` in their name or folder)" in md
    assert "No `run.json` found." in md
    assert not (run / "report").exists()


def test_channel_ranking_from_predictions_and_problems(tmp_path, capsys):
    run = tmp_path / "run"
    write_predictions(run / "a" / "preds.csv", _rows("channel_search", TRIPLETS))
    bad = run / "b" / "predictions.csv"
    bad.parent.mkdir()
    bad.write_text("experiment,model,fold,split,patient_id,lesion_id,label,prob\nx,m,0,test,P1,L1,1,7.0\n")
    (run / "b" / "run.json").write_text("{not json")
    md = rp.write_report(run, n_boot=20)["markdown"].read_text()
    assert "From the channel_search predictions." in md and "![channel ranking](figures/channel_ranking.png)" in md
    assert "`b/predictions.csv` skipped:" in md and "prob must be a probability" in md
    assert "(not valid JSON:" in md
    assert "[report] written" in capsys.readouterr().out


def test_bad_ranking_is_reported(tmp_path):
    run = tmp_path / "run"
    write_predictions(run / "predictions.csv", _rows("baseline_kinetics", ["logreg"]))
    (run / "ranking.csv").write_text("model,auc\nT2+T1pre+sub,high\n")
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    assert "Channel ranking not drawn: row 0 (T2+T1pre+sub): auc/auc_ci_low/auc_ci_high must be numbers" in md


def test_markdown_converter_and_fallback(tmp_path, monkeypatch):
    md = "# T\n\nSome `code` and **bold** [l](a.html)\nnext line\n\n- one\n- two\n\n```json\n{\"a\": <1>}\n```\n\n| a | b |\n|---|---:|\n| 1 | 2 |\n\n![alt](fig/x.png)\n"
    h = rp.markdown_to_html(md)
    assert "<h1>T</h1>" in h and "<p>Some <code>code</code> and <strong>bold</strong> <a href=\"a.html\">l</a> next line</p>" in h
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in h and "<pre><code>{\"a\": &lt;1&gt;}</code></pre>" in h
    assert "<thead><tr><th>a</th><th>b</th></tr></thead>" in h and "<tr><td>1</td><td>2</td></tr>" in h
    assert '<img alt="alt" src="fig/x.png">' in h
    monkeypatch.setitem(sys.modules, "markdown", None)  # python-markdown absent: the converter is used
    page = rp._to_html(md, "t")
    assert "<tr><td>1</td><td>2</td></tr>" in page and "<title>t</title>" in page


def test_discover_and_cli(full_run, tmp_path):
    found = rp.discover(full_run)
    assert [p.name for p in found.predictions] == ["predictions.csv", "predictions.csv"]
    assert [t for t, _ in found.tables] == ["Kinetic baseline (baseline-kinetics)", "Channel-triplet ranking (search-channels)"]
    assert len(found.features) == 1 and [p.name for p in found.cams] == ["P00-L1_cam.png", "overlay_1.png"] and len(found.run_jsons) == 2 and len(found.rankings) == 1
    p = argparse.ArgumentParser()
    rp.add_cli_arguments(p)
    assert rp.cli_main(p.parse_args([str(full_run), "--out", str(tmp_path / "r"), "--n-boot", "20"])) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    again = rp.discover(full_run, exclude=tmp_path / "r")
    assert len(again.predictions) == 2


def test_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder .* does not exist or is not a folder"):
        rp.write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="nothing to report under .*no predictions CSV"):
        rp.write_report(tmp_path / "empty")


def test_delong_against_baseline(tmp_path):
    run = tmp_path / "run"
    write_predictions(run / "b.csv", _rows("baseline_kinetics", ["logreg"]))
    write_predictions(run / "s.csv", _rows("channel_search", TRIPLETS[:1], seed=2))
    flipped = [{**r, "experiment": "compare_masking", "label": 1 - r["label"]} for r in _rows("x", ["mask_guided"], seed=3)]
    write_predictions(run / "m.csv", flipped)
    pos = [{**r, "experiment": "other"} for r in _rows("x", ["m"], seed=4) if r["label"] == 1]
    neg = [{**r, "experiment": "other", "patient_id": "Q" + r["patient_id"], "lesion_id": "Q" + r["lesion_id"]} for r in _rows("x", ["m"], seed=5) if r["label"] == 0]
    write_predictions(run / "o.csv", pos + neg)
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    assert "Paired DeLong test against the kinetic baseline (`logreg`, test)" in md
    assert re.search(r"\| channel_search \| T1pre\+T1post3\+sub \| test \| 24 \| \d\.\d{3} \| \d\.\d{3} \| -?\d\.\d{2} \| [\d.e-]+ \|", md)
    assert "| compare_masking | mask_guided | test | 24 | – | – | – | – (labels differ from the baseline's) |" in md
    assert re.search(r"\| other \| m \| test \| \d+ \| – \| – \| – \| – \(one class only\) \|", md)
    assert "- `compare_masking`" not in md


@pytest.mark.parametrize("conflict", [False, True], ids=["same_rows", "conflicting_prob"])
def test_rows_in_several_files_counted_once(tmp_path, conflict):
    run = tmp_path / "run"
    rows = _rows("compare_masking", ["no_mask"])
    for fold in range(3):  # per-cell files ...
        write_predictions(run / "cells" / f"no_mask_fold{fold}" / "predictions_test.csv", [r for r in rows if r["fold"] == fold])
    merged = [dict(r) for r in rows]
    if conflict:
        merged[0]["prob"] = 1.0 - float(merged[0]["prob"])
    write_predictions(run / "predictions.csv", merged)  # ... and their merge
    md = rp.write_report(run, tmp_path / "rep", n_boot=20, progress=False)["markdown"].read_text()
    assert f"{len(rows)} row(s) present in more than one file" in md
    assert "| no_mask | test |" in md and f"{len(rows)} (" in md  # n lesions once, not twice
    assert ("conflicts with an earlier file" in md) == conflict


def test_delong_against_baseline_with_one_positive_lesion(tmp_path):
    run = tmp_path / "run"
    write_predictions(run / "b.csv", _rows("baseline_kinetics", ["logreg"]))
    rows = _rows("other", ["m"], seed=4)
    one_pos = [r for r in rows if r["label"] == 0] + [next(r for r in rows if r["label"] == 1)]
    write_predictions(run / "o.csv", one_pos)
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    n = len(one_pos)
    assert re.search(rf"\| other \| m \| test \| {n} \| \d\.\d{{3}} \| \d\.\d{{3}} \| – \| n/a \(only one positive lesion\) \|", md)

def _transfer_run(run, old_format: bool):
    """Fold-0 evaluation of a bundle (held-out) plus a whole-cohort inference CSV, as the seed 1 bundle writes them."""
    from dce_monai.data.folds import write_folds

    les = _lesions()
    folds = [sorted({p for p, _, _ in les if int(p[1:]) % 3 == f}) for f in range(3)]
    write_folds(folds, run / "folds.json", seed=0)
    rng = np.random.default_rng(7)
    prob = {lid: float(np.clip(0.45 + 0.1 * y + rng.normal(0, 0.2), 0, 1)) for _, lid, y in les}
    fold0 = set(folds[0])
    ev = [{"experiment": "transfer_resnet34", "model": "resnet34", "fold": 0, "split": "test", "patient_id": p, "lesion_id": lid,
           "label": y, "prob": prob[lid]} for p, lid, y in les if p in fold0]
    write_predictions(run / "transfer" / "eval" / "predictions.csv", ev)
    # the model fits its training patients perfectly: inference over every patient looks excellent
    inf = [{"experiment": "transfer_resnet34", "model": "resnet34", "fold": 0 if old_format else -1, "split": "test" if old_format else "inference",
            "patient_id": p, "lesion_id": lid, "label": y, "prob": prob[lid] if p in fold0 else float(0.9 * y + 0.05)} for p, lid, y in les]
    write_predictions(run / "transfer" / "inference" / "predictions.csv", inf)
    return ev, inf


@pytest.mark.parametrize("old_format", [False, True], ids=["inference_split", "mislabelled_test_fold0"])
def test_held_out_only_from_models_that_did_not_train_on_the_patient(tmp_path, old_format):
    from dce_monai.metrics.stats import binary_metrics

    run = tmp_path / "run"
    ev, inf = _transfer_run(run, old_format)
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    auc = binary_metrics([r["label"] for r in ev], [r["prob"] for r in ev])["auc"]
    n_pos = sum(r["label"] for r in ev)
    overview = md[md.index("## Overview"):md.index("## Experiment")]
    assert re.search(rf"\| transfer_resnet34 \| resnet34 \| test \| {auc:.3f} \[[^|]+\| [^|]+\| [^|]+\| [^|]+\| {len(ev)} \({n_pos}\) \|", overview), overview
    section = md[md.index("## Experiment `transfer_resnet34`"):]
    assert re.search(rf"\| resnet34 \| test \| {auc:.3f} \[", section)  # the experiment's table agrees with the headline
    if old_format:
        assert f"{len(inf) - len(ev)} held-out row(s) (split test/external), fold 0, are patients of that fold's training folds per `folds.json`" in md
        assert f"{len(inf) - len(ev)} row(s) labelled held-out but from a model that trained on the patient left out" in md
        assert "Not held-out" not in section
    else:
        assert "Not held-out (split `train`" in section and re.search(rf"\| resnet34 \| inference \| [^|]+\| [^|]+\| [^|]+\| [^|]+\| [^|]+\| {len(inf)} \(", section)
        assert "Problems" not in md


def test_collapsed_model_is_flagged_and_not_best(tmp_path):
    run = tmp_path / "run"
    good = _rows("compare_masking", ["mask_guided"], seed=1)
    flat = [{**r, "model": "no_mask", "prob": 0.5 + 1e-4 * r["label"]} for r in good]  # perfect ranking, span 1e-4
    write_predictions(run / "predictions.csv", good + flat)
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    assert re.search(r"\| no_mask \| test \| 1\.000 \[[^]]*\] \(collapsed in 3 of 3 folds\) \|", md)
    assert "- `no_mask` (test): fold 0: near-constant scores (span 1e-04 <= 1e-03)" in md
    assert re.search(r"\| compare_masking \| mask_guided \| test \|", md[md.index("## Overview"):md.index("## Experiment")])


def test_deep_models_compared_with_the_kinetic_only_baseline(tmp_path):
    run = tmp_path / "run"
    base = _rows("baseline_kinetics", ["logreg_kinetic", "logreg_shape"], seed=1)
    shape = [r for r in base if r["model"] == "logreg_shape"]
    for r in shape:  # the shape model is the best baseline model, but it is no kinetic baseline
        r["prob"] = 0.9 if r["label"] else 0.1
    write_predictions(run / "b.csv", base)
    write_predictions(run / "s.csv", _rows("channel_search", TRIPLETS[:1], seed=2))
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    assert "Paired DeLong test against the kinetic baseline (`logreg_kinetic`, test)" in md
    assert re.search(r"\| baseline_kinetics \| logreg_shape \| test \| 1\.000", md)  # still the experiment's best in the overview


def test_test_and_external_splits_shown_apart_and_train_rows_not_held_out(tmp_path):
    """The held-out fold (`test`) and an independent cohort (`external`) each get a row and ROC; `train` rows stay apart."""
    run = tmp_path / "run"
    test = _rows("compare_masking", ["mask_guided"], seed=1)
    external = [{**r, "split": "external", "patient_id": "X" + r["patient_id"], "lesion_id": "X" + r["lesion_id"]}
                for r in _rows("compare_masking", ["mask_guided"], seed=2)]
    train = [{**r, "split": "train", "prob": 0.9 if r["label"] else 0.1} for r in _rows("compare_masking", ["mask_guided"], seed=3)]
    write_predictions(run / "predictions.csv", test + external + train)
    md = rp.write_report(run, n_boot=20, progress=False)["markdown"].read_text()
    section = md[md.index("## Experiment `compare_masking`"):md.index("Not held-out")]
    assert re.search(rf"\| mask_guided \| test \| \d\.\d{{3}} \[[^|]+\|[^|]+\|[^|]+\|[^|]+\|[^|]+\| {len(test)} \(", section)
    assert re.search(rf"\| mask_guided \| external \| \d\.\d{{3}} \[[^|]+\|[^|]+\|[^|]+\|[^|]+\|[^|]+\| {len(external)} \(", section)
    assert "| mask_guided | train |" not in section and "figures/roc_compare_masking_test.png" in section
    assert "figures/roc_compare_masking_external.png" in section
    assert re.search(r"\| compare_masking \| mask_guided \| test \|", md[md.index("## Overview"):md.index("## Experiment")])
    assert "| mask_guided | train | 1.000 [" in md[md.index("Not held-out"):]


@pytest.mark.parametrize("name", ["predictions.csv", "cells/no_mask_fold0/predictions_val.csv"])
def test_predictions_of_an_older_version_stop_the_report(tmp_path, name):
    """An older version named the held-out fold `val`: the report names the file and value instead of mislabelling."""
    from dce_monai.metrics.results import COLUMNS, OldSplitNameError

    run = tmp_path / "run"
    write_predictions(run / "ok" / "predictions.csv", _rows("channel_search", TRIPLETS[:1]))
    old = run / "old" / name
    old.parent.mkdir(parents=True)
    old.write_text(",".join(COLUMNS) + "\ncompare_masking,no_mask,0,val,P01,P01-L1,1,0.7\n")
    with pytest.raises(OldSplitNameError, match=rf"{re.escape(name)} line 2: split 'val' is how an older dce_monai version named the held-out fold"):
        rp.write_report(run, n_boot=20, progress=False)
    assert not (run / "report" / "report.md").exists()
