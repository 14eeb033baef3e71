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
    argv = [str(manifest), "--out", str(out), "--k", "2", "--max-epochs", "1", "--spatial-size", "32", "32", "16",
            "--batch-size", "2", "--vgg-channels", "4", "8"]
    for key, val in kw.items():
        argv += [f"--{key}"] + (val if isinstance(val, list) else [str(val)])
    return p.parse_args(argv)


def test_compare_masking_table_and_resume(cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp"
    assert cm.cli_main(_args(cohort, out)) == 0
    text = capsys.readouterr().out
    assert ": training" in text and "test_auc_mean" in text and "val_" not in text
    md = (out / "comparison.md").read_text()
    for v in cm.VARIANTS:
        assert v in md
    assert (out / "comparison.csv").is_file()
    from dce_monai.metrics.results import read_predictions

    rows = read_predictions(out / "predictions.csv")
    assert {r["model"] for r in rows} == set(cm.VARIANTS) and {r["split"] for r in rows} == {"train", "test"}
    assert {str(r["fold"]) for r in rows} == {"0", "1"}
    assert {r["experiment"] for r in rows} == {"compare_masking"}  # what `dce-monai report` looks for
    cams = sorted((out / "cells").glob("*/cam/cam_*.png"))
    assert {p.parts[-3].rsplit("_fold", 1)[0] for p in cams} == set(cm.VARIANTS) and all(p.stat().st_size > 1000 for p in cams)
    summary = cm.summarize_cells([__import__("json").loads(p.read_text()) for p in (out / "cells").glob("*/cell.json")])
    assert all(0.0 <= r["attention_in_mask_mean"] <= 1.0 for r in summary)
    assert cm.cli_main(_args(cohort, out)) == 0
    text = capsys.readouterr().out
    assert text.count("skipped") == 6 and ": training" not in text  # the progress line of a cell that trains


def test_errors(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--max-epochs must be >= 1"):
        cm.cli_main(_args(cohort, tmp_path, **{"max-epochs": 0}))
    with pytest.raises(ValueError, match="variants must be among"):
        cm.run_compare_masking(cohort, tmp_path, k=2, variants=["bogus"])
    with pytest.raises(ValueError, match="variant must be one of"):
        cm.run_cell(cohort, tmp_path / "f.json", "bogus", 0, tmp_path)


def test_external_cohort_evaluated(tmp_path: Path) -> None:
    """The manifest's `cohort: test` patients are scored by every cell as split `external`, apart from the held-out fold `test`."""
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.metrics.results import read_predictions

    manifest = generate_cohort(tmp_path / "c", n_patients=8, seed=5, size="tiny", shortcut_train=1.0,
                               shortcut_test=0.0, test_fraction=0.25, progress=False)
    summary, md = cm.run_compare_masking(manifest, tmp_path / "out", k=2, variants=["mask_guided"], progress=False,
                                         overrides={"max_epochs": 1, "spatial_size": [32, 32, 16], "batch_size": 2,
                                                    "vgg_channels": [4, 8]})
    text = md.read_text()
    for key in ("train_auc_mean", "test_auc_mean", "external_auc_mean", "test_auc_pooled", "external_auc_pooled",
                "test_collapsed_folds", "external_collapsed_folds"):
        assert key in summary[0] and key in text, key
    assert not [k for k in summary[0] if k.startswith("val_")]
    rows = read_predictions(tmp_path / "out" / "predictions.csv")
    assert {r["split"] for r in rows} == {"train", "test", "external"}
    from dce_monai.data.manifest import load_manifest
    from dce_monai.metrics.stats import binary_metrics

    for split in ("test", "external"):  # the pooled AUC is the one AUC of all folds' rows of the split
        sel = [r for r in rows if r["split"] == split]
        ref = binary_metrics([int(r["label"]) for r in sel], [float(r["prob"]) for r in sel])["auc"]
        assert summary[0][f"{split}_auc_pooled"] == pytest.approx(ref, abs=1e-9, nan_ok=True)
    cohort_test = {p["patient_id"] for p in load_manifest(manifest).patients if p.get("cohort") == "test"}
    external_pids = {r["patient_id"] for r in rows if r["split"] == "external"}
    assert external_pids == cohort_test and not external_pids & {r["patient_id"] for r in rows if r["split"] != "external"}
    assert {r["fold"] for r in rows if r["split"] == "external"} == {0, 1}  # every fold's model scores the whole cohort
    import json

    for fold in (0, 1):  # the attention fraction on the independent cohort, next to the held-out fold's
        cell = json.loads((tmp_path / "out" / "cells" / f"mask_guided_fold{fold}" / "cell.json").read_text())
        assert 0.0 <= cell["external_attention_in_mask"] <= 1.0 and 0.0 <= cell["attention_in_mask"] <= 1.0
    assert 0.0 <= summary[0]["external_attention_in_mask_mean"] <= 1.0 and "external_attention_in_mask_mean" in text
    assert {p.parent.name for p in (tmp_path / "out" / "cells").glob("*/cam/cam_*.png")} == {"cam"}  # the external pass writes no images


def test_external_attention_left_out_when_a_cell_lacks_it() -> None:
    """Format-2 cells written before `external_attention_in_mask` was recorded stay readable: the column is left out."""
    base = {"variant": "mask_guided", "train_acc": 1.0, "train_auc": 1.0, "test_acc": 0.5, "test_auc": 0.5, "attention_in_mask": 0.1,
            "external_acc": 0.5, "external_auc": 0.6}
    both = cm.summarize_cells([{**base, "fold": 0, "external_attention_in_mask": 0.2}, {**base, "fold": 1, "external_attention_in_mask": 0.4}])
    assert both[0]["external_attention_in_mask_mean"] == pytest.approx(0.3)
    one = cm.summarize_cells([{**base, "fold": 0, "external_attention_in_mask": 0.2}, {**base, "fold": 1}])
    assert "external_attention_in_mask_mean" not in one[0] and one[0]["external_auc_mean"] == pytest.approx(0.6)


def test_invalid_cohort_refused_before_training(broken_cohort, tmp_path: Path) -> None:
    from dce_monai.data.manifest import ManifestError

    manifest, bad = broken_cohort
    with pytest.raises(ManifestError, match=rf"{bad}.*cannot read NIfTI file .*T1post2"):
        cm.run_compare_masking(manifest, tmp_path / "c", k=2, progress=False)
    assert not (tmp_path / "c" / "cells").exists()


# ----------------------------------------------------------------------------- cell fingerprints

SMALL = {"max_epochs": 1, "spatial_size": [32, 32, 16], "batch_size": 2, "vgg_channels": [4, 8]}


@pytest.fixture(scope="module")
def finished(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished mask-guided run (k=2: two cells) that the fingerprint tests re-run with other settings."""
    out = tmp_path_factory.mktemp("cmp_fp") / "run"
    cm.run_compare_masking(cohort, out, k=2, variants=["mask_guided"], overrides=SMALL, progress=False)
    return out


def _rerun(cohort: Path, out: Path, **kw: object) -> tuple[list[dict], Path]:
    args = {"k": 2, "variants": ["mask_guided"], "overrides": SMALL, "progress": False, **kw}
    return cm.run_compare_masking(cohort, out, **args)  # type: ignore[arg-type]


def test_finished_cells_record_fingerprint_and_collapse(finished: Path, cohort: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    cell = json.loads((finished / "cells" / "mask_guided_fold0" / "cell.json").read_text())
    assert cell["complete"] and len(cell["fingerprint"]) == 16 and cell["settings"]["max_epochs"] == 1
    assert set(cell["settings"]) >= {"cell_format", "variant", "fold", "seed", "manifest_sha256", "folds", "bundle_configs_sha256", "spatial_size"}
    assert cell["cell_format"] == cell["settings"]["cell_format"] == cm.CELL_FORMAT == 2
    assert "test_collapse" in cell and cell["test_span"] >= 0.0 and not [k for k in cell if k.startswith("val_")]
    assert 0.0 <= cell["attention_in_mask"] <= 1.0 and "external_attention_in_mask" not in cell  # no independent cohort
    assert sorted(p.name for p in (finished / "cells" / "mask_guided_fold0").glob("predictions_*.csv")) == ["predictions_test.csv", "predictions_train.csv"]
    summary, md = _rerun(cohort, finished, progress=True)
    assert capsys.readouterr().out.count("done before with the same settings, skipped") == 2
    text = md.read_text()
    assert "mean and SD over the folds" in text and "test_auc_pooled" in text and "test_collapsed_folds" in text
    assert 0 <= summary[0]["test_collapsed_folds"] <= 2 and 0.0 <= summary[0]["test_auc_pooled"] <= 1.0
    assert "external_auc_pooled" not in summary[0]  # no independent cohort in this manifest


@pytest.mark.parametrize(
    "key, value",
    [("max_epochs", 2), ("spatial_size", [32, 32, 8]), ("batch_size", 3), ("learning_rate", 1e-3),
     ("vgg_channels", [4, 4]), ("field_of_view", "volume")],
)
def test_changed_setting_is_refused_before_training(finished: Path, cohort: Path, key: str, value: object) -> None:
    before = sorted(p.stat().st_mtime_ns for p in (finished / "cells").rglob("*"))
    with pytest.raises(ValueError, match=rf"mask_guided_fold0/cell.json was computed with other data or settings .*{key}: "):
        _rerun(cohort, finished, overrides={**SMALL, key: value})
    assert sorted(p.stat().st_mtime_ns for p in (finished / "cells").rglob("*")) == before


def test_changed_seed_k_folds_manifest_bundle_refused(finished: Path, cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import shutil

    from dce_monai.data.folds import patient_folds, read_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.workflows import bundle_utils

    lesions = load_manifest(cohort).to_datalist(level="lesion")
    other = next(s for s in range(1, 50) if patient_folds(lesions, k=2, seed=s) != read_folds(finished / "folds.json"))
    with pytest.raises(ValueError, match=rf"holds other folds than this cohort with --k 2 and --seed {other}"):
        _rerun(cohort, finished, seed=other)
    with pytest.raises(ValueError, match=r"seed: 0 -> 1"):
        _rerun(cohort, finished, folds=finished / "folds.json", seed=1)
    folds = json.loads((finished / "folds.json").read_text())
    swapped = tmp_path / "folds.json"
    swapped.write_text(json.dumps({**folds, "folds": folds["folds"][::-1]}))
    with pytest.raises(ValueError, match=r"settings that differ: folds: "):
        _rerun(cohort, finished, folds=swapped)
    man = json.loads(Path(cohort).read_text())
    man["patients"][0]["lesions"][0]["volume_mm3"] += 1.0
    changed = Path(cohort).with_name("manifest_changed.json")
    changed.write_text(json.dumps(man, indent=3))
    try:
        with pytest.raises(ValueError, match=r"manifest_sha256: "):
            _rerun(changed, finished, folds=finished / "folds.json")
        changed.write_text(json.dumps(json.loads(Path(cohort).read_text()), indent=5))  # same content, other layout: accepted
        cm._finished_cell(finished / "cells" / "mask_guided_fold0", cm.cell_settings(
            changed, finished / "folds.json", "mask_guided", 0, {**SMALL, "seed": 0}, False))
    finally:
        changed.unlink()
    fake = tmp_path / "bundles"
    shutil.copytree(bundle_utils.BUNDLES_DIR / cm.BUNDLE, fake / cm.BUNDLE)
    cfg = fake / cm.BUNDLE / "configs" / "train.json"
    cfg.write_text(cfg.read_text().replace('"val_fraction": 0.0', '"val_fraction": 0.1'))
    monkeypatch.setattr(bundle_utils, "BUNDLES_DIR", fake)
    with pytest.raises(ValueError, match=r"bundle_configs_sha256: "):
        _rerun(cohort, finished)


def test_unfinished_cell_of_other_settings_refused(cohort: Path, tmp_path: Path) -> None:
    from dce_monai.workflows.cells import write_json_atomic

    out = tmp_path / "run"
    write_json_atomic(out / "cells" / "mask_guided_fold1" / "started.json",
                      {"fingerprint": "0" * 16, "settings": {"cell_format": cm.CELL_FORMAT, "max_epochs": 7}})
    with pytest.raises(ValueError, match=r"mask_guided_fold1 holds an unfinished cell \(checkpoints\) started with other settings: .*max_epochs: 7 -> 1"):
        _rerun(cohort, out)
    assert not (out / "cells" / "mask_guided_fold0").exists()  # refused before the first cell


def test_cell_without_settings_record_refused(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    legacy = out / "cells" / "mask_guided_fold0" / "cell.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text('{"variant": "mask_guided", "fold": 0, "val_auc": 0.9}')
    with pytest.raises(ValueError, match=r"mask_guided_fold0 holds a cell without a settings record \(written by an older version\)"):
        _rerun(cohort, out)


@pytest.mark.parametrize("name", ["cell.json", "started.json"])
def test_cell_of_an_older_format_refused(finished: Path, cohort: Path, tmp_path: Path, name: str) -> None:
    """A cell written with the old split names (held-out fold `val`, independent cohort `test`) is not reused."""
    import json
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    path = out / "cells" / "mask_guided_fold1" / name
    rec = json.loads((out / "cells" / "mask_guided_fold1" / "cell.json").read_text())
    old = {("val" + k[4:] if k.startswith("test") else k): v for k, v in rec.items() if k != "cell_format"}
    old["settings"] = {("test_cohort" if k == "external_cohort" else k): v for k, v in rec["settings"].items() if k != "cell_format"}
    if name == "started.json":
        (out / "cells" / "mask_guided_fold1" / "cell.json").unlink()
        old = {"fingerprint": old["fingerprint"], "settings": old["settings"]}
    path.write_text(json.dumps(old))
    before = sorted(p.stat().st_mtime_ns for p in (out / "cells").rglob("*"))
    with pytest.raises(ValueError, match=rf"mask_guided_fold1/{name} was written by an older dce_monai version \(cell format 1, this "
                                         rf"version {cm.CELL_FORMAT}\): it names the held-out fold `val` and the independent cohort `test`"):
        _rerun(cohort, out)
    assert sorted(p.stat().st_mtime_ns for p in (out / "cells").rglob("*")) == before  # refused before any training


def test_corrupt_cell_is_named_and_recomputed(finished: Path, cohort: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    cell = finished / "cells" / "mask_guided_fold1" / "cell.json"
    good = json.loads(cell.read_text())
    cell.write_text('{"variant": "mask_guided", "fol')
    with caplog.at_level(logging.WARNING, logger="dce_monai.workflows.cells"):
        _rerun(cohort, finished)
    assert any(str(cell) in r.getMessage() and "corrupt or half-written" in r.getMessage() for r in caplog.records)
    again = json.loads(cell.read_text())
    assert again["complete"] and again["fingerprint"] == good["fingerprint"]


def test_each_lesion_is_preprocessed_once_per_pipeline(cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training, validation and both inference passes of every cell share one preprocessing per lesion;
    a second run (other settings, every cell retrained) over the same cache preprocesses nothing."""
    from dce_monai import transforms as T
    from dce_monai.data.manifest import load_manifest

    calls: list[str] = []
    original = T.FuzzyCMeansMaskd.__call__

    def counted(self, data, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(str(data.get("lesion_id")))
        return original(self, data, *a, **k)

    monkeypatch.setattr(T.FuzzyCMeansMaskd, "__call__", counted)
    cache = tmp_path / "cache"
    over = {"max_epochs": 1, "spatial_size": [32, 32, 16], "batch_size": 2, "vgg_channels": [4, 8]}
    cm.run_compare_masking(cohort, tmp_path / "a", k=2, variants=["no_mask", "mask_guided"], overrides=over, cache_dir=cache, progress=False)
    lesions = [str(d["lesion_id"]) for d in load_manifest(cohort).to_datalist(level="lesion")]
    # no_mask and mask_guided crop the same window: one pipeline, one preprocessing per lesion for 4 cells
    assert sorted(calls) == sorted(lesions)
    calls.clear()
    cm.run_compare_masking(cohort, tmp_path / "b", k=2, variants=["no_mask", "mask_guided"], overrides={**over, "max_epochs": 2},
                           cache_dir=cache, progress=False)
    assert calls == []
