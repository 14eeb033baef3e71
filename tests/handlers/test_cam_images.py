from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from dce_monai.handlers import CamImageHandler, cam_overlay, save_cam_overlay_png
from dce_monai.networks import VGG3DCAM


def test_overlay_colours_and_outline():
    img = torch.rand(16, 16, 4)
    cam = torch.zeros(16, 16, 4)
    cam[4:8, 4:8, 2] = 1.0
    mask = torch.zeros(16, 16, 4)
    mask[10:14, 10:14, 2] = 1
    rgb = cam_overlay(img, cam, mask)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert (rgb == [0, 255, 0]).all(-1).sum() > 0  # mask outline drawn
    with pytest.raises(ValueError, match=r"image, cam and mask must share a shape"):
        cam_overlay(img, cam[..., :2])


def test_png_written(tmp_path):
    p = save_cam_overlay_png(tmp_path / "cam.png", torch.rand(8, 8, 2), torch.rand(8, 8, 2), title="x")
    assert p.stat().st_size > 1000


def test_tensorboard_images(tmp_path):
    net = VGG3DCAM(channels=(4, 8))
    batch = {"image": torch.rand(2, 1, 16, 16, 8), "label": torch.tensor([0, 1]), "mask": torch.ones(2, 1, 16, 16, 8)}
    w = SummaryWriter(str(tmp_path))
    engine = Engine(lambda e, b: None)
    CamImageHandler(w, batch, net, every_n_epochs=2).attach(engine)
    engine.run([0], max_epochs=4)
    w.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["images"]) == {"cam/0", "cam/1"} and len(acc.Images("cam/0")) == 2
    with pytest.raises(ValueError, match=r"every_n_epochs must be >= 1"):
        CamImageHandler(w, batch, net, every_n_epochs=0)
    with pytest.raises(TypeError, match=r"needs a network with cam"):
        CamImageHandler(w, batch, torch.nn.Linear(1, 1))


@pytest.mark.parametrize("decollated", [False, True], ids=["dict_batch", "decollated_list"])
def test_first_batch_of_each_epoch(tmp_path, decollated):
    net = VGG3DCAM(channels=(4, 8))
    batch = {"image": torch.rand(3, 1, 16, 16, 8), "label": torch.tensor([[0], [1], [1]]), "mask": torch.ones(3, 1, 16, 16, 8)}
    items = [{k: v[i] for k, v in batch.items()} for i in range(3)]
    engine = Engine(lambda e, b: None)

    @engine.on(Events.ITERATION_STARTED)
    def _set_batch(e):  # what a MONAI evaluator leaves in state.batch
        e.state.batch = items if decollated else batch

    h = CamImageHandler(network=net, log_dir=str(tmp_path), max_images=2)
    h.attach(engine)
    engine.run([0, 1], max_epochs=2)
    h.writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    assert set(acc.Tags()["images"]) == {"cam/0", "cam/1"} and len(acc.Images("cam/1")) == 2


def test_writer_or_log_dir_required(tmp_path):
    net = VGG3DCAM(channels=(4, 8))
    with pytest.raises(ValueError, match=r"give exactly one of summary_writer and log_dir"):
        CamImageHandler(network=net)
    with pytest.raises(ValueError, match=r"give exactly one of summary_writer and log_dir"):
        CamImageHandler(SummaryWriter(str(tmp_path)), network=net, log_dir=str(tmp_path))


@pytest.mark.parametrize("training", [True, False], ids=["train_mode", "eval_mode"])
def test_images_leave_the_network_as_found(tmp_path, training):
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(4, 8)).train(training)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = {"image": torch.rand(2, 1, 16, 16, 8), "label": torch.tensor([0, 1]), "mask": torch.ones(2, 1, 16, 16, 8)}
    engine = Engine(lambda e, b: None)
    h = CamImageHandler(network=net, batch=batch, log_dir=str(tmp_path))
    h.attach(engine)
    engine.run([0], max_epochs=2)
    h.writer.close()
    assert net.training is training and [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])] == []


def test_mode_restored_when_cam_fails(tmp_path, monkeypatch):
    net = VGG3DCAM(channels=(4, 8)).train()
    h = CamImageHandler(network=net, batch={"image": torch.rand(1, 1, 16, 16, 8)}, log_dir=str(tmp_path))

    def broken(*a, **k):
        raise RuntimeError("cam failed")

    monkeypatch.setattr(net, "cam", broken)
    with pytest.raises(RuntimeError, match="cam failed"):
        h(Engine(lambda e, b: None))
    h.writer.close()
    assert net.training
