"""Cross-rank reductions (``dce_monai.handlers.distributed``) and the metrics that use them under DDP.

The two-process case runs on CPU with the gloo backend (``torch.multiprocessing.spawn``): each rank
feeds its half of a validation set to ``LesionAUC`` and ``AttentionInMask``; both must return
what one process computes over the whole set.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dce_monai.handlers.distributed import RankZeroOnly, all_reduce_sum, gather_lists, world_size
from dce_monai.handlers.lesion_auc import LesionAUC

# patch-level probabilities, labels and lesion ids: lesion "B" has patches on both halves
PROBS = [0.9, 0.2, 0.4, 0.1, 0.7, 0.8, 0.3, 0.75]
LABELS = [1, 0, 1, 0, 1, 1, 0, 0]
IDS = ["A", "C", "B", "D", "B", "E", "F", "G"]


def _auc(probs: list[float], labels: list[int], ids: list[str]) -> tuple[float, dict[str, float]]:
    m = LesionAUC()
    m.reset()
    m.update((torch.tensor(probs), torch.tensor(labels), ids))
    return m.compute(), dict(m.last)


def test_single_process_is_identity() -> None:
    assert world_size() == 1
    assert gather_lists([1.0, 2.0], ["a"]) == ([1.0, 2.0], ["a"])
    assert all_reduce_sum(1, 2.5) == (1.0, 2.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        half = slice(0, 4) if rank == 0 else slice(4, 8)
        auc, last = _auc(PROBS[half], LABELS[half], IDS[half])
        gathered = gather_lists(PROBS[half], IDS[half])
        sums = all_reduce_sum(float(rank + 1), 2.0)
        torch.save({"auc": auc, "last": last, "gathered": gathered, "sums": sums}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters import torch/monai: ~20 s idle, minutes on a loaded 2-core machine
def test_two_gloo_processes_pool_the_whole_set() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(_free_port(), tmp), nprocs=2, join=True)
        results = [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(2)]
    auc, last = _auc(PROBS, LABELS, IDS)  # one process, whole set
    for r in results:
        assert r["auc"] == pytest.approx(auc) and r["last"] == pytest.approx(last)
        assert r["gathered"] == (PROBS, IDS)  # rank order: rank 0's items first
        assert r["sums"] == (3.0, 4.0)
    assert auc == pytest.approx(11 / 12)  # lesion B = max(0.4 on rank 0, 0.7 on rank 1) ranks below G (0.75)
    # per-rank AUCs differ from the pooled one (1.0 on rank 0's half, 0.75 on rank 1's)
    assert (_auc(PROBS[:4], LABELS[:4], IDS[:4])[0], _auc(PROBS[4:], LABELS[4:], IDS[4:])[0]) == (1.0, 0.75)


def test_rank_zero_only_and_errors():
    from ignite.engine import Engine

    attached = []

    class H:
        def attach(self, engine):
            attached.append(engine)

    eng = Engine(lambda e, b: None)
    RankZeroOnly(H()).attach(eng)
    RankZeroOnly(H).attach(eng)
    assert attached == [eng, eng]
    with pytest.raises(TypeError, match="handler must have attach"):
        RankZeroOnly(3)
    with pytest.raises(TypeError, match="handler factory returned int"):
        RankZeroOnly(lambda: 3).attach(eng)
