"""Experiment "Seed 1 learns" at quick settings: the section's tables, figure and numbers; caching; errors."""

from __future__ import annotations

import dataclasses

import pytest

from dce_monai.workflows.validation import Section, learns
from dce_monai.workflows.validation.common import fmt


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    out = tmp_path_factory.mktemp("learns")
    return out, learns.run(out, quick=True, progress=False)


def test_section_tables_figure_and_numbers(section):
    out, sec = section
    assert isinstance(sec, Section) and sec.name == "learns" and sec.verdict in ("works", "partly", "does not")
    rows = sec.extra["rows"]
    assert [r["triplet"] for r in rows] == ["T1pre+T1post3+sub"] and sec.extra["quick"] is True
    body = sec.body.split("How hard the cohort is")[0]
    table = [ln for ln in body.splitlines() if ln.startswith("| ")]
    assert len(table) == 2 + len(rows)  # header, one row per triplet, the baseline's row
    for r in rows:
        line = next(ln for ln in table if ln.startswith(f"| seed 1, {r['triplet'].replace('+', ', ')} |"))
        for v in (r["auc"], r["auc_ci"][0], r["auc_ci"][1], r["baseline_auc"], r["delong_p"]):
            assert fmt(v) in line
        assert f"{r['delta']:+.3f}" in line
        assert r["within_margin"] == (r["auc"] >= r["baseline_auc"] - learns.QUICK.margin)
        assert len(r["final_train_loss"]) == learns.QUICK.k
    b = sec.extra["baseline_all"]
    assert f"{fmt(b['auc'])} [{fmt(b['ci'][0])}, {fmt(b['ci'][1])}]" in table[-1]
    curves = sec.extra["curves"]["T1pre+T1post3+sub"]
    assert len(curves) == learns.QUICK.k and all(len(c["train_loss"]) == len(c["held_out_auc"]) == 1 for c in curves)
    (path, caption), = sec.figures
    assert path.endswith("curves.png") and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and "diagnostic" in caption
    assert "last epoch" in sec.settings and "realistic" in sec.settings
    assert (sec.verdict == "works") == all(r["within_margin"] for r in rows)


def test_difficulty_table_is_the_baselines_own(section):
    _, sec = section
    groups = sec.extra["baseline_groups"]
    assert set(groups) == {f"{m}_{f}" for m in ("logreg", "gboost") for f in ("kinetic", "shape", "combined")}
    for model, g in groups.items():
        line = next(ln for ln in sec.body.splitlines() if ln.startswith(f"| `{model}` |"))
        assert f"{fmt(g['auc'])} [{fmt(g['ci'][0])}, {fmt(g['ci'][1])}]" in line
    kin, shape = groups["logreg_kinetic"]["auc"], max(g["auc"] for g in groups.values() if g["features"] == "shape")
    assert f"kinetic features alone give {fmt(kin)}, shape features alone at most {fmt(shape)}" in sec.reading


def test_rerun_uses_the_cache(section):
    out, sec = section
    again = learns.run(out, quick=True, progress=False)
    assert again.extra["rows"] == sec.extra["rows"]
    assert "(0 cells trained, 2 cached)" in again.body
    assert again.seconds == sec.seconds and "Timings of the run that trained the cells (2 cells)" in again.body


def test_other_cohort_settings_refused(section):
    out, _ = section
    other = dataclasses.replace(learns.QUICK, patients=11)
    with pytest.raises(ValueError, match="generated with other settings \\(n_patients differ"):
        learns.run(out, settings=other, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"patients": 3}, "patients must be >= 6"),
    ({"size": "huge"}, "size must be 'tiny' or 'demo'"),
    ({"triplets": ()}, "triplets is empty"),
    ({"margin": 0.7}, "margin must be in \\(0, 0.5\\)"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        learns.LearnsSettings(**kwargs)


def test_plot_without_curves_refused(tmp_path):
    with pytest.raises(ValueError, match="no curves to draw"):
        learns.plot_learning_curves({}, 0.8, tmp_path / "c.png")
