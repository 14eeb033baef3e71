"""Channel-triplet search: ranking, shards, idempotent re-runs, and a search cell equal to a bundle run."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os

import pytest
import torch

from dce_monai.data.folds import patient_folds, write_folds
from dce_monai.data.patch_cache import PatchCache
from dce_monai.metrics.results import read_predictions
from dce_monai.workflows.search_channels import (
    SearchSettings,
    add_cli_arguments,
    cell_name,
    cli_main,
    merge,
    parse_shard,
    parse_triplets,
    run_cells,
    run_search,
    search_patch_cache,
    triplet_name,
)

# The machinery tests run without N4 (the bundle's bias_correction, ~0.4 s per tiny lesion and image);
# test_search_cell_equals_bundle_run and the preprocessing tests keep the bundle's default (on).
FAST = {"k": 2, "max_epochs": 1, "image_size": 32, "patch_size": 16, "batch_size": 16, "progress": False, "bias_correction": False}
TRIPS = [("T2", "T1pre", "sub"), ("T1pre", "T1post3", "sub"), ("T1post1", "T1post2", "T1post4")]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from dce_monai.data.phantom import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("sc_cohort"), n_patients=8, seed=3, size="tiny", progress=False)


class _TinySelect(torch.nn.Module):
    """A 3-input CNN a hundred times cheaper than ResNet34, selecting its triplet like the select adapter."""

    def __init__(self, index, seed):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(index))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))

    def forward(self, x):
        return self.net(x.index_select(1, self.index))


def tiny_group(channels, triplets, seed):
    from dce_monai.networks.nets import Lockstep

    return Lockstep([_TinySelect([channels.index(c) for c in t], seed) for t in triplets])


@pytest.fixture(scope="module")
def full_search(cohort, tmp_path_factory):
    """All 35 triplets x 2 folds. The ranking, CI and merge logic is under test here, not the
    network, so a small CNN group stands in for the ResNet34 group (70 ResNet34 trainings take
    minutes on 2 cores); the tests below that compare paths use the real ResNet34."""
    out = tmp_path_factory.mktemp("sc_full")
    summary = run_search(cohort, out, group_size=7, network_factory=tiny_group, **FAST)
    return out, summary, merge(out, n_boot=200)


@pytest.fixture(scope="module")
def small_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("sc_single")
    run_search(cohort, out, triplets=TRIPS, group_size=1, **FAST)
    return out


def _preds(path):
    return sorted((r["model"], r["fold"], r["lesion_id"], r["label"], r["prob"]) for r in read_predictions(path))


# ----------------------------------------------------------------------------- the full search


def test_all_35_triplets_ranked_with_cis(full_search):
    out, summary, paths = full_search
    assert summary["cells_total"] == summary["cells_run"] == 70
    with open(paths["ranking_csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 35 and len({r["model"] for r in rows}) == 35
    aucs = [float(r["auc"]) for r in rows]
    assert aucs == sorted(aucs, reverse=True) and [int(r["rank"]) for r in rows] == list(range(1, 36))
    for r in rows:
        lo, auc, hi = float(r["auc_ci_low"]), float(r["auc"]), float(r["auc_ci_high"])
        assert 0.0 <= lo <= hi <= 1.0 and lo - 1e-9 <= auc <= hi + 1e-9
        for m in ("sensitivity", "specificity", "accuracy", "sensitivity_tuned", "specificity_tuned", "accuracy_tuned"):
            assert 0.0 <= float(r[m]) <= 1.0
        assert 0.0 <= float(r["delong_p_vs_best"]) <= 1.0
    assert float(rows[0]["delong_p_vs_best"]) == 1.0
    md = paths["ranking_md"].read_text()
    assert md.count("\n| ") == 36 and "AUC (95 % CI)" in md
    preds = read_predictions(paths["predictions"])
    n_les = int(rows[0]["n_lesions"])
    assert len(preds) == 35 * n_les and {p["experiment"] for p in preds} == {"channel_search"} and {p["split"] for p in preds} == {"test"}
    assert any(f.name.startswith("events.out.tfevents") for f in paths["tensorboard"].rglob("*"))
    cell = json.loads((out / "cells" / f"{cell_name(('T1pre', 'T1post3', 'sub'), 1)}.json").read_text())
    assert cell["complete"] and cell["model"] == "T1pre+T1post3+sub" and cell["fold"] == 1 and math.isfinite(cell["final_loss"])
    # a cell holds no split name (merge writes its lesions as split `test`), so cells of versions that
    # called the held-out fold `val` merge under today's name without being recomputed
    assert "split" not in cell and not [k for k in cell if k.startswith("val")] and all("split" not in r for r in cell["lesions"])


def test_metrics_recomputed_from_predictions(full_search):
    """The ranking's AUC/sensitivity at 0.5 follow from the predictions file."""
    from dce_monai.metrics.stats import binary_metrics

    _, _, paths = full_search
    with open(paths["ranking_csv"]) as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    preds = read_predictions(paths["predictions"])
    for model in ("T1pre+T1post3+sub", "T2+T1pre+T1post1"):
        ps = [p for p in preds if p["model"] == model]
        m = binary_metrics([p["label"] for p in ps], [p["prob"] for p in ps])
        assert math.isclose(m["auc"], float(rows[model]["auc"]), abs_tol=1e-9)
        assert math.isclose(m["sensitivity"], float(rows[model]["sensitivity"]), abs_tol=1e-9)
    from dce_monai.metrics.collapse import score_collapse

    for model, r in rows.items():  # the collapsed-folds column follows from the per-fold scores
        ps = [p for p in preds if p["model"] == model]
        n = sum(score_collapse([p["prob"] for p in ps if p["fold"] == f])["collapsed"] for f in sorted({p["fold"] for p in ps}))
        assert int(r["collapsed_folds"]) == n and bool(r["collapse"]) == bool(n)


# ----------------------------------------------------------------------------- shards, re-runs, determinism


def test_shards_then_merge_equal_a_single_run(cohort, small_run, tmp_path):
    for i in range(2):
        s = run_search(cohort, tmp_path, triplets=TRIPS, shard=f"{i}/2", **FAST)
        assert s["cells_in_shard"] == 3 and s["cells_run"] == 3
    a = merge(tmp_path, n_boot=50)
    b = merge(small_run, n_boot=50)
    assert _preds(a["predictions"]) == _preds(b["predictions"])
    assert a["ranking_csv"].read_text() == b["ranking_csv"].read_text()


def test_rerun_skips_finished_and_redoes_truncated_cells(cohort, small_run):
    cells = sorted((small_run / "cells").glob("*.json"))
    assert len(cells) == 6
    before = {c.name: (c.stat().st_mtime_ns, c.read_text()) for c in cells}
    s = run_search(cohort, small_run, triplets=TRIPS, **FAST)
    assert s["cells_run"] == 0 and s["cells_skipped"] == 6
    assert {c.name: c.stat().st_mtime_ns for c in cells} == {k: v[0] for k, v in before.items()}
    victim = cells[2]
    victim.write_text(before[victim.name][1][:200])  # a half-written cell
    s = run_search(cohort, small_run, triplets=TRIPS, **FAST)
    assert s["cells_run"] == 1
    redone = json.loads(victim.read_text())
    assert redone == {**json.loads(before[victim.name][1]), "seconds": redone["seconds"]}
    assert {c.name: c.stat().st_mtime_ns for c in cells if c != victim} == {k: v[0] for k, v in before.items() if k != victim.name}


def _cells(folder):
    return {c.name: json.loads(c.read_text()) for c in (folder / "cells").glob("*.json")}


def _same_cells(got, ref):
    assert got.keys() <= ref.keys() and got
    for name, c in got.items():
        assert c["lesions"] == ref[name]["lesions"] and c["final_loss"] == ref[name]["final_loss"], name


def test_lock_step_group_gives_the_same_cells(cohort, small_run, tmp_path):
    run_search(cohort, tmp_path, triplets=TRIPS, group_size=3, **FAST)
    _same_cells(_cells(tmp_path), _cells(small_run))


def test_workers_give_the_same_cells_as_serial_at_equal_threads(cohort, tmp_path):
    """Worker processes use cpu_count // workers threads; a serial run with as many threads matches exactly."""
    threads = max(1, (os.cpu_count() or 1) // 2)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_search(cohort, tmp_path / "serial", triplets=TRIPS[:2], **FAST)
    finally:
        torch.set_num_threads(old)
    run_search(cohort, tmp_path / "w", triplets=TRIPS[:2], workers=2, **FAST)
    _same_cells(_cells(tmp_path / "w"), _cells(tmp_path / "serial"))


def test_search_cell_equals_bundle_run(cohort, tmp_path):
    """One search cell (trained in a lock-step group, on a six-channel cache) predicts what the
    seed 1 bundle's train.json + evaluate.json give with the same settings, the bundle's defaults
    (N4 on) included: same patches, same batches, same augmentation, same initial weights, same
    model kept."""
    from dce_monai.workflows.bundle_utils import bundle_workflow

    trip = ("T1pre", "T1post3", "sub")
    search = tmp_path / "search"
    run_search(cohort, search, triplets=[trip, TRIPS[2]], group_size=2, **{k: v for k, v in FAST.items() if k != "bias_correction"})
    common = {"manifest": str(cohort), "folds": str(search / "folds.json"), "fold": 1, "channels": list(trip),
              "output_dir": str(tmp_path / "eval"), "ckpt_dir": str(tmp_path / "models"), "train_state_dir": str(tmp_path / "state"),
              "max_epochs": FAST["max_epochs"], "image_size": FAST["image_size"], "batch_size": FAST["batch_size"],
              "patch_size": [FAST["patch_size"]] * 2}
    wf = bundle_workflow("breast_dce_transfer_resnet34", ["train.json"], "train", **common)
    wf.run()
    wf.finalize()
    ev = bundle_workflow("breast_dce_transfer_resnet34", ["train.json", "evaluate.json"], "infer", **common)
    ev.run()
    ev.finalize()
    bundle = {r["lesion_id"]: r["prob"] for r in read_predictions(tmp_path / "eval" / "predictions.csv")}
    cell = json.loads((search / "cells" / f"{cell_name(trip, 1)}.json").read_text())
    assert json.loads((search / "run.json").read_text())["settings"]["bias_correction"] is True
    search = {r["lesion_id"]: r["prob"] for r in cell["lesions"]}
    assert search.keys() == bundle.keys() and len(search) >= 4
    assert search == bundle  # exact on CPU


@pytest.mark.parametrize("config, item", [("train.json", "preprocessing"), ("inference.json", "lesion_preprocessing")])
def test_every_triplet_preprocesses_as_the_cache_does(cohort, config, item):
    """The bundle's preprocessing runs for each of the 35 triplets (a triplet without ``sub`` or
    T1post1 does not read T1post1, so nothing may subtract it) and gives exactly the seven-channel
    cache's patches with the triplet's channels selected: the search trains what the bundle trains."""
    from monai.bundle import ConfigParser

    from dce_monai.data.manifest import load_manifest
    from dce_monai.sequences import SEQUENCES
    from dce_monai.sequences import triplets as all_triplets
    from dce_monai.workflows.bundle_utils import BUNDLES_DIR

    def preprocessing(channels):
        parser = ConfigParser()
        parser.read_config(str(BUNDLES_DIR / "breast_dce_transfer_resnet34" / "configs" / config))
        # N4 (~0.4 s per lesion and image) is checked with train.json's pipeline; inference.json's is the same step
        parser.update({"bundle_root": str(BUNDLES_DIR / "breast_dce_transfer_resnet34"), "manifest": str(cohort),
                       "channels": list(channels), "patch_size": [16, 16], "bias_correction": config == "train.json"})
        return parser.get_parsed_content(item)

    records = load_manifest(cohort).to_datalist(level="lesion")[:1]
    full = {r["lesion_id"]: preprocessing(SEQUENCES)(dict(r)) for r in records}
    assert sum(len(v) for v in full.values()) > 0
    index = {c: i for i, c in enumerate(SEQUENCES)}
    for trip in all_triplets():
        pre = preprocessing(trip)
        for r in records:
            got, want = pre(dict(r)), full[r["lesion_id"]]
            assert len(got) == len(want), (trip, r["lesion_id"])
            for g, w in zip(got, want):
                assert torch.equal(torch.as_tensor(g["image"]), torch.as_tensor(w["image"])[[index[c] for c in trip]]), (trip, r["lesion_id"])


def test_settings_defaults_are_the_bundle_defaults():
    from dce_monai.workflows.bundle_utils import BUNDLES_DIR

    cfg = json.loads((BUNDLES_DIR / "breast_dce_transfer_resnet34" / "configs" / "train.json").read_text())
    for key, value in SearchSettings().overrides().items():
        assert cfg[key] == value, key


# ----------------------------------------------------------------------------- CLI


def test_cli_shards_and_merge(cohort, tmp_path, capsys):
    p = argparse.ArgumentParser()
    add_cli_arguments(p)
    base = [str(cohort), "--out", str(tmp_path), "--k", "2", "--max-epochs", "1", "--image-size", "32", "--patch-size", "16",
            "--triplets", "T1pre,T1post3,sub;T2,T1pre,sub", "--no-progress", "--n-boot", "50", "--no-bias-correction"]
    assert cli_main(p.parse_args(base + ["--shard", "0/2"])) == 0
    assert not (tmp_path / "ranking.md").exists()
    assert cli_main(p.parse_args(base + ["--shard", "1/2"])) == 0
    assert cli_main(p.parse_args(base + ["--merge"])) == 0
    out = capsys.readouterr().out
    assert "T1pre, T1post3, sub" in out and (tmp_path / "ranking.csv").is_file()
    assert cli_main(p.parse_args(base)) == 0  # no shard: runs nothing new and merges
    assert "0 cell(s) run, 4 already finished" in capsys.readouterr().out


# ----------------------------------------------------------------------------- errors


def test_parse_triplets_and_shard():
    assert parse_triplets(None) == parse_triplets("all") and len(parse_triplets(None)) == 35
    assert parse_triplets("T1pre,T1post3,sub; T2,T1pre,sub") == [("T1pre", "T1post3", "sub"), ("T2", "T1pre", "sub")]
    assert triplet_name(("T1pre", "T1post3", "sub")) == "T1pre+T1post3+sub"
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None and parse_shard((0, 2)) == (0, 2)


@pytest.mark.parametrize(
    "text, match",
    [
        ("T1pre,T1post3", "exactly 3 channel names"),
        ("T1pre,T1pre,sub", "must be unique"),
        ("T1pre,T1post3,T1post9", r"channel\(s\) \['T1post9'\] not available"),
        ("T1pre,T1post3,sub;T1pre,T1post3,sub", "is given twice"),
        (";", "no triplet in"),
        ("T1pre,foo,sub", "unknown sequence name 'foo'"),
    ],
)
def test_parse_triplets_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_triplets(text)


@pytest.mark.parametrize("text, match", [("1-4", "shard must be 'i/n'"), ("4/4", "0 <= i < n"), ("-1/2", "0 <= i < n")])
def test_parse_shard_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_shard(text)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_epochs": 0}, "max_epochs must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ({"image_size": 8}, "image_size must be >= 16"),
        ({"learning_rate": 0.0}, "need learning_rate > 0"),
        ({"rotate_deg": 200.0}, r"rotate_deg must be in \[0, 180\]"),
        ({"input_range": (1.0, 1.0)}, "input_range must be"),
    ],
)
def test_settings_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SearchSettings(**kwargs)


def test_settings_missing_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained_weights not found"):
        SearchSettings(pretrained_weights=str(tmp_path / "none.pth"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"group_size": 0}, "group_size must be an integer >= 1"),
        ({"device": "tpu"}, "tpu"),
        ({"device": "cuda", "workers": 2}, "on CUDA use workers=1"),
        ({"shard": "2/2"}, "0 <= i < n"),
        ({"triplets": [("T1pre", "sub")]}, "exactly 3 channel names"),
    ],
)
def test_run_search_argument_errors(cohort, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_search(cohort, tmp_path, **{**FAST, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(cohort, tmp_path):
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        run_search(cohort, tmp_path, device="cuda", **FAST)


def test_out_dir_of_another_run_is_refused(cohort, small_run, tmp_path):
    with pytest.raises(ValueError, match="belongs to a run with other data or settings"):
        run_search(cohort, small_run, triplets=TRIPS, **{**FAST, "max_epochs": 2})
    with pytest.raises(ValueError, match="lists other triplets"):
        run_search(cohort, small_run, triplets=TRIPS[:2], **FAST)
    write_folds([["PH0000"], ["PH0001"]], tmp_path / "folds.json")
    with pytest.raises(ValueError, match="holds other folds"):
        run_search(cohort, tmp_path, triplets=TRIPS, **FAST)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"max_epochs": 2}, r"max_epochs: 1 -> 2"),
        ({"batch_size": 8}, r"batch_size: 16 -> 8"),
        ({"image_size": 48}, r"image_size: 32 -> 48"),
        ({"learning_rate": 1e-2}, r"learning_rate: 0.001 -> 0.01"),
        ({"momentum": 0.5}, r"momentum: 0.9 -> 0.5"),
        ({"rotate_deg": 10.0}, r"rotate_deg: 180.0 -> 10.0"),
        ({"flip": False}, r"flip: True -> False"),
        ({"bias_correction": True}, r"bias_correction: False -> True"),
        ({"patch_size": 12}, r"the patch cache \(cohort files, channels, patch size or preprocessing\) differs"),
        ({"seed": 5}, r"holds other folds|seed: 0 -> 5"),
    ],
)
def test_changed_setting_refused(cohort, small_run, change, match):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (small_run / "cells").iterdir())
    with pytest.raises(ValueError, match=match):
        run_search(cohort, small_run, triplets=TRIPS, **{**FAST, "group_size": 1, **change})
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (small_run / "cells").iterdir()) == before


def test_merge_errors(cohort, small_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="run.json not found"):
        merge(tmp_path)
    run_search(cohort, tmp_path, triplets=TRIPS, shard="0/3", **FAST)
    with pytest.raises(ValueError, match="4 of 6 cells are missing or half-written"):
        merge(tmp_path)
    cell = next((tmp_path / "cells").glob("*.json"))
    d = json.loads(cell.read_text())
    cell.write_text(json.dumps({**d, "fingerprint": "0000"}))
    with pytest.raises(ValueError, match="computed with other data or settings"):
        merge(tmp_path)


def test_run_cells_fold_errors(cohort, tmp_path):
    cache = search_patch_cache(cohort, tmp_path, ["T2", "T1pre", "sub"], 16, progress=False, bias_correction=False)
    st = SearchSettings(max_epochs=1, image_size=32, bias_correction=False)
    pids = sorted(set(cache.patient_ids))
    with pytest.raises(ValueError, match="fold 0: .* every fold needs both"):
        run_cells(cache, [TRIPS[0]], 0, write_folds([pids, []], tmp_path / "f1.json"), st)
    benign = sorted({p for p, y in zip(cache.patient_ids, cache.labels.tolist()) if y == 0} - {p for p, y in zip(cache.patient_ids, cache.labels.tolist()) if y == 1})
    rest = [p for p in pids if p not in benign]
    with pytest.raises(ValueError, match="training patients hold one class only"):
        run_cells(cache, [TRIPS[0]], 0, write_folds([rest, benign], tmp_path / "f2.json"), st)


def test_channels_from_the_exams_and_patients_left_out(cohort):
    """A patient with three post phases: no T1post4 among the candidates; asking for it leaves that patient out, listed."""
    from dce_monai.data.manifest import Manifest
    from dce_monai.sequences import triplets as all_triplets
    from dce_monai.workflows.search_channels import plan_channels

    data = json.loads(cohort.read_text())
    ex = data["patients"][0]["exam"]
    del ex["sequences"]["T1post4"], ex["acquisition_times_s"]["T1post4"]
    m = Manifest.from_dict(data, cohort.parent)
    kept, trips, left = plan_channels(m)
    assert trips == list(all_triplets(["T2", "T1pre", "T1post1", "T1post2", "T1post3", "sub"])) and len(trips) == 20 and not left
    kept, trips, left = plan_channels(m, [("T1pre", "T1post4", "sub"), ("T2", "T1pre", "sub")])
    assert left == [("PH0000", "lacks ['T1post4']")] and "PH0000" not in [p["patient_id"] for p in kept.patients]
    assert len(kept.patients) == len(m.patients) - 1
    for p in data["patients"]:
        del p["exam"]["sequences"]["T2"]
    no_t2 = Manifest.from_dict(data, cohort.parent)
    assert len(plan_channels(no_t2)[1]) == 10  # T1pre, T1post1..3, sub
    with pytest.raises(ValueError, match=r"no exam has every requested channel \['T2', 'T1pre', 'sub'\]; e.g. patient PH0000 lacks \['T2'\]"):
        plan_channels(no_t2, [("T2", "T1pre", "sub")])
    for p in data["patients"]:
        p["exam"]["sequences"] = {k: v for k, v in p["exam"]["sequences"].items() if k in ("T1pre", "T1post1")}
        p["exam"].pop("acquisition_times_s")
    assert plan_channels(Manifest.from_dict(data, cohort.parent))[1] == [("T1pre", "T1post1", "sub")]
    del data["patients"][1]["exam"]["sequences"]["T1post1"]
    with pytest.raises(ValueError, match=r"the exams share only \['T1pre'\] of the channels"):
        plan_channels(Manifest.from_dict(data, cohort.parent))


def test_diverged_training_is_reported(cohort, tmp_path):
    cache = search_patch_cache(cohort, tmp_path, ["T2", "T1pre", "sub"], 16, progress=False, bias_correction=False)
    bad = PatchCache(images=torch.full_like(cache.images, float("nan")), channel_names=cache.channel_names, labels=cache.labels,
                     lesion_ids=cache.lesion_ids, patient_ids=cache.patient_ids, slice_index=cache.slice_index)
    folds = write_folds(patient_folds(cache.lesion_table(), k=2, seed=0), tmp_path / "folds.json")
    with pytest.raises(ValueError, match=r"cell T2\+T1pre\+sub__fold0: the trained network gives NaN/Inf"):
        run_cells(bad, [TRIPS[0]], 0, folds, SearchSettings(max_epochs=1, image_size=32, bias_correction=False))


def test_invalid_cohort_refused_before_any_work(broken_cohort, tmp_path):
    from dce_monai.data.manifest import ManifestError

    manifest, bad = broken_cohort
    with pytest.raises(ManifestError, match=rf"{bad}.*cannot read NIfTI file .*T1post2"):
        run_search(manifest, tmp_path / "s", k=2, max_epochs=1, triplets=[("T1pre", "T1post3", "sub")], progress=False)
    assert not (tmp_path / "s" / "cache").exists()  # nothing was computed


def test_merge_renders_undefined_delong_with_its_reason(tmp_path):
    """Cells written by hand: one malignant lesion among five, so DeLong's variance is undefined."""
    trips = [("T2", "T1pre", "sub"), ("T1pre", "T1post3", "sub")]
    (tmp_path / "cells").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"triplets": trips, "k": 1, "fingerprint": "f0",
                                                   "settings": {"max_epochs": 1, "learning_rate": 1e-3, "batch_size": 4, "image_size": 32}}))
    labels = [1, 0, 0, 0, 0]
    for j, t in enumerate(trips):
        probs = [0.9 - 0.3 * j, 0.2, 0.4, 0.7, 0.1]
        lesions = [{"patient_id": f"P{i}", "lesion_id": f"P{i}-L1", "label": y, "prob": p} for i, (y, p) in enumerate(zip(labels, probs))]
        (tmp_path / "cells" / f"{cell_name(t, 0)}.json").write_text(json.dumps(
            {"complete": True, "fingerprint": "f0", "lesions": lesions, "train_threshold": 0.5, "metrics": {"auc": 0.5}}))
    paths = merge(tmp_path, n_boot=20, tensorboard=False)
    with open(paths["ranking_csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["T2+T1pre+sub", "T1pre+T1post3+sub"]  # AUC 1 then 3/4
    assert float(rows[0]["delong_p_vs_best"]) == 1.0 and math.isnan(float(rows[1]["delong_p_vs_best"]))
    md = paths["ranking_md"].read_text().splitlines()
    assert md[-1].endswith("| n/a (only one positive lesion) | 0 |") and md[-2].endswith("| 1 | 0 |")  # p, collapsed folds


def test_search_refuses_a_folder_in_use(cohort, tmp_path):
    import json as _json
    import os as _os
    import socket

    from dce_monai.workflows.search_channels import run_search

    (tmp_path / ".lock-all").write_text(_json.dumps({"pid": _os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(ValueError, match=r"in use by another search-channels run"):
        run_search(cohort, tmp_path, triplets=[("T1pre", "T1post1", "sub")], k=2, max_epochs=1, image_size=32, patch_size=16, progress=False)
    assert not (tmp_path / "cells").exists() or not list((tmp_path / "cells").iterdir())


def test_curves_leave_the_cells_unchanged(cohort, tmp_path):
    """Learning curves (per-epoch loss, diagnostic held-out AUC after each epoch) are recorded
    without changing a single prediction: same batches, same weights, same model kept."""
    run_search(cohort, tmp_path / "c", triplets=TRIPS[:2], group_size=2, curves=True, **{**FAST, "max_epochs": 2})
    run_search(cohort, tmp_path / "n", triplets=TRIPS[:2], group_size=2, **{**FAST, "max_epochs": 2})
    for t in TRIPS[:2]:
        for f in range(FAST["k"]):
            with_c = json.loads((tmp_path / "c" / "cells" / f"{cell_name(t, f)}.json").read_text())
            without = json.loads((tmp_path / "n" / "cells" / f"{cell_name(t, f)}.json").read_text())
            assert with_c["lesions"] == without["lesions"] and with_c["final_loss"] == without["final_loss"]
            cur = with_c.pop("curves")
            assert "curves" not in without
            assert len(cur["train_loss"]) == len(cur["held_out_auc"]) == 2
            assert all(math.isfinite(v) and v > 0 for v in cur["train_loss"])
            assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in cur["held_out_auc"])


def test_cells_without_curves_rerun_when_curves_are_asked(cohort, small_run, tmp_path):
    import shutil

    shutil.copytree(small_run, tmp_path / "s")
    summary = run_search(cohort, tmp_path / "s", triplets=TRIPS, group_size=1, curves=True, **FAST)
    assert summary["cells_run"] == summary["cells_total"] == 6
    again = run_search(cohort, tmp_path / "s", triplets=TRIPS, group_size=1, curves=True, **FAST)
    assert again["cells_run"] == 0
    cell = json.loads((tmp_path / "s" / "cells" / f"{cell_name(TRIPS[0], 0)}.json").read_text())
    assert len(cell["curves"]["train_loss"]) == 1
