"""Experiment "The channel search finds planted truth" at quick settings: tables, figure, numbers, errors."""

from __future__ import annotations

import dataclasses
import math

import pytest

from dce_monai.workflows.validation import Section, channels
from dce_monai.workflows.validation.common import fmt


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    out = tmp_path_factory.mktemp("channels")
    return out, channels.run(out, quick=True, progress=False)


def test_section_tables_figure_and_numbers(section):
    out, sec = section
    assert isinstance(sec, Section) and sec.name == "channels" and sec.verdict in ("works", "partly", "does not")
    st = channels.QUICK
    per = sec.extra["per_seed"]
    assert list(per) == [str(s) for s in st.cohort_seeds]
    assert sec.extra["informative_channels"] == ["T1post3", "T1post4"]
    lines = sec.body.splitlines()
    for s, r in per.items():
        row = next(ln for ln in lines if ln.startswith(f"| {s} |"))
        assert r["top"].replace("+", ", ") in row and fmt(r["best_informative_auc"]) in row and fmt(r["best_uninformative_auc"]) in row
        assert fmt(r["max_p"], 4) in row and ("| yes |" if r["success"] else "| no |") in row
        kinds = {x["triplet"]: x["informative"] for x in r["ranking"]}
        assert kinds == {"T1pre+T1post1+T1post4": True, "T1pre+T1post1+T1post2": False, "T2+T1pre+sub": False}
        assert sorted(x["rank"] for x in r["ranking"]) == [1, 2, 3]
        assert set(r["delong_vs_uninformative"]) == {"T1pre+T1post1+T1post2", "T2+T1pre+sub"}
        assert r["max_p"] == max(t["p"] for t in r["delong_vs_uninformative"].values()) or math.isnan(r["max_p"])
        assert r["success"] == (r["informative_on_top"] and r["max_p"] < st.alpha)
        for x in r["ranking"]:
            line = next(ln for ln in lines if ln.startswith(f"| {x['triplet'].replace('+', ', ')} |"))
            assert f"#{x['rank']}: {fmt(x['auc'])} [{fmt(x['auc_ci'][0])}, {fmt(x['auc_ci'][1])}]" in line
    (path, caption), = sec.figures
    assert path.endswith("ranking.png") and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and "informative" in caption
    assert (sec.verdict == "works") == all(r["success"] for r in per.values())


def test_rerun_uses_the_cache(section):
    out, sec = section
    again = channels.run(out, quick=True, progress=False)
    assert again.extra["per_seed"] == sec.extra["per_seed"]


def test_one_kind_of_triplet_refused(section):
    out, _ = section
    only_informative = dataclasses.replace(channels.QUICK, triplets=(channels.TRIPLETS[0], channels.TRIPLETS[1]))
    with pytest.raises(ValueError, match="must hold informative .* and uninformative triplets; got 2 informative of 2"):
        channels.run(out, settings=only_informative, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"cohort_seeds": (1, 1)}, "cohort_seeds must be distinct"),
    ({"cohort_seeds": ()}, "cohort_seeds must be distinct"),
    ({"triplets": (channels.TRIPLETS[0],)}, "needs at least 2 triplets"),
    ({"alpha": 1.5}, "alpha must be in \\(0, 1\\)"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        channels.ChannelsSettings(**kwargs)


def test_plot_without_rankings_refused(tmp_path):
    with pytest.raises(ValueError, match="every seed needs a ranking"):
        channels.plot_rankings({}, tmp_path / "r.png")
