"""The ``shortcut`` validation experiment at quick settings: rows, figure, body numbers = ``extra``, resumability, errors."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest

from dce_monai.workflows.validation import Section, shortcut

N_CELLS = len(shortcut.ROWS) + sum(bool(shortcut.PROBES[n]) for n in shortcut.settings_for(True)["probe"])  # the paper probe reuses a row


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shortcut")
    return out, shortcut.run(out, quick=True, progress=False)


def test_section_has_every_row_and_the_panel(quick_run):
    out, sec = quick_run
    assert isinstance(sec, Section) and sec.name == "shortcut" and sec.verdict in ("works", "partly", "does not")
    for row in shortcut.ROWS:
        assert re.search(rf"^\| {row} \|", sec.body, re.M), row
        assert set(sec.extra["per_seed"][row]) == {"0"}
        r = sec.extra["per_seed"][row]["0"]
        assert 0.0 <= r["attention_heldout"] <= 1.0 and 0.0 <= r["attention_external"] <= 1.0
        assert math.isnan(r["train_dice_last10pct"]) == (shortcut.ROWS[row][0] != "mask_guided")  # logged by the mask-guided trainer only
    (fig, caption), = sec.figures
    assert fig.endswith("cam_panel.png") and (out / "cam_panel.png").read_bytes()[:4] == b"\x89PNG" and "tumour mask" in caption
    assert sec.extra["quick"] is True and "run_cell" in sec.settings and "plain PyTorch" not in sec.settings
    assert sorted(p.name for p in (out / "seed0" / "cells").iterdir()) == sorted([*shortcut.ROWS, "probe_lambda_100"])


def test_steps_from_fitting_lesions_and_batch(quick_run):
    """max_epochs is chosen for about `steps` optimiser steps of full batches (the bundle's loader drops the last one)."""
    out, sec = quick_run
    s = shortcut.settings_for(True)
    st = sec.extra["steps"]["0"]
    per_epoch = st["fit_lesions"] // s["batch_size"]
    assert st["steps"] == st["max_epochs"] * per_epoch and abs(st["steps"] - s["steps"]) <= per_epoch / 2
    cell = json.loads((out / "seed0" / "cells" / "mask_guided" / "cell.json").read_text())
    assert cell["settings"]["max_epochs"] == st["max_epochs"] and cell["settings"]["lambda_dice"] == 10.0
    assert json.loads((out / "seed0" / "cells" / "no_mask_3blocks" / "cell.json").read_text())["settings"]["vgg_channels"] == s["widths"][:3]
    assert all(sec.extra["per_seed"][row]["0"]["steps"] == st["steps"] for row in shortcut.ROWS)
    assert f"{st['max_epochs']} epochs x {per_epoch} batches of the {st['fit_lesions']} fitting lesions = {st['steps']} steps" in sec.settings


@pytest.mark.parametrize("key", ["attention_heldout", "attention_external", "auc_heldout", "auc_external", "train_dice_last10pct"])
def test_body_numbers_equal_extra(quick_run, key):
    _, sec = quick_run
    for row in shortcut.ROWS:
        m = sec.extra["summary"][row][key]
        line = next(li for li in sec.body.splitlines() if li.startswith(f"| {row} |"))
        assert ("–" if math.isnan(m["mean"]) else f"{m['mean']:.3f} ± {m['sd']:.3f} [{m['min']:.3f}, {m['max']:.3f}]") in line
        r = sec.extra["per_seed"][row]["0"]
        per_seed = next(li for li in sec.body.splitlines() if li.startswith(f"| 0 | {row} |"))
        if key.startswith("auc"):
            assert f"{r[key]:.3f} [{r[key + '_ci'][0]:.3f}, {r[key + '_ci'][1]:.3f}]" in per_seed
        elif key.startswith("attention"):
            assert f" {r[key]:.3f} |" in per_seed
    for name, p in sec.extra["probe"].items():
        dice = "–" if math.isnan(p["train_dice_last10pct"]) else f"{p['train_dice_last10pct']:.3f}"
        assert (f"| {name} | {p['steps']} | {p['attention_heldout']:.3f} | {p['attention_external']:.3f} | {p['auc_external']:.3f} | "
                f"{dice} |") in sec.body
    assert sec.extra["probe"]["paper (mask_guided row)"] == sec.extra["per_seed"]["mask_guided"]["0"]


def test_rerun_skips_every_cell(quick_run, capsys):
    out, sec = quick_run
    cells = sorted((out / "seed0" / "cells").glob("*/cell.json"))
    before = [p.stat().st_mtime_ns for p in cells]
    again = shortcut.run(out, quick=True, progress=True)
    printed = capsys.readouterr().out
    assert "training" not in printed and printed.count("skipped") == N_CELLS == len(cells)
    assert [p.stat().st_mtime_ns for p in cells] == before
    assert again.body == sec.body and again.seconds == sec.seconds


def test_cell_without_external_attention_refused(quick_run, tmp_path):
    out, _ = quick_run
    sd = tmp_path / "seed0"
    shutil.copytree(out / "seed0", sd, ignore=shutil.ignore_patterns("preprocess_cache"))
    cell = sd / "cells" / "mask_only" / "cell.json"
    rec = json.loads(cell.read_text())
    del rec["external_attention_in_mask"]
    cell.write_text(json.dumps(rec))
    s = shortcut.settings_for(True)
    c = shortcut._prepare(sd, sd / "cohort" / "manifest.json", 0, s)
    with pytest.raises(ValueError, match=r"mask_only/cell.json lacks external_attention_in_mask .*delete .*mask_only to recompute"):
        shortcut._plan(c, s, True)


def test_missing_model_named(quick_run, tmp_path):
    out, _ = quick_run
    sd = tmp_path / "seed0"
    shutil.copytree(out / "seed0", sd, ignore=shutil.ignore_patterns("preprocess_cache"))
    (sd / "cells" / "no_mask" / "models" / "model.pt").unlink()
    s = shortcut.settings_for(True)
    c = shortcut._prepare(sd, sd / "cohort" / "manifest.json", 0, s)
    cell = next(x for x in shortcut._plan(c, s, False) if x.name == "no_mask")
    with pytest.raises(FileNotFoundError, match=r"no_mask: the cell's final model .*no_mask/models/model.pt' does not exist"):
        shortcut._bundle_model(cell, c.heldout_records)


def test_prepare_errors(quick_run, tmp_path):
    out, _ = quick_run
    manifest = out / "seed0" / "cohort" / "manifest.json"
    s = shortcut.settings_for(True)
    with pytest.raises(ValueError, match=r"cohort seed 0: \d+ fitting lesions, fewer than one batch of 1000"):
        shortcut._prepare(tmp_path / "a", manifest, 0, {**s, "batch_size": 1000})
    folds = json.loads((out / "seed0" / "folds.json").read_text())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "folds.json").write_text(json.dumps({**folds, "folds": folds["folds"][::-1]}))
    with pytest.raises(ValueError, match=r"folds.json holds other folds than cohort seed 0 with k 4 gives"):
        shortcut._prepare(tmp_path / "b", manifest, 0, s)


@pytest.mark.parametrize("learnt, paper, deep, verdict", [
    (True, (True, True), (False, False), "works"),
    (False, (True, True), (True, True), "partly"),  # the shortcut was never learnt: protection untested
    (True, (True, False), (False, False), "partly"),
    (True, (False, False), (False, True), "partly"),
    (True, (False, False), (False, False), "does not"),
])
def test_verdict_needs_the_shortcut_learnt(learnt, paper, deep, verdict):
    assert shortcut.shortcut_verdict(learnt, paper, deep) == verdict
