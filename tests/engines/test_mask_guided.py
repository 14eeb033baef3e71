from __future__ import annotations

import pytest
import torch
from monai.engines import IterationEvents
from torch.utils.data import DataLoader

from dce_monai.engines import MaskGuidedTrainer
from dce_monai.losses import MaskGuidedLoss
from dce_monai.networks import VGG3DCAM


def _loader():
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(8):
        m = torch.zeros(1, 16, 16, 8)
        m[0, 4:9, 4:9, 2:6] = 1
        data.append({"image": torch.rand(1, 16, 16, 8, generator=g) + m, "label": torch.tensor(i % 2), "mask": m})
    return DataLoader(data, batch_size=4)


def _trainer(lam=10.0, epochs=2, **kw):
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(4, 8), dropout=0.0)
    return MaskGuidedTrainer("cpu", epochs, _loader(), net, torch.optim.Adam(net.parameters(), 1e-3), MaskGuidedLoss(lam), **kw), net


def test_runs_fires_monai_events_and_logs_parts():
    trainer, _ = _trainer()
    fired = []
    for ev in (IterationEvents.FORWARD_COMPLETED, IterationEvents.LOSS_COMPLETED, IterationEvents.BACKWARD_COMPLETED, IterationEvents.MODEL_COMPLETED):
        trainer.add_event_handler(ev, lambda e, ev=ev: fired.append(ev))
    trainer.run()
    assert trainer.state.epoch == 2 and trainer.state.iteration == 4
    assert fired[:4] == [IterationEvents.FORWARD_COMPLETED, IterationEvents.LOSS_COMPLETED, IterationEvents.BACKWARD_COMPLETED, IterationEvents.MODEL_COMPLETED]
    out = trainer.state.output[0]  # MONAI decollates the batch: one dict per sample
    assert {"image", "label", "pred", "loss", "ce", "dice"} <= set(out)
    assert float(out["loss"]) == pytest.approx(float(out["ce"]) + 10 * (1 - float(out["dice"])), abs=1e-4)


def test_lambda_zero_is_ce():
    trainer, _ = _trainer(lam=0.0, epochs=1)
    trainer.run()
    out = trainer.state.output[0]
    assert float(out["loss"]) == pytest.approx(float(out["ce"]), abs=1e-6)


def test_errors():
    net = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"needs a network with feature_layer and cam_from_features"):
        MaskGuidedTrainer("cpu", 1, _loader(), net, torch.optim.SGD(net.parameters(), 0.1), MaskGuidedLoss())
    vgg = VGG3DCAM(channels=(4,))
    with pytest.raises(TypeError, match=r"loss_function must be a MaskGuidedLoss, got CrossEntropyLoss"):
        MaskGuidedTrainer("cpu", 1, _loader(), vgg, torch.optim.SGD(vgg.parameters(), 0.1), torch.nn.CrossEntropyLoss())
    trainer, _ = _trainer(mask_key="tumour")
    with pytest.raises(KeyError, match=r"batch has no 'tumour'"):
        trainer.run()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_amp_training_matches_fp32_direction(amp):
    """On a GPU: the mask-guided step runs under AMP (fp16 autocast + grad scaler), losses stay finite."""
    torch.manual_seed(0)
    net = VGG3DCAM(channels=(4, 8), dropout=0.0).cuda()
    trainer = MaskGuidedTrainer("cuda", 3, _loader(), net, torch.optim.Adam(net.parameters(), 1e-3), MaskGuidedLoss(10.0), amp=amp)
    losses = []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    trainer.run()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert next(net.parameters()).is_cuda


_DDP_SCRIPT = r'''
import os, sys, torch, torch.distributed as dist
from torch.utils.data import DataLoader
from dce_monai.engines import MaskGuidedTrainer
from dce_monai.losses import MaskGuidedLoss
from dce_monai.networks import VGG3DCAM

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)  # same initial weights on both ranks
net = torch.nn.parallel.DistributedDataParallel(VGG3DCAM(channels=(4, 8), dropout=0.0))
g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
data = []
for i in range(4):
    m = torch.zeros(1, 16, 16, 8)
    m[0, 4:9, 4:9, 2:6] = 1
    data.append({"image": torch.rand(1, 16, 16, 8, generator=g) + m, "label": torch.tensor(i % 2), "mask": m})
trainer = MaskGuidedTrainer("cpu", 1, DataLoader(data, batch_size=4), net, torch.optim.SGD(net.parameters(), 0.5), MaskGuidedLoss(10.0))
trainer.run()
flat = torch.cat([p.detach().flatten() for p in net.parameters()])
both = [torch.zeros_like(flat) for _ in range(2)]
dist.all_gather(both, flat)
if rank == 0:
    print("MAXDIFF", float((both[0] - both[1]).abs().max()), flush=True)
dist.barrier()
dist.destroy_process_group()
# leave without running C++ static destructors: torch's gloo/threads can abort at interpreter exit
# ("terminate called without an active exception", SIGABRT) after every result is printed
sys.stdout.flush()
os._exit(0)
'''


def test_ddp_gradients_are_synchronised(tmp_path):
    """Two gloo processes with different data: after a step the weights must agree, which
    they only do when the CAM's forward pass runs through the DDP wrapper."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp_step.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(script)],
                       capture_output=True, text=True, timeout=180, env=env, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    diff = float(next(line for line in r.stdout.splitlines() if line.startswith("MAXDIFF")).split()[1])
    assert diff == pytest.approx(0.0, abs=1e-6)
