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
        assert rec["seconds"] >= 0 and rec["settings"] == demo.DEMO_SETTINGS[name]
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
