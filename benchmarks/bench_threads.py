"""Thread counts under contention: the same work with 1 thread and with every available CPU, idle and shared.

    .venv/bin/python benchmarks/bench_threads.py [--repeats 5] [--voxels 2000000] [--competitors 1]

``dce-monai --threads N`` and every benchmark's ``--threads`` fix torch's, BLAS's and ITK's pools
(:func:`dce_monai.workflows.threads.set_process_threads`); without it the count is the CPUs the
process may use (``os.sched_getaffinity``). This script shows what the count does when another
job shares the cores: each workload runs ``--repeats`` times with 1 thread and with
``available_cpus()`` threads, first on an otherwise idle machine, then while ``--competitors``
busy processes (a pure-Python loop each, one core's worth of work) run beside it.

Workloads, the two where the thread count matters most in the toolkit:

- ``FCM full``: :func:`dce_monai.transforms.fcm.fuzzy_cmeans` on ``--voxels`` float values
  (seed 2's mask step in ``mode="full"``; torch element-wise kernels and reductions);
- ``3D VGG step``: one mask-guided training step (forward with CAM, CE + lambda (1 - Dice(CAM,
  mask)), backward, SGD) of seed 2's :class:`dce_monai.networks.VGG3DCAM` (widths 8, 16, 16,
  32) on a batch of 4 one-channel crops of 32x32x16.

Printed per condition: median, min and max wall time of the repeats and their spread
(max / min). A pool larger than the cores left free waits at every parallel region for the
thread that shares its core, so its times grow and scatter; the steady count is the CPUs left
free.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def busy() -> None:
    """One core's worth of pure-Python work until killed."""
    x = 0
    while True:
        x += 1


def workloads(voxels: int) -> dict[str, Callable[[], None]]:
    import numpy as np
    import torch

    from dce_monai.losses.mask_guided import MaskGuidedLoss
    from dce_monai.networks import VGG3DCAM
    from dce_monai.transforms.fcm import fuzzy_cmeans

    rng = np.random.default_rng(0)
    n1, n2 = int(voxels * 0.8), int(voxels * 0.15)
    x = torch.as_tensor(np.concatenate([rng.normal(20, 15, n1), rng.normal(250, 60, n2), rng.normal(900, 120, voxels - n1 - n2)]))

    def fcm() -> None:
        fuzzy_cmeans(x, n_clusters=3, m=2.0, tol=1e-4, max_iter=300)

    torch.manual_seed(0)
    net = VGG3DCAM(in_channels=1, channels=(8, 16, 16, 32))
    loss_fn = MaskGuidedLoss(lambda_dice=10.0)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    batch = torch.randn(4, 1, 32, 32, 16)
    labels = torch.tensor([0, 1, 0, 1])
    masks = (torch.rand(4, 1, 32, 32, 16) > 0.9).float()

    def vgg_step() -> None:
        opt.zero_grad()
        logits, cam = net.forward_with_cam(batch, labels)
        loss_fn(logits, labels, cam, masks).backward()
        opt.step()

    return {"FCM full": fcm, "3D VGG step": vgg_step}


def time_repeats(fn: Callable[[], None], repeats: int) -> list[float]:
    fn()  # warm-up: allocator, first kernel dispatch
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--voxels", type=int, default=2_000_000)
    ap.add_argument("--competitors", type=int, default=1, help="busy processes sharing the cores in the contended runs")
    ap.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.busy:
        busy()
        return

    from dce_monai.workflows.threads import available_cpus, set_process_threads

    cpus = available_cpus()
    counts = sorted({1, cpus})
    work = workloads(args.voxels)
    print(f"available CPUs (sched_getaffinity) {cpus}; thread counts {counts}; {args.repeats} repeats after one warm-up;"
          f" contended = {args.competitors} busy process(es) beside this one; FCM on {args.voxels:,} values")
    results: dict[tuple[str, str, int], list[float]] = {}
    for condition in ("idle", "contended"):
        procs = []
        if condition == "contended":
            procs = [subprocess.Popen([sys.executable, __file__, "--busy"]) for _ in range(args.competitors)]
            time.sleep(1.0)  # let them reach the loop
        try:
            for name, fn in work.items():
                for n in counts:
                    set_process_threads(n)
                    times = time_repeats(fn, args.repeats)
                    results[(name, condition, n)] = times
                    med = statistics.median(times)
                    print(f"  {name:12s} {condition:9s} {n} thread(s)  median {med:7.3f} s  min {min(times):7.3f}  max {max(times):7.3f}"
                          f"  spread (max/min) {max(times) / min(times):5.2f}")
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print("  median time, contended / idle:")
    for name in work:
        for n in counts:
            ratio = statistics.median(results[(name, "contended", n)]) / statistics.median(results[(name, "idle", n)])
            print(f"    {name:12s} {n} thread(s)  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
