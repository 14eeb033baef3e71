from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from dce_monai.handlers.checkpoint import (
    AtomicCheckpointSaver,
    ResumeFromLatest,
    latest_checkpoint,
    load_state_file,
)

_TRAIN = textwrap.dedent(
    """
    import sys, time, torch
    from ignite.engine import Engine, Events
    from dce_monai.handlers.checkpoint import AtomicCheckpointSaver, ResumeFromLatest
    ckpt, max_epochs, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    data = [torch.arange(6.0).reshape(2, 3) + i for i in range(4)]
    def step(engine, x):
        opt.zero_grad(); loss = net(x).square().mean(); loss.backward(); opt.step(); time.sleep(delay)
        return float(loss)
    trainer = Engine(step)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: sched.step())
    objs = {"network": net, "optimizer": opt, "lr_scheduler": sched, "trainer": trainer}
    ResumeFromLatest(ckpt, objs).attach(trainer)
    AtomicCheckpointSaver(ckpt, objs, n_saved=2).attach(trainer)
    trainer.run(data, max_epochs=max_epochs)
    torch.save({"w": net.weight.detach(), "epoch": trainer.state.epoch, "it": trainer.state.iteration}, ckpt + "/final.pt")
    """
)


def _run(script: Path, ckpt: Path, epochs: int, delay: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(ckpt), str(epochs), str(delay)])


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_TRAIN)
    ref = tmp_path / "ref"
    assert _run(script, ref, 4).wait(120) == 0
    killed = tmp_path / "killed"
    p = _run(script, killed, 4, delay=0.25)  # 1 s per epoch
    deadline = time.time() + 60
    while latest_checkpoint(killed) is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)  # now mid-way through epoch 2
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    assert not (killed / "final.pt").exists()
    done = int(latest_checkpoint(killed).name.split("=")[1].split(".")[0])
    assert 1 <= done < 4
    assert _run(script, killed, 4).wait(120) == 0
    a, b = torch.load(ref / "final.pt"), torch.load(killed / "final.pt")
    assert (b["epoch"], b["it"]) == (4, 16)
    torch.testing.assert_close(a["w"], b["w"], rtol=0, atol=0)
    assert sorted(p.name for p in killed.glob("checkpoint_*")) == ["checkpoint_epoch=3.pt", "checkpoint_epoch=4.pt"]


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
