"""The whole chain on a cohort in MAMA-MIA's published layout, as a new user meets it.

Three phantom "sites" with 3, 4 and 5 post-contrast phases at different times, 2 mm rigid
motion between phases, no T2, no breast mask, no label map and a few blank HER2 cells are
written in the MAMA-MIA layout (clinical ``.xlsx``), then: import with ``--target her2``,
validate, folds, both bundles (train, evaluate, inference), compare-masking, the channel
search in two shards plus merge, the kinetic baseline and the report, with no file edited
by hand. A ``generic`` import of the same images runs the shorter chain.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dce_monai.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mama_root(tmp_path_factory):
    from dce_monai.data.layouts import export_mama_mia
    from dce_monai.data.phantom import PhantomConfig, generate_cohort

    tmp = tmp_path_factory.mktemp("real")
    sites = {"SITEA": (3, 60.0, 11), "SITEB": (4, 90.0, 12), "SITEC": (5, 120.0, 13)}
    cohorts = {
        name: generate_cohort(tmp / name, 5, seed=seed, progress=False,
                              config=PhantomConfig.tiny(n_post=n, post_interval_s=iv, motion_mm=2.0, malignant_fraction=0.9, her2_prevalence=0.5))
        for name, (n, iv, seed) in sites.items()
    }
    return export_mama_mia(cohorts, tmp / "MAMA-MIA", clinical_format="xlsx", missing_target={"SITEA_PH0001", "SITEB_PH0002"})


def _bundle(name: str, configs: list[str], wtype: str, **over: object) -> dict:
    from monai.bundle import ConfigWorkflow

    cdir = ROOT / "bundles" / name / "configs"
    files = [str(cdir / c) for c in configs]
    wf = ConfigWorkflow(config_file=files if len(files) > 1 else files[0], workflow_type=wtype, meta_file=str(cdir / "metadata.json"),
                        logging_file=str(cdir / "logging.conf"), bundle_root=str(ROOT / "bundles" / name), **over)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return over


def test_mama_mia_chain_with_her2_target(mama_root, tmp_path, capsys):
    manifest = mama_root / "manifest.json"
    assert main(["import", "mama-mia", str(mama_root), "--target", "her2", "--out", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "skipped SITEA_PH0001: target 'her2' is missing" in out and "skipped SITEB_PH0002: target 'her2' is missing" in out
    data = json.loads(manifest.read_text())
    assert data["dataset"]["target"] == "her2" and all("T2" not in p["exam"]["sequences"] and "breast_mask" not in p["exam"] for p in data["patients"])
    assert {len(p["exam"]["sequences"]) - 1 for p in data["patients"]} == {3, 4, 5}

    assert main(["validate", str(manifest)]) == 0
    folds = tmp_path / "folds.json"
    assert main(["folds", str(manifest), "--k", "2", "--out", str(folds)]) == 0
    assert json.loads(folds.read_text())["label"] == "her2"

    # seed 1 bundle: train, evaluate, inference (channels present in every exam)
    s1 = {"manifest": str(manifest), "folds": str(folds), "fold": 0, "output_dir": str(tmp_path / "s1"), "ckpt_dir": str(tmp_path / "s1m"),
          "max_epochs": 1, "image_size": 32, "batch_size": 4, "channels": ["T1pre", "T1post3", "sub"]}
    _bundle("breast_dce_transfer_resnet34", ["train.json"], "train", **s1)
    _bundle("breast_dce_transfer_resnet34", ["train.json", "evaluate.json"], "infer", **s1)
    metrics = json.loads((tmp_path / "s1" / "metrics.json").read_text())
    assert 0.0 <= metrics["metrics"]["auc"] <= 1.0
    _bundle("breast_dce_transfer_resnet34", ["inference.json"], "infer", **{**s1, "folds": None, "predictions_file": str(tmp_path / "s1_all.csv")})
    assert len(list(csv.DictReader(open(tmp_path / "s1_all.csv")))) == len(data["patients"])  # one lesion per patient

    # seed 2 bundle: breast mask derived, phases registered (the manifest says so)
    s2 = {"manifest": str(manifest), "folds": str(folds), "fold": 0, "output_dir": str(tmp_path / "s2"), "ckpt_dir": str(tmp_path / "s2m"),
          "max_epochs": 1, "spatial_size": [16, 16, 8], "batch_size": 2, "vgg_channels": [4, 8], "variant": "mask_guided"}
    _bundle("breast_dce_maskguided_vgg3d", ["train.json"], "train", **s2)
    _bundle("breast_dce_maskguided_vgg3d", ["train.json", "inference.json", "evaluate.json"], "infer", **s2)
    _bundle("breast_dce_maskguided_vgg3d", ["train.json", "inference.json"], "infer", **{**s2, "folds": None})

    runs = tmp_path / "runs"
    assert main(["compare-masking", str(manifest), "--out", str(runs / "masking"), "--folds", str(folds), "--max-epochs", "1",
                 "--spatial-size", "16", "16", "8", "--batch-size", "2", "--vgg-channels", "4", "8", "--variants", "mask_guided"]) == 0
    search = ["search-channels", str(manifest), "--out", str(runs / "search"), "--k", "2", "--max-epochs", "1", "--image-size", "32",
              "--patch-size", "16", "--batch-size", "8", "--no-progress", "--n-boot", "20", "--triplets", "T1pre,T1post3,sub;T1post1,T1post4,sub"]
    assert main([*search, "--shard", "0/2"]) == 0
    assert "patient SITEA_PH0000 left out: lacks ['T1post4']" in capsys.readouterr().out  # 3-phase exams and T1post4
    assert main([*search, "--shard", "1/2"]) == 0
    assert main([*search, "--merge"]) == 0
    run = json.loads((runs / "search" / "run.json").read_text())
    assert run["target"] == "her2" and run["channels"] == ["T1pre", "T1post1", "T1post3", "T1post4", "sub"]
    assert sorted(p for p, _ in run["left_out_patients"]) == sorted(p["patient_id"] for p in data["patients"] if "T1post4" not in p["exam"]["sequences"])
    assert (runs / "search" / "ranking.md").is_file()
    assert main(["baseline-kinetics", str(manifest), "--out", str(runs / "kinetics"), "--folds", str(folds), "--n-boot", "20"]) == 0
    assert main(["report", str(runs), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "her2" in text


def test_generic_import_chain(mama_root, tmp_path, capsys):
    """The same images described by a mapping CSV and a clinical CSV: import generic, validate, folds, seed 1 bundle, kinetics."""
    import openpyxl

    rows = ["patient_id,sequence,path,time_s,lesion_id,label_value,malignant"]
    for d in sorted((mama_root / "images").iterdir()):
        files = sorted(d.glob("*.nii.gz"))
        for k, f in enumerate(files):
            rows.append(f"{d.name},{'T1pre' if k == 0 else f'T1post{k}'},{f.relative_to(mama_root)},,,,")
        rows.append(f"{d.name},lesion,segmentations/expert/{d.name.lower()}.nii.gz,,,,1")
    mapping = mama_root / "mapping.csv"
    mapping.write_text("\n".join(rows) + "\n")
    ws = openpyxl.load_workbook(mama_root / "clinical_and_imaging_info.xlsx")["dataset_info"]
    table = [[c.value for c in r] for r in ws.iter_rows()]
    i, j = table[0].index("patient_id"), table[0].index("her2")
    clinical = mama_root / "her2.csv"
    clinical.write_text("patient_id,her2\n" + "".join(f"{r[i]},{'' if r[j] is None else r[j]}\n" for r in table[1:]))
    manifest = tmp_path / "generic.json"
    assert main(["import", "generic", str(mapping), "--target", "her2", "--clinical", str(clinical), "--out", str(manifest)]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert main(["validate", str(manifest)]) == 0
    folds = tmp_path / "folds.json"
    assert main(["folds", str(manifest), "--k", "2", "--out", str(folds)]) == 0
    _bundle("breast_dce_transfer_resnet34", ["train.json"], "train", manifest=str(manifest), folds=str(folds), fold=1, output_dir=str(tmp_path / "s1"),
            ckpt_dir=str(tmp_path / "s1m"), max_epochs=1, image_size=32, batch_size=4)
    assert (tmp_path / "s1m" / "model.pt").is_file()
    assert main(["baseline-kinetics", str(manifest), "--out", str(tmp_path / "kin"), "--folds", str(folds), "--n-boot", "20"]) == 0
