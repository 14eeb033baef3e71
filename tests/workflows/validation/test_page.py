"""The validation page: experiments registry, Section checks, page rendering, CLI."""

from __future__ import annotations

import sys
import types

import pytest

from dce_monai.workflows import validation as v


@pytest.fixture
def fake_experiment(monkeypatch, tmp_path):
    """Register an experiment module ``fake`` whose run writes a figure and returns a Section."""
    mod = types.ModuleType("fake_validation_experiment")

    def run(out, quick=False, progress=True):
        out.mkdir(parents=True, exist_ok=True)
        fig = out / "curve.png"
        fig.write_bytes(b"\x89PNG fake")
        return v.Section(name="fake", title="Fake one", question="Does it?", settings="tiny", body="| a |\n|---|\n| 1 |",
                         reading="It does.", verdict="works", figures=[(str(fig), "a curve")], seconds=1.0, extra={"quick": quick})

    mod.run = run
    monkeypatch.setitem(sys.modules, "fake_validation_experiment", mod)
    monkeypatch.setitem(v.EXPERIMENTS, "fake", "fake_validation_experiment")
    return mod


@pytest.mark.parametrize("quick", [False, True])
def test_run_writes_section_and_page(fake_experiment, tmp_path, quick):
    page = tmp_path / "docs" / "validation.md"
    sections = v.run_validation(tmp_path / "run", ["fake"], page=page, quick=quick, progress=False)
    assert sections["fake"].extra == {"quick": quick}
    text = page.read_text()
    assert "## Fake one" in text and "| 1 |" in text and "**Reading (works).** It does." in text
    assert ("quick settings" in text) == quick
    assert text.rstrip().endswith(v.PAPER_SCALE) and "dce-monai search-channels" in v.PAPER_SCALE and "dce-monai compare-masking" in v.PAPER_SCALE
    assert (tmp_path / "docs" / "img" / "validation_fake_curve.png").read_bytes() == b"\x89PNG fake"
    assert '"verdict": "works"' in (tmp_path / "run" / "fake" / "section.json").read_text()


def test_unknown_experiment_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown validation experiment 'nope'"):
        v.run_validation(tmp_path, ["nope"], progress=False)
    assert not tmp_path.joinpath("nope").exists()


def test_bad_verdict_refused():
    with pytest.raises(ValueError, match="experiment 'x': verdict must be .* \\(got 'maybe'\\)"):
        v.Section(name="x", title="X", question="", settings="", body="", reading="", verdict="maybe")


def test_missing_figure_named(tmp_path):
    sec = v.Section(name="x", title="X", question="", settings="", body="", reading="", verdict="partly", figures=[(str(tmp_path / "no.png"), "c")])
    with pytest.raises(FileNotFoundError, match="experiment 'x': figure .*no.png"):
        v.render_page({"x": sec}, tmp_path / "p.md")


def test_cli(fake_experiment, tmp_path):
    from dce_monai.cli import main

    assert main(["validation", "--out", str(tmp_path / "r"), "--experiments", "fake", "--page", str(tmp_path / "p.md")]) == 0
    assert "## Fake one" in (tmp_path / "p.md").read_text()
