"""The demo's step machinery on a small cohort: order, resume, settings guard, report."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from dce_monai.workflows import demo

demo_threads_before = torch.get_num_threads()


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = demo.run_demo(out, patients=8, seed=0, workers=1, steps=("baseline_kinetics", "report"))
    return out, summary


def test_steps_run_in_order_and_write_markers(small_demo):
    out, summary = small_demo
    assert list(summary["steps"]) == ["cohort", "folds", "baseline_kinetics", "report"]
    assert summary["steps"]["folds"]["n_patients"] == 8
    assert json.loads((out / "folds.json").read_text())["k"] == demo.DEMO_SETTINGS["folds"]["k"]
    for name in summary["steps"]:
        rec = json.loads((out / "steps" / f"{name}.json").read_text())
        assert rec["seconds"] >= 0 and rec["settings"] == demo.DEMO_SETTINGS[name] and rec["held_out_splits"] == ["test", "external"]
    assert (out / "report" / "report.md").is_file() and (out / "report" / "report.html").is_file()
    assert "Kinetic baseline" in (out / "report" / "report.md").read_text()
    assert summary["tensorboard"] == f"tensorboard --logdir {out}"
    env = summary["environment"]
    assert env["threads"] == 2 and env["cpu_capability"] and env["torch"]
    assert json.loads((out / "steps" / "report.json").read_text())["threads"] == 2
    import torch

    assert torch.get_num_threads() == demo_threads_before  # restored after the demo


def test_rerun_skips_finished_steps(small_demo, capsys):
    out, _ = small_demo
    before = {p.name: p.stat().st_mtime_ns for p in (out / "steps").glob("*.json")}
    demo.run_demo(out, patients=8, seed=0, workers=1, steps=("baseline_kinetics", "report"))
    assert "baseline_kinetics: done before" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "steps").glob("*.json")} == before


def test_other_settings_in_the_same_folder_are_refused(small_demo):
    out, _ = small_demo
    with pytest.raises(ValueError, match=r"holds a demo run with other settings .*cohort\.json"):
        demo.run_demo(out, patients=9, seed=0, workers=1, steps=("report",))
    with pytest.raises(ValueError, match=r"holds a demo run with other settings .*cohort\.json"):
        demo.run_demo(out, patients=8, seed=0, workers=1, steps=("report",), threads=1)  # other threads, other numbers


def test_demo_folder_of_an_older_version_is_refused(tmp_path):
    """Step markers without `held_out_splits` come from a version that named the held-out fold `val`."""
    marks = tmp_path / "steps"
    marks.mkdir()
    old = {"settings": demo.DEMO_SETTINGS["cohort"], "patients": 8, "seed": 0, "threads": 2, "cpu_isa": "native", "seconds": 1.0}
    (marks / "cohort.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"steps/cohort\.json was written by an older dce_monai version, which named the held-out fold `val`"):
        demo.run_demo(tmp_path, patients=8, seed=0, workers=1, steps=("report",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steps"]  # nothing computed


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"unknown demo steps \['train'\]"):
        demo.run_demo(tmp_path, steps=("train",))
    with pytest.raises(ValueError, match=r"threads must be an integer >= 1, got 0"):
        demo.run_demo(tmp_path, threads=0)
    args = argparse.Namespace(out=str(tmp_path), patients=4, seed=0, workers=1, steps=["report"])
    with pytest.raises(ValueError, match=r"--patients must be >= 6 for 3 folds, got 4"):
        demo.cli_main(args)


def test_limit_cpu_isa(monkeypatch):
    for k in demo.AVX2_ENV:  # set then delete: monkeypatch records each key and restores it (absent) afterwards,
        monkeypatch.setenv(k, "x")  # so worker processes spawned by later tests do not inherit AVX2 limits
        monkeypatch.delenv(k)
    demo.limit_cpu_isa("native")
    assert not any(k in __import__("os").environ for k in demo.AVX2_ENV)
    demo.limit_cpu_isa("avx2")
    import os

    assert {k: os.environ[k] for k in demo.AVX2_ENV} == demo.AVX2_ENV
    demo.limit_cpu_isa("avx2")  # idempotent
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    with pytest.raises(ValueError, match=r"cpu_isa='avx2' conflicts with the environment \{'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE'\}"):
        demo.limit_cpu_isa("avx2")
    with pytest.raises(ValueError, match="sse"):
        demo.limit_cpu_isa("sse")


def test_cli_defaults_pin_threads_and_isa():
    p = argparse.ArgumentParser()
    demo.add_cli_arguments(p)
    args = p.parse_args([])
    assert args.threads == 2 and args.cpu_isa == "avx2"


# ---- every step of the demo, at tiny size -------------------------------------------------------


def _tiny_settings() -> dict:
    """DEMO_SETTINGS shrunk to the least that still runs every step (several minutes on 2 busy CPU cores).

    Keys are replaced only where they exist, so the test follows a renamed setting
    (e.g. the seed 1 step's ``patch_size`` / ``image_size``)."""
    s = {k: dict(v) for k, v in demo.DEMO_SETTINGS.items()}
    seed1 = s["transfer_resnet34"]
    seed1.update(max_epochs=1, batch_size=8)
    for key in ("patch_size", "image_size"):
        if key in seed1:
            seed1[key] = 32
    s["compare_masking"].update(max_epochs=1, spatial_size=[16, 16, 8], batch_size=4, vgg_channels=[4, 8])
    s["search_channels"].update(max_epochs=1, image_size=16, batch_size=16, n_boot=20,
                                triplets=[["T1pre", "T1post3", "sub"]])
    s["folds"].update(k=2)  # 6 patients, 2 folds: 6 masking-comparison trainings and 2 channel-search cells
    s["baseline_kinetics"].update(n_boot=20)
    s["report"].update(n_boot=20)
    return s


@pytest.fixture(scope="module")
def full_tiny_demo(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    tiny = _tiny_settings()
    for name, value in tiny.items():
        mp.setitem(demo.DEMO_SETTINGS, name, value)
    try:
        out = tmp_path_factory.mktemp("demo_all")
        summary = demo.run_demo(out, patients=6, seed=0, workers=1)
        yield out, summary, tiny
    finally:
        mp.undo()


@pytest.mark.slow
def test_every_step_runs_and_writes_its_outputs(full_tiny_demo):
    from dce_monai.data.manifest import load_manifest
    from dce_monai.metrics.results import read_predictions
    from dce_monai.metrics.stats import binary_metrics

    out, summary, tiny = full_tiny_demo
    assert list(summary["steps"]) == list(demo.STEPS)
    for name in demo.STEPS:  # one marker per step with the settings it ran under
        rec = json.loads((out / "steps" / f"{name}.json").read_text())
        assert rec["settings"] == json.loads(json.dumps(tiny[name])) and rec["seconds"] >= 0 and rec["patients"] == 6
    lesions = load_manifest(out / "cohort" / "manifest.json").to_datalist(level="lesion")
    assert summary["steps"]["folds"]["n_patients"] == 6 and summary["steps"]["folds"]["n_lesions"] == len(lesions)
    assert summary["steps"]["folds"]["n_malignant_lesions"] == sum(int(d["label"]) for d in lesions)
    truth = {str(d["lesion_id"]): int(d["label"]) for d in lesions}

    # seed 1 bundle: held-out predictions of fold 0, labels from the manifest
    seed1 = summary["steps"]["transfer_resnet34"]
    fold0 = set(json.loads((out / "folds.json").read_text())["folds"][0])
    rows = read_predictions(seed1["predictions"])
    assert rows and {r["patient_id"] for r in rows} <= fold0
    assert all(truth[r["lesion_id"]] == int(r["label"]) and 0.0 <= float(r["prob"]) <= 1.0 for r in rows)
    held = seed1.get("held_out", seed1.get("last_validation"))  # key renamed "held_out" in the seed 1 rewrite
    assert isinstance(held, dict) and held
    assert list((out / "transfer_resnet34").rglob("events.out.tfevents.*"))

    # seed 2 masking comparison: one row per variant, each over all folds
    cmp_rows = summary["steps"]["compare_masking"]["rows"]
    assert {r.get("variant", r.get("model")) for r in cmp_rows} == {"mask_guided", "no_mask", "mask_only"}
    table = (out / "compare_masking" / "comparison.md").read_text()
    assert all(v in table for v in ("mask_guided", "no_mask", "mask_only"))
    pooled = read_predictions(out / "compare_masking" / "predictions.csv")
    for row in cmp_rows:
        variant = row.get("variant", row.get("model"))
        mine = [r for r in pooled if r["model"] == variant and r["split"] == "test"]
        assert sorted(r["lesion_id"] for r in mine) == sorted(truth)  # every lesion held out exactly once
        ref = binary_metrics([int(r["label"]) for r in mine], [float(r["prob"]) for r in mine])["auc"]
        assert row["folds"] == tiny["folds"]["k"] and row["test_auc_pooled"] == pytest.approx(ref, abs=1e-9)

    # channel search: the triplet ranked, one cell per fold
    assert summary["steps"]["search_channels"]["cells_run"] == len(tiny["search_channels"]["triplets"]) * tiny["folds"]["k"]
    ranking = open(summary["steps"]["search_channels"]["ranking"]).read()
    assert "T1pre+T1post3+sub" in ranking.replace(", ", "+")

    # kinetic baseline and report: the table and both report formats, naming every step's results
    assert (out / "baseline_kinetics").is_dir() and open(summary["steps"]["baseline_kinetics"]["table"]).read().strip()
    md = (out / "report" / "report.md").read_text()
    assert "Kinetic baseline" in md and (out / "report" / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert summary["report"] == str(out / "report" / "report.html")
