"""Numbers you can trust from the bundles: evaluation leaves the model as it found it, and a
resumed training run (by raising ``max_epochs``, after a SIGKILL mid-epoch, or from the older
checkpoint when the newest is damaged) ends bit-identical to an uninterrupted one on CPU.

Every run uses the real bundle configs (random augmentation on: the seed 2 bundle's
``RandAugment34d``, the seed 1 bundle's random rotation and flips; shuffled loaders; dropout)
on the tiny phantom cohort of ``tests/bundles/conftest.py``, with one torch thread.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from monai.bundle import ConfigWorkflow

ROOT = Path(__file__).resolve().parents[2]
MG = ROOT / "bundles" / "breast_dce_maskguided_vgg3d"
TR = ROOT / "bundles" / "breast_dce_transfer_resnet34"
TINY = {
    # validation on the held-out fold only to exercise the evaluator's and the best-model saver's
    # state in the checkpoints (the bundles' default validates nothing and keeps the last epoch)
    MG: {"spatial_size": [32, 32, 16], "batch_size": 2, "vgg_channels": [4, 8], "num_workers": 0, "val_split": "test"},
    TR: {"image_size": 32, "batch_size": 4, "num_workers": 0, "val_split": "test"},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Bit-identical CPU results need the same thread count in every run (and subprocess)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _overrides(bundle: Path, root: Path, cohort: dict, **over: Any) -> dict[str, Any]:
    return {"bundle_root": str(root), "manifest": str(cohort["manifest"]), "folds": str(cohort["folds"]), "fold": 0,
            **TINY[bundle], **over}


def _workflow(bundle: Path, files: list[str], root: Path, cohort: dict, **over: Any) -> ConfigWorkflow:
    cfg = [str(bundle / "configs" / f) for f in files]
    wf = ConfigWorkflow(config_file=cfg if len(cfg) > 1 else cfg[0], meta_file=str(bundle / "configs" / "metadata.json"),
                        logging_file=str(bundle / "configs" / "logging.conf"),
                        workflow_type="train" if files == ["train.json"] else "infer", **_overrides(bundle, root, cohort, **over))
    wf.initialize()
    return wf


def _train(bundle: Path, root: Path, cohort: dict, max_epochs: int) -> dict[str, Any]:
    """Run the bundle's train.json to ``max_epochs`` in ``root``; return what a user gets out."""
    wf = _workflow(bundle, ["train.json"], root, cohort, max_epochs=max_epochs)
    wf.run()
    resume = wf.parser.get_parsed_content("train#resume_handler")
    ev = wf.parser.get_parsed_content("validate#evaluator")
    out = {"loaded_from": resume.loaded_from, "skipped": list(resume.skipped), "metrics": dict(ev.state.metrics)}
    wf.finalize()
    return out


def _final(root: Path, max_epochs: int) -> dict[str, Any]:
    """The last training checkpoint (every state a continuation needs) and the best model."""
    state = torch.load(root / "eval" / "train_state" / f"checkpoint_epoch={max_epochs}.pt", weights_only=True)
    return {"checkpoint": state, "model.pt": torch.load(root / "models" / "model.pt", weights_only=True)}


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    """Bitwise equality of nested checkpoint contents (tensors, numbers, lists, dicts)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def straight(bundle_cohort: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Seed 2 bundle, 3 epochs uninterrupted: the reference every resumed run must equal."""
    root = tmp_path_factory.mktemp("mg_straight")
    run = _train(MG, root, bundle_cohort, 3)
    assert run["loaded_from"] is None
    return {"root": root, "run": run, **_final(root, 3)}


def test_straight_checkpoint_holds_every_state(straight: dict) -> None:
    ckpt = straight["checkpoint"]
    assert set(ckpt) == {"network", "optimizer", "trainer", "evaluator", "best_model_saver", "random_states"}
    assert {"best_metric", "best_metric_epoch"} <= set(ckpt["evaluator"])
    # the best-model saver's record: (score, name) of the model in model.pt, i.e. the best metric
    assert [p for p, _ in ckpt["best_model_saver"]["_saved"]] == [ckpt["evaluator"]["best_metric"]]
    rng = ckpt["random_states"]
    assert {"python", "numpy", "torch", "objects"} <= set(rng)
    # the augmentation's own RandomState (inside the train loader's dataset) is in the checkpoint
    assert "train.dataset.transform.transforms[0].R" in rng["objects"], sorted(rng["objects"])
    assert sorted(p.name for p in (straight["root"] / "eval" / "train_state").iterdir()) == [
        "checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"]


def test_resume_by_raising_max_epochs_is_exact(straight: dict, bundle_cohort: dict, tmp_path: Path) -> None:
    """2 epochs, then the same command with max_epochs=3: identical weights, optimizer, metrics,
    best-model record, random states and best model as 3 epochs straight."""
    first = _train(MG, tmp_path, bundle_cohort, 2)
    assert first["loaded_from"] is None
    second = _train(MG, tmp_path, bundle_cohort, 3)
    assert second["loaded_from"] is not None and second["loaded_from"].name == "checkpoint_epoch=2.pt"
    assert second["metrics"] == straight["run"]["metrics"]
    resumed = _final(tmp_path, 3)
    _assert_same(resumed["checkpoint"], straight["checkpoint"], "checkpoint")
    _assert_same(resumed["model.pt"], straight["model.pt"], "model.pt")


def test_unreadable_newest_checkpoint_falls_back_to_the_older(straight: dict, bundle_cohort: dict, tmp_path: Path) -> None:
    """The newest checkpoint truncated (disk full, copy cut short): resume names it, loads the
    previous one, replays the epoch, and still ends equal to the straight run."""
    _train(MG, tmp_path, bundle_cohort, 2)
    state = tmp_path / "eval" / "train_state"
    newest = state / "checkpoint_epoch=2.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    (state / ".checkpoint_epoch=3.pt.999999.tmp").write_bytes(b"half-written by a killed save")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("dce_monai.handlers.checkpoint")  # the bundle's logging.conf replaces root handlers
    log.addHandler(handler)
    try:
        run = _train(MG, tmp_path, bundle_cohort, 3)
    finally:
        log.removeHandler(handler)
    assert run["loaded_from"].name == "checkpoint_epoch=1.pt" and run["skipped"] == [newest]
    assert any(str(newest) in r.getMessage() and "falling back to checkpoint_epoch=1.pt" in r.getMessage()
               for r in records), [r.getMessage() for r in records]
    assert not list(state.glob("*.tmp"))
    assert run["metrics"] == straight["run"]["metrics"]
    _assert_same(_final(tmp_path, 3)["checkpoint"], straight["checkpoint"], "checkpoint")


_KILL_DRIVER = textwrap.dedent(
    """
    # Runs the bundle as `python -m monai.bundle run` does, and SIGKILLs itself after
    # iteration `kill_at` (mid-epoch): nothing is flushed or cleaned up, as with `kill -9`.
    # The kill handler is attached where the bundle's `run` attaches the checkpoint saver, so
    # the config's objects are built in the same order as in the command-line run (building
    # the trainer first would draw the network's initial weights at another point).
    import json, os, signal, sys
    import torch
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow
    from dce_monai.handlers.checkpoint import AtomicCheckpointSaver

    kw, kill_at = json.loads(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    attach = AtomicCheckpointSaver.attach

    def attach_and_arm(self, engine):
        attach(self, engine)
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=kill_at), lambda e: os.kill(os.getpid(), signal.SIGKILL))

    AtomicCheckpointSaver.attach = attach_and_arm
    wf = ConfigWorkflow(**kw)
    wf.initialize()
    wf.run()
    """
)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_exact(straight: dict, bundle_cohort: dict, tmp_path: Path) -> None:
    """SIGKILL in the middle of epoch 2 (checkpoint of epoch 1 on disk, the optimizer already
    stepped in epoch 2), then ``python -m monai.bundle run`` with the same arguments: the run
    replays epoch 2 from the restored random states and ends equal to the straight run."""
    configs = MG / "configs"
    over = _overrides(MG, tmp_path, bundle_cohort, max_epochs=3)
    epoch_length = 3  # 7 training lesions of fold 0, batch 2, drop_last
    kw = {"config_file": str(configs / "train.json"), "meta_file": str(configs / "metadata.json"),
          "logging_file": str(configs / "logging.conf"), "workflow_type": "train", **over}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = tmp_path / "kill_driver.py"
    driver.write_text(_KILL_DRIVER)
    killed = subprocess.run([sys.executable, str(driver), json.dumps(kw), str(epoch_length + 2)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state = tmp_path / "eval" / "train_state"
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt"]
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", kw["config_file"], "--meta_file", kw["meta_file"],
            "--logging_file", kw["logging_file"]]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr and "checkpoint_epoch=1.pt" in resumed.stdout + resumed.stderr
    final = _final(tmp_path, 3)
    _assert_same(final["checkpoint"], straight["checkpoint"], "checkpoint")
    _assert_same(final["model.pt"], straight["model.pt"], "model.pt")


def test_evaluation_leaves_the_trained_model_unchanged(straight: dict, bundle_cohort: dict, tmp_path: Path) -> None:
    """Validating a trained seed 2 model twice (the evaluator used during training, network in
    training mode as the trainer leaves it, and evaluate.json) gives identical metrics, and every
    parameter and buffer (BatchNorm running statistics included) stays as it was."""
    trained = torch.load(straight["root"] / "models" / "model.pt", weights_only=True)
    wf = _workflow(MG, ["train.json"], straight["root"], bundle_cohort, ckpt_dir=str(tmp_path / "models"),
                   output_dir=str(tmp_path / "eval"))
    net = wf.parser.get_parsed_content("network")
    net.load_state_dict(trained)
    net.train()
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    runs = []
    for epoch in (1, 2):
        evaluator.run(epoch)
        runs.append(dict(evaluator.state.metrics))
        assert net.training, "the evaluator must give the network back in the mode it found it"
        _assert_same(net.state_dict(), trained, f"network after validation {epoch}")
    wf.finalize()
    assert runs[0] == runs[1] and "val_attention_in_mask" in runs[0]

    ev_wf = _workflow(MG, ["train.json", "inference.json", "evaluate.json"], straight["root"], bundle_cohort,
                      output_dir=str(tmp_path / "evaluate"))
    ev_net = ev_wf.parser.get_parsed_content("network")
    metrics = []
    for _ in range(2):
        ev_wf.run()
        metrics.append(json.loads((tmp_path / "evaluate" / "metrics.json").read_text())["metrics"])
        _assert_same(ev_net.state_dict(), trained, "network after evaluate.json")
    ev_wf.finalize()
    assert metrics[0] == metrics[1]
    # the same numbers as the validation during training, which ran on the same weights
    assert metrics[0]["auc"] == runs[0]["val_auc"]
    assert metrics[0]["attention_in_mask"] == runs[0]["val_attention_in_mask"]


def test_seed1_bundle_resume_is_exact(bundle_cohort: dict, tmp_path: Path) -> None:
    """The seed 1 bundle (SGD + StepLR, random rotation/flips) wires the same handlers: 1 epoch
    then max_epochs=2 equals 2 epochs straight, lr scheduler included."""
    a, b = tmp_path / "straight", tmp_path / "resumed"
    straight_run = _train(TR, a, bundle_cohort, 2)
    _train(TR, b, bundle_cohort, 1)
    resumed_run = _train(TR, b, bundle_cohort, 2)
    assert resumed_run["loaded_from"].name == "checkpoint_epoch=1.pt"
    assert resumed_run["metrics"] == straight_run["metrics"]
    fa, fb = _final(a, 2), _final(b, 2)
    assert "lr_scheduler" in fa["checkpoint"]
    _assert_same(fb["checkpoint"], fa["checkpoint"], "checkpoint")
    _assert_same(fb["model.pt"], fa["model.pt"], "model.pt")
