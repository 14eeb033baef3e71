"""Both bundles through the checks a MONAI Model Zoo reviewer runs, offline.

What the zoo's CI does (``ci/verify_bundle.py``, ``ci/get_bundle_requirements.py``,
``ci/unit_tests``) is redone here with MONAI's own bundle functions and no network:

- ``verify_metadata`` against a local copy of the metadata schema the bundles declare
  (``tests/bundles/zoo/meta_schema_20240725.json``: the required fields and types of
  ``meta_schema_20240725``; ``verify_metadata`` skips the download when the file exists);
- ``verify_net_in_out`` and the TorchScript export (``ckpt_export``) with ``inference.json`` alone;
- the requirement lines the zoo builds from the metadata are valid pins, the same in both
  bundles and inside ``setup.cfg``'s ranges;
- the ``large_files.yml`` form fetches user-supplied weights (a ``file://`` URL here) and checks
  their hash, as the zoo's ``download_large_files`` does;
- a zoo-style unit test per bundle: train, then ``['train.json', 'evaluate.json']`` as a train-type
  workflow, then ``['train.json', 'inference.json']`` and ``inference.json`` alone, on the tiny phantom.
"""

from __future__ import annotations

import configparser
import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parent / "zoo" / "meta_schema_20240725.json"
NAMES = ["breast_dce_transfer_resnet34", "breast_dce_maskguided_vgg3d"]
# tiny sizes through overrides (the zoo's unit tests shrink spatial sizes the same way)
TINY = {
    "breast_dce_transfer_resnet34": {"image_size": 32, "batch_size": 4},
    "breast_dce_maskguided_vgg3d": {"spatial_size": [32, 32, 16], "batch_size": 2, "vgg_channels": [4, 8]},
}
README_SECTIONS = ["Model Overview", "Data", "Training configuration", "Input", "Output", "Performance",
                   "MONAI Bundle Commands", "References", "License"]


def _configs(name: str) -> Path:
    return ROOT / "bundles" / name / "configs"


def _meta(name: str) -> dict:
    return json.loads((_configs(name) / "metadata.json").read_text())


# ---- metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_verify_metadata_against_the_zoo_schema(name: str, tmp_path: Path) -> None:
    meta = _meta(name)
    assert meta["schema"].endswith("/meta_schema_20240725.json")
    local = tmp_path / "schema.json"
    shutil.copyfile(SCHEMA, local)  # present: verify_metadata does not download
    verify_metadata(meta_file=str(_configs(name) / "metadata.json"), filepath=str(local))
    # the schema is enforced: the field the 20220324-era metadata lacked is required
    broken = {k: v for k, v in meta.items() if k != "required_packages_version"}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="'required_packages_version' is a required property"):
        verify_metadata(meta_file=str(tmp_path / "broken.json"), filepath=str(local))
    wrong_type = copy.deepcopy(meta)
    wrong_type["network_data_format"]["inputs"]["image"]["num_channels"] = "three"
    (tmp_path / "wrong.json").write_text(json.dumps(wrong_type))
    with pytest.raises(ValueError, match="'three' is not of type 'integer'"):
        verify_metadata(meta_file=str(tmp_path / "wrong.json"), filepath=str(local))


@pytest.mark.parametrize("name", NAMES)
def test_metadata_content_is_specific(name: str) -> None:
    meta = _meta(name)
    train = json.loads((_configs(name) / "train.json").read_text())
    assert meta["name"] != name and "Breast DCE-MRI" in meta["name"]  # a display name, not the folder
    assert meta["version"] in meta["changelog"]
    image = meta["network_data_format"]["inputs"]["image"]
    assert [image["channel_def"][str(i)] for i in range(image["num_channels"])] == train["channels"]
    assert len(image["value_range"]) == 2 and image["value_range"][0] < image["value_range"][1]
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert pred["type"] == "logits" and pred["num_channels"] == 2 and pred["spatial_shape"] == []
    assert len(pred["value_range"]) == 2
    assert meta["network_data_format"]["post_processed_outputs"]["prob"]["value_range"] == [0, 1]
    metrics = meta["eval_metrics"]
    assert metrics and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics.values()), metrics
    assert all("synthetic" in k for k in metrics), metrics  # phantom numbers say so in their name
    assert "synthetic" in meta["data_source"] and "pip install ." in meta["description"]


def _setup_cfg_requirements() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    from packaging.requirements import Requirement

    reqs = [Requirement(line) for line in cfg["options"]["install_requires"].split("\n") if line.strip()]
    return {r.name.lower(): str(r.specifier) for r in reqs} | {cfg["metadata"]["name"].lower(): "==" + cfg["metadata"]["version"]}


def test_package_pins_valid_shared_and_within_setup_cfg() -> None:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    allowed = _setup_cfg_requirements()
    metas = [_meta(n) for n in NAMES]
    assert metas[0]["required_packages_version"] == metas[1]["required_packages_version"]
    for key in ("monai_version", "pytorch_version", "numpy_version"):
        assert metas[0][key] == metas[1][key], key
    m = metas[0]
    # the lines ci/get_bundle_requirements.py writes
    lines = [f"monai=={m['monai_version']}", f"torch=={m['pytorch_version']}", f"numpy=={m['numpy_version']}"]
    lines += [f"{k}=={v}" for k, v in m["required_packages_version"].items()]
    for line in lines:
        req = Requirement(line)  # raises on 'tensorboard==' and the like
        version = str(req.specifier).removeprefix("==")
        assert version and req.name.lower() in allowed, line
        assert SpecifierSet(allowed[req.name.lower()]).contains(version), (line, allowed[req.name.lower()])
    assert m["required_packages_version"]["dce_monai"] == allowed["dce_monai"].removeprefix("==")


# ---- network checks with inference.json alone ----------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_verify_net_in_out_with_inference_json(name: str) -> None:
    verify_net_in_out(net_id="network_def", meta_file=str(_configs(name) / "metadata.json"),
                      config_file=str(_configs(name) / "inference.json"), bundle_root=str(ROOT / "bundles" / name),
                      device="cpu")


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_export_with_inference_json(name: str, tmp_path: Path) -> None:
    """The zoo's ``verify_torchscript``: weights of ``network_def`` (made here, as the zoo's
    ``_produce_fake_weights`` does) exported with ``inference.json``, scripted, then loaded."""
    configs = _configs(name)
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    parser.read_meta(str(configs / "metadata.json"))
    parser.update({"bundle_root": str(tmp_path), **TINY[name]})
    net = parser.get_parsed_content("network_def").eval()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
                meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
                bundle_root=str(tmp_path), **TINY[name])
    ts = torch.jit.load(str(tmp_path / "model.ts"))
    shape = (2, 3, 32, 32) if name.endswith("resnet34") else (2, 1, 32, 32, 16)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ts(x), net(x), rtol=1e-4, atol=1e-5)
    extra = {"metadata.json": ""}
    torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)  # ckpt_export embeds the metadata
    assert json.loads(extra["metadata.json"])["version"] == _meta(name)["version"]


@pytest.mark.parametrize("name", NAMES)
def test_inference_json_copies_the_training_preprocessing(name: str) -> None:
    """``inference.json`` stands alone, so it repeats train.json's deterministic preprocessing;
    a change to one that is not made to the other fails here."""
    train = json.loads((_configs(name) / "train.json").read_text())
    inf = json.loads((_configs(name) / "inference.json").read_text())
    # seed 1 names the per-lesion part `lesion_preprocessing` in inference.json; resizing is the
    # evaluation `prepare_batch` of both
    shared = {"lesion_preprocessing": "preprocessing", "prepare_batch": "prepare_batch", "patch_size": "patch_size",
              "image_size": "image_size", "input_range": "input_range"} if name.endswith("resnet34") else \
        {k: k for k in ("preprocessing", "masks", "context", "crop", "finish", "enhancement_threshold", "spatial_size",
                        "bbox_margin_mm", "field_of_view", "vgg_channels", "variant", "variants")}
    shared |= {k: k for k in ("network_def", "channels", "load_keys", "scale_keys", "register_phases")}
    for key, train_key in shared.items():
        a, b = train[train_key], inf[key]
        if key == "network_def" and isinstance(a, dict):  # training alone may load ImageNet weights and seeds the init
            a, b = ({k: v for k, v in d.items() if k not in ("pretrained_weights", "init_seed")} for d in (a, b))
        assert a == b, key


# ---- directory, weights form, README --------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bundle_directory_and_large_files_form(name: str, tmp_path: Path) -> None:
    from monai.apps.utils import download_url

    bundle = ROOT / "bundles" / name
    for f in ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/logging.conf", "large_files.yml"):
        assert (bundle / f).is_file(), f
    entries = yaml.safe_load((bundle / "large_files.yml").read_text())["large_files"]
    assert {e["path"] for e in entries} == {"models/model.pt", "models/model.ts"}
    assert all({"path", "url", "hash_val", "hash_type"} <= set(e) for e in entries)
    # a user fills in the form with the URL (here a local file) and hash of their weights;
    # the zoo's download_large_files then fetches and checks them
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"weights")
    filled = [{**e, "url": weights.as_uri(), "hash_val": hashlib.sha256(b"weights").hexdigest(), "hash_type": "sha256"}
              for e in entries if e["path"] == "models/model.pt"]
    for e in filled:
        download_url(url=e["url"], filepath=str(tmp_path / "bundle" / e["path"]), hash_val=e["hash_val"], hash_type=e["hash_type"])
    assert (tmp_path / "bundle" / "models" / "model.pt").read_bytes() == b"weights"
    with pytest.raises(ValueError, match="sha256 hash check of downloaded file failed"):  # monai HashCheckError
        download_url(url=weights.as_uri(), filepath=str(tmp_path / "other.pt"), hash_val="0" * 64, hash_type="sha256")


@pytest.mark.parametrize("name", NAMES)
def test_readme_has_the_zoo_sections(name: str) -> None:
    text = (ROOT / "bundles" / name / "docs" / "README.md").read_text()
    heads = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    for section in README_SECTIONS:
        assert any(h.startswith(section) for h in heads), section
    metrics = _meta(name)["eval_metrics"]
    for value in metrics.values():
        assert f"{value:.3f}" in text  # the README's performance table shows the metadata's numbers


# ---- zoo-style unit test: train, evaluate, inference with overrides ---------------------------


def _check_workflow(wf: ConfigWorkflow) -> None:
    """``ci/unit_tests/utils.check_workflow``: initialise, no missing property, run, finalise."""
    wf.initialize()
    assert wf.check_properties() in (None, [])
    wf.run()
    wf.finalize()


@pytest.mark.slow  # seed 1: 25-70 s on the shared 2-core machine (ResNet34 on CPU), seed 2: 15-35 s
@pytest.mark.parametrize("name", NAMES)
def test_zoo_unit_test_train_evaluate_infer(name: str, bundle_cohort: dict, tmp_path: Path) -> None:
    from dce_monai.metrics.results import read_predictions

    configs = _configs(name)
    common = {"bundle_root": str(tmp_path), "manifest": str(bundle_cohort["manifest"]), "folds": str(bundle_cohort["folds"]),
              "fold": 0, "num_workers": 0, "validate_data": False, **TINY[name]}
    files = {"meta_file": str(configs / "metadata.json"), "logging_file": str(configs / "logging.conf")}
    train, evaluate, inference = (str(configs / f) for f in ("train.json", "evaluate.json", "inference.json"))
    _check_workflow(ConfigWorkflow(workflow_type="train", config_file=train, max_epochs=1, **files, **common))
    assert (tmp_path / "models" / "model.pt").is_file()
    # evaluate.json overrides train.json: a train-type workflow, as the zoo's unit tests run it
    _check_workflow(ConfigWorkflow(workflow_type="train", config_file=[train, evaluate], **files, **common))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0.0 <= metrics["metrics"]["auc"] <= 1.0
    held = read_predictions(tmp_path / "eval" / "predictions.csv")
    assert held and {(r["split"], r["fold"]) for r in held} == {("test", 0)}
    # inference: layered on train.json and standalone give the same table
    tables = []
    for i, cfg in enumerate(([train, inference], inference)):
        out = tmp_path / f"inf{i}"
        _check_workflow(ConfigWorkflow(workflow_type="infer", config_file=cfg, output_dir=str(out),
                                       **files, **{**common, "folds": None}))
        tables.append(read_predictions(out / "predictions.csv"))
    assert tables[0] == tables[1] and {(r["split"], r["fold"]) for r in tables[0]} == {("inference", -1)}


@pytest.mark.parametrize("name", NAMES)
def test_multi_gpu_validation_is_sharded(name: str) -> None:
    """DDP validation: each rank gets a disjoint share (no padding, no shuffling); the metrics
    gather across ranks (``tests/handlers/test_distributed.py``); the run itself is the bundle
    tests' ``test_multi_gpu_config_with_two_gloo_processes``."""
    parser = ConfigParser()
    parser.read_config([str(_configs(name) / "train.json"), str(_configs(name) / "multi_gpu_train.json")])
    sampler = parser.get("validate#sampler")
    assert parser.get("validate#dataloader#sampler") == "@validate#sampler"
    assert sampler["_target_"] == "DistributedSampler" and sampler["dataset"] == "@validate#dataset"
    assert sampler["even_divisible"] is False and sampler["shuffle"] is False
    assert parser.get("train#sampler")["even_divisible"] is True
