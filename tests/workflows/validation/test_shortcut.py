"""The ``shortcut`` validation experiment at quick settings: rows, figure, body numbers = ``extra``, resumability."""

from __future__ import annotations

import re

import pytest

from dce_monai.workflows.validation import Section, shortcut


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
    (fig, caption), = sec.figures
    assert fig.endswith("cam_panel.png") and (out / "cam_panel.png").read_bytes()[:4] == b"\x89PNG" and "tumour mask" in caption
    assert sec.extra["quick"] is True


@pytest.mark.parametrize("key", ["attention_external", "auc_heldout", "auc_external", "train_dice_last10pct"])
def test_body_numbers_equal_extra(quick_run, key):
    _, sec = quick_run
    for row in shortcut.ROWS:
        m = sec.extra["summary"][row][key]
        line = next(li for li in sec.body.splitlines() if li.startswith(f"| {row} |"))
        assert f"{m['mean']:.3f} ± {m['sd']:.3f} [{m['min']:.3f}, {m['max']:.3f}]" in line
        r = sec.extra["per_seed"][row]["0"]
        if key != "train_dice_last10pct":
            per_seed = next(li for li in sec.body.splitlines() if li.startswith(f"| 0 | {row} |"))
            assert f"{r[key]:.3f} [{r[key + '_ci'][0]:.3f}, {r[key + '_ci'][1]:.3f}]" in per_seed
    for name, p in sec.extra["probe"].items():
        assert f"| {name} | {p['attention_external']:.3f} | {p['auc_external']:.3f} |" in sec.body


def test_rerun_uses_the_cache(quick_run, capsys):
    out, sec = quick_run
    again = shortcut.run(out, quick=True, progress=True)
    printed = capsys.readouterr().out
    assert "training" not in printed and printed.count("skipped") == len(shortcut.ROWS)
    assert again.body == sec.body and again.seconds < 60
