"""Tests for dce_monai.workflows.compare_masking (tiny phantom cohort, k=2, 1 epoch)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dce_monai.workflows import compare_masking as cm


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dce_monai.data.phantom import generate_cohort

    return Path(generate_cohort(tmp_path_factory.mktemp("cmp"), n_patients=6, seed=3, size="tiny", progress=False))


def _args(manifest: Path, out: Path, **kw: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cm.add_cli_arguments(p)
    argv = [str(manifest), "--out", str(out), "--k", "2", "--epochs", "1", "--spatial-size", "32", "32", "16",
            "--batch-size", "2", "--vgg-channels", "4", "8"]
    for key, val in kw.items():
        argv += [f"--{key}"] + (val if isinstance(val, list) else [str(val)])
    return p.parse_args(argv)


def test_compare_masking_table_and_resume(cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp"
    assert cm.cli_main(_args(cohort, out)) == 0
    text = capsys.readouterr().out
    assert "training" in text and "val_auc_mean" in text
    md = (out / "comparison.md").read_text()
    for v in cm.VARIANTS:
        assert v in md
    assert (out / "comparison.csv").is_file()
    from dce_monai.workflows.results import read_predictions

    rows = read_predictions(out / "predictions.csv")
    assert {r["model"] for r in rows} == set(cm.VARIANTS) and {r["split"] for r in rows} == {"train", "val"}
    assert {str(r["fold"]) for r in rows} == {"0", "1"}
    assert {r["experiment"] for r in rows} == {"compare_masking"}  # what `dce-monai report` looks for
    cams = sorted((out / "cells").glob("*/cam/cam_*.png"))
    assert {p.parts[-3].rsplit("_fold", 1)[0] for p in cams} == set(cm.VARIANTS) and all(p.stat().st_size > 1000 for p in cams)
    summary = cm.summarize_cells([__import__("json").loads(p.read_text()) for p in (out / "cells").glob("*/cell.json")])
    assert all(0.0 <= r["attention_in_mask_mean"] <= 1.0 for r in summary)
    assert cm.cli_main(_args(cohort, out)) == 0
    text = capsys.readouterr().out
    assert text.count("skipped") == 6 and "training" not in text


def test_errors(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--epochs must be >= 1"):
        cm.cli_main(_args(cohort, tmp_path, epochs=0))
    with pytest.raises(ValueError, match="variants must be among"):
        cm.run_compare_masking(cohort, tmp_path, k=2, variants=["bogus"])
    with pytest.raises(ValueError, match="variant must be one of"):
        cm.run_cell(cohort, tmp_path / "f.json", "bogus", 0, tmp_path)


def test_test_cohort_evaluated(tmp_path: Path) -> None:
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.workflows.results import read_predictions

    manifest = generate_cohort(tmp_path / "c", n_patients=8, seed=5, size="tiny", shortcut_train=1.0,
                               shortcut_test=0.0, test_fraction=0.25, progress=False)
    summary, md = cm.run_compare_masking(manifest, tmp_path / "out", k=2, variants=["mask_guided"], progress=False,
                                         overrides={"max_epochs": 1, "spatial_size": [32, 32, 16], "batch_size": 2,
                                                    "vgg_channels": [4, 8]})
    assert "test_auc_mean" in summary[0] and "test_auc_mean" in md.read_text()
    rows = read_predictions(tmp_path / "out" / "predictions.csv")
    test_pids = {r["patient_id"] for r in rows if r["split"] == "test"}
    assert test_pids and not test_pids & {r["patient_id"] for r in rows if r["split"] != "test"}


def test_invalid_cohort_refused_before_training(broken_cohort, tmp_path: Path) -> None:
    from dce_monai.data.manifest import ManifestError

    manifest, bad = broken_cohort
    with pytest.raises(ManifestError, match=rf"{bad}.*cannot read NIfTI file .*T1post2"):
        cm.run_compare_masking(manifest, tmp_path / "c", k=2, progress=False)
    assert not (tmp_path / "c" / "cells").exists()
