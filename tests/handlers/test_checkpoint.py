from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from dce_monai.handlers.checkpoint import (
    AtomicCheckpointSaver,
    RandomStates,
    ResumeFromLatest,
    checkpoints,
    latest_checkpoint,
    load_state_file,
    remove_stale_tmp,
)


def _engine(net: torch.nn.Module) -> Engine:
    return Engine(lambda e, b: float(net(b).sum()))


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    net = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(tmp_path, {"network": net})
    first = saver.save(1)

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # the process is interrupted while writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        saver.save(2)
    assert latest_checkpoint(tmp_path) == first
    assert list(tmp_path.glob("*.tmp")) == []
    assert set(load_state_file(first)) == {"network"}


def test_save_interval_and_last_epoch(tmp_path):
    net = torch.nn.Linear(2, 1)
    eng = _engine(net)
    AtomicCheckpointSaver(tmp_path, {"network": net, "trainer": eng}, n_saved=10, save_interval=2).attach(eng)
    eng.run([torch.ones(1, 2)], max_epochs=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"checkpoint_epoch={i}.pt" for i in (2, 4, 5)]


def test_module_state_dict_metadata_kept(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    path = AtomicCheckpointSaver(tmp_path, {"network": net}).save(1)
    loaded = load_state_file(path)["network"]
    assert loaded._metadata == net.state_dict()._metadata  # BatchNorm's version travels with the weights


def test_ddp_wrapper_saved_unwrapped_and_stale_tmp_ignored(tmp_path):
    net = torch.nn.Linear(2, 1)
    AtomicCheckpointSaver(tmp_path, {"network": torch.nn.DataParallel(net)}).save(3)
    (tmp_path / ".checkpoint_epoch=9.pt.123.tmp").write_bytes(b"junk")
    assert latest_checkpoint(tmp_path).name == "checkpoint_epoch=3.pt"
    assert set(load_state_file(latest_checkpoint(tmp_path))["network"]) == {"weight", "bias"}


def test_resume_disabled_and_fresh_start(tmp_path):
    net = torch.nn.Linear(2, 1)
    eng = _engine(net)
    r = ResumeFromLatest(tmp_path / "none", {"network": net})
    r.attach(eng)
    eng.run([torch.ones(1, 2)], max_epochs=1)
    assert r.loaded_from is None
    AtomicCheckpointSaver(tmp_path, {"network": net, "trainer": eng}).save(1)
    eng2 = _engine(net)
    ResumeFromLatest(tmp_path, {"network": net, "trainer": eng2}, enabled=False).attach(eng2)
    eng2.run([torch.ones(1, 2)], max_epochs=1)
    assert eng2.state.iteration == 1


def test_pickle_checkpoint_refused(tmp_path):
    path = tmp_path / "checkpoint_epoch=1.pt"
    torch.save({"network": Path("x")}, path)  # a Path needs pickle
    with pytest.raises(ValueError, match=r"needs pickle to load \(it holds a pathlib.PosixPath object\) and was refused") as e:
        load_state_file(path)
    assert "weights_only" not in str(e.value) and e.value.__cause__ is None


class _RunsCode:
    """An object whose unpickling would call os.system (a malicious checkpoint)."""

    def __reduce__(self):
        import os

        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("kind", ["torch_zip", "raw_pickle"])
def test_code_running_checkpoint_refused_without_invitation(tmp_path, kind, capfd):
    import pickle

    path = tmp_path / "checkpoint_epoch=1.pt"
    if kind == "torch_zip":
        torch.save({"network": _RunsCode()}, path)
        match = r"needs pickle to load \(it holds a (posix|nt)\.system object\) and was refused: unpickling can run arbitrary code"
    else:
        path.write_bytes(pickle.dumps({"network": _RunsCode()}, protocol=4))
        match = r"is not a readable torch file: the weights-only reader stopped at pickle opcode \d+ .*refused"
    with pytest.raises(ValueError, match=match) as e:
        load_state_file(path)
    assert "weights_only=False" not in str(e.value) and "weights_only` set to `False" not in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    captured = capfd.readouterr()
    assert "should-never-run" not in captured.out and "weights_only" not in captured.err


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04truncated"])
def test_corrupt_checkpoint_named(tmp_path, content):
    path = tmp_path / "checkpoint_epoch=1.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="checkpoint_epoch=1.pt.*not a readable torch file"):
        load_state_file(path)


def test_errors(tmp_path):
    net = torch.nn.Linear(2, 1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state_file(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="save_dict must name at least one"):
        AtomicCheckpointSaver(tmp_path, {})
    with pytest.raises(TypeError, match=r"save_dict\['x'\] has no state_dict\(\) \(got int\)"):
        AtomicCheckpointSaver(tmp_path, {"x": 1})
    with pytest.raises(ValueError, match="n_saved must be >= 1, got 0"):
        AtomicCheckpointSaver(tmp_path, {"network": net}, n_saved=0)
    with pytest.raises(ValueError, match="save_interval must be >= 1, got 0"):
        AtomicCheckpointSaver(tmp_path, {"network": net}, save_interval=0)
    with pytest.raises(ValueError, match="prefix must be a non-empty file name part"):
        AtomicCheckpointSaver(tmp_path, {"network": net}, prefix="a/b")
    with pytest.raises(ValueError, match="load_dict must name at least one"):
        ResumeFromLatest(tmp_path, {})
    AtomicCheckpointSaver(tmp_path, {"network": net}).save(5)
    eng = _engine(net)
    ResumeFromLatest(tmp_path, {"network": net, "optimizer": torch.optim.SGD(net.parameters(), lr=1)}).attach(eng)
    with pytest.raises(ValueError, match=r"lacks \['optimizer'\]; it holds \['network'\]"):
        eng.run([torch.ones(1, 2)], max_epochs=1)
    eng2 = _engine(net)
    AtomicCheckpointSaver(tmp_path, {"trainer": eng2}).save(6)
    eng2.run([torch.ones(1, 2)], max_epochs=3)
    AtomicCheckpointSaver(tmp_path, {"trainer": eng2}).save(7)
    eng3 = _engine(net)
    ResumeFromLatest(tmp_path, {"trainer": eng3}).attach(eng3)
    with pytest.raises(ValueError, match="at epoch 3, beyond max_epochs=2"):
        eng3.run([torch.ones(1, 2)], max_epochs=2)


class _Holder:
    """An object keeping its own generators, as a user transform might."""

    def __init__(self) -> None:
        self.py = random.Random(1)
        self.np_gen = np.random.default_rng(2)
        self.children = [{"R": np.random.RandomState(3)}]


def _pipeline(generator: bool = True):  # a MONAI dataset with random transforms in a shuffling loader
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandFlipd, RandGaussianNoised

    data = [{"image": torch.full((1, 4, 4), float(i))} for i in range(6)]
    ds = Dataset(data, Compose([RandFlipd("image", prob=0.5), RandGaussianNoised("image", prob=1.0)]))
    return DataLoader(ds, batch_size=2, shuffle=True, num_workers=0, generator=torch.Generator().manual_seed(5) if generator else None)


def _draws(loader, holder: _Holder) -> list:
    out = [torch.cat([b["image"] for b in loader]), random.random(), np.random.rand(), torch.rand(2)]
    out += [holder.py.random(), holder.np_gen.random(), holder.children[0]["R"].rand()]
    return out


def _same(a: list, b: list) -> bool:
    return all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b))


def test_random_states_round_trip_through_a_checkpoint_file(tmp_path):
    loader, holder = _pipeline(), _Holder()
    rng = RandomStates({"train": loader, "holder": holder})
    names = set(rng.generators())
    assert {"train.sampler.generator", "holder.py", "holder.np_gen", "holder.children[0]['R']"} <= names
    assert any(n.startswith("train.dataset.transform.transforms[0]") for n in names)  # RandFlipd's RandomState
    _draws(loader, holder)  # move every generator away from its seed first
    path = AtomicCheckpointSaver(tmp_path, {"random_states": rng}).save(1)
    first = _draws(loader, holder)
    second_without_restore = _draws(loader, holder)
    assert not _same(first, second_without_restore)
    rng.load_state_dict(load_state_file(path)["random_states"])  # weights_only=True read
    assert _same(first, _draws(loader, holder))


def test_random_states_errors():
    from monai.data import DataLoader, Dataset

    ds = Dataset([{"x": 1}, {"x": 2}])
    with pytest.raises(ValueError, match=r"train: persistent_workers=True keeps the workers' transform random states"):
        RandomStates({"train": DataLoader(ds, num_workers=1, persistent_workers=True)})
    with pytest.raises(ValueError, match=r"random states lack \['python', 'numpy', 'torch', 'objects'\]"):
        RandomStates().load_state_dict({})
    saved = RandomStates({"train": _pipeline()}).state_dict()
    with pytest.raises(ValueError, match=r"generators differ from the checkpoint's: not in the checkpoint \[\], only in the checkpoint \['train.dataset"):
        RandomStates({"train": _pipeline(generator=False).dataset.data}).load_state_dict(saved)
    holder = _Holder()
    state = RandomStates({"h": holder}).state_dict()
    holder.py = np.random.RandomState(0)  # same place, another kind of generator
    with pytest.raises(ValueError, match=r"random state kind 'python_random' in the checkpoint, but the object is a RandomState"):
        RandomStates({"h": holder}).load_state_dict(state)


def test_keeps_two_newest_by_default_newest_first(tmp_path):
    saver = AtomicCheckpointSaver(tmp_path, {"network": torch.nn.Linear(2, 1)})
    for epoch in (1, 2, 3, 10):
        saver.save(epoch)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint_epoch=10.pt", "checkpoint_epoch=3.pt"]


def test_unreadable_newest_falls_back_to_the_older(tmp_path, caplog):
    net = torch.nn.Linear(2, 1)
    eng = _engine(net)
    saver = AtomicCheckpointSaver(tmp_path, {"network": net, "trainer": eng})
    eng.run([torch.ones(1, 2)], max_epochs=1)
    first = saver.save(1)
    eng.run([torch.ones(1, 2)], max_epochs=2)
    newest = saver.save(2)
    newest.write_bytes(newest.read_bytes()[:100])  # truncated (disk full, copy cut short)
    eng2 = _engine(net)
    r = ResumeFromLatest(tmp_path, {"network": net, "trainer": eng2})
    r.attach(eng2)
    with caplog.at_level(logging.WARNING, logger="dce_monai.handlers.checkpoint"):
        eng2.run([torch.ones(1, 2)], max_epochs=2)
    assert r.loaded_from == first and r.skipped == [newest] and eng2.state.iteration == 2
    assert any(str(newest) in m and "not a readable torch file" in m and "falling back to checkpoint_epoch=1.pt" in m
               for m in caplog.messages), caplog.messages
    first.write_bytes(b"")
    eng3 = _engine(net)
    ResumeFromLatest(tmp_path, {"network": net, "trainer": eng3}).attach(eng3)
    with pytest.raises(ValueError, match=r"no readable checkpoint in .*checkpoint_epoch=2.pt.* \| .*checkpoint_epoch=1.pt"):
        eng3.run([torch.ones(1, 2)], max_epochs=3)


def test_stale_tmp_files_removed(tmp_path):
    other = tmp_path / ".checkpoint_epoch=3.pt.999999999.tmp"
    own = tmp_path / f".checkpoint_epoch=3.pt.{os.getpid()}.tmp"  # a save of this very process
    unrelated = tmp_path / ".notes.tmp"
    for p in (other, own, unrelated):
        p.write_bytes(b"x")
    net = torch.nn.Linear(2, 1)
    eng = _engine(net)
    ResumeFromLatest(tmp_path, {"network": net}).attach(eng)
    eng.run([torch.ones(1, 2)], max_epochs=1)
    assert not other.exists() and own.exists() and unrelated.exists()
    other.write_bytes(b"x")
    AtomicCheckpointSaver(tmp_path, {"network": net}).save(1)  # the saver cleans on its first save too
    assert not other.exists() and remove_stale_tmp(tmp_path / "missing") == []


def test_best_metric_and_best_model_saver_restored(tmp_path):
    """A resumed run keeps the evaluator's best metric and the best-model saver's record, so a
    worse model after resuming does not replace model.pt."""
    from monai.handlers import CheckpointSaver

    def evaluator(score: float) -> Engine:
        ev = Engine(lambda e, b: None)
        ev.state.best_metric, ev.state.best_metric_epoch = -1, -1  # what MONAI workflows carry

        @ev.on(Events.EPOCH_COMPLETED)
        def _score(e):
            e.state.metrics["auc"] = score
            if score > e.state.best_metric:
                e.state.best_metric, e.state.best_metric_epoch = np.float64(score), e.state.epoch

        return ev

    net = torch.nn.Linear(2, 1)
    ev = evaluator(0.9)
    best = CheckpointSaver(str(tmp_path / "models"), {"model": net}, save_key_metric=True, key_metric_name="auc",
                           key_metric_filename="model.pt")
    best.attach(ev)
    ev.run([0], max_epochs=1)
    saved_model = (tmp_path / "models" / "model.pt").read_bytes()
    AtomicCheckpointSaver(tmp_path / "state", {"evaluator": ev, "best_model_saver": best}).save(1)

    with torch.no_grad():
        net.weight.add_(1.0)  # training went on; the next validation scores worse
    ev2 = evaluator(0.5)
    best2 = CheckpointSaver(str(tmp_path / "models"), {"model": net}, save_key_metric=True, key_metric_name="auc",
                            key_metric_filename="model.pt")
    best2.attach(ev2)
    trainer = _engine(net)
    ResumeFromLatest(tmp_path / "state", {"evaluator": ev2, "best_model_saver": best2}).attach(trainer)
    trainer.run([torch.ones(1, 2)], max_epochs=1)
    assert (ev2.state.best_metric, ev2.state.best_metric_epoch) == (0.9, 1)
    ev2.run([0], max_epochs=1)
    assert (tmp_path / "models" / "model.pt").read_bytes() == saved_model  # not replaced by the worse model
    assert (ev2.state.best_metric, ev2.state.best_metric_epoch) == (0.9, 1)
    with pytest.raises(ValueError, match=r"save_dict\['b'\] is a MONAI CheckpointSaver without save_key_metric=True"):
        AtomicCheckpointSaver(tmp_path, {"b": CheckpointSaver(str(tmp_path), {"model": net}, save_final=True)})


def test_checkpoint_that_does_not_fit_is_named(tmp_path):
    AtomicCheckpointSaver(tmp_path, {"network": torch.nn.Linear(2, 1)}).save(1)
    eng = _engine(torch.nn.Linear(3, 1))
    ResumeFromLatest(tmp_path, {"network": torch.nn.Linear(3, 1)}).attach(eng)
    with pytest.raises(ValueError, match=r"checkpoint_epoch=1.pt' does not fit the objects to restore"):
        eng.run([torch.ones(1, 3)], max_epochs=2)
    with pytest.raises(TypeError, match=r"load_dict\['x'\] has no load_state_dict\(\) \(got int\)"):
        ResumeFromLatest(tmp_path, {"x": 1})
