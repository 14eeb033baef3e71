"""Network speed and memory: ResNet34 (224x224) and the 3D VGG, against seed 1's reported figures.

    .venv/bin/python benchmarks/bench_networks.py [--device cuda] [--repeats 10] [--compile]

Peers measured side by side in the same run: fp32 vs bf16 autocast + channels_last
(and, with ``--compile``, eager vs ``torch.compile``); the 3D VGG with and without gradient
checkpointing (time and peak GPU memory at seed 2's batch size 10).

Seed 1 reports 300 ms per patch (inference) and 180 s per cross-validation fold on a GTX 1070
(its data: 1881 patches, so ~1693 training patches per fold at 10 folds; the epoch count is not
stated, ``--epochs`` sets the assumption used for the per-fold projection).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from dce_monai.networks import VGG3DCAM, ResNet34Transfer

PAPER_MS_PER_PATCH = 300.0
PAPER_S_PER_FOLD = 180.0
PAPER_TRAIN_PATCHES_PER_FOLD = 1881 * 9 // 10


def _sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def bench(fn: Callable[[], object], repeats: int, dev: str, warmup: int = 2) -> float:
    """Mean seconds per call after ``warmup`` calls (CUDA synchronised around the timed loop)."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(dev)
    return (time.perf_counter() - t) / repeats


def _amp(dev: str, on: bool):
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=on)


def resnet(dev: str, repeats: int, batch: int, compile_: bool, epochs: int) -> None:
    print(f"\n== ResNet34 2D, 3x224x224 (seed 1), device {dev}")
    rows = []
    # bf16 autocast on a CPU without bf16 units runs 14x slower (measured, docs/benchmarks.md):
    # on CPU the peer of fp32 is channels_last alone
    variants = [("fp32", False, False, False)]
    variants.append(("bf16 autocast + channels_last", True, True, False) if dev == "cuda" else ("fp32 + channels_last", False, True, False))
    if compile_:
        variants.append(("bf16 + channels_last + torch.compile", True, True, True))
    for name, amp, cl, comp in variants:
        fmt = torch.channels_last if cl else torch.contiguous_format
        net = ResNet34Transfer().to(dev).to(memory_format=fmt).eval()
        fwd = torch.compile(net) if comp else net
        x1 = torch.rand(1, 3, 224, 224, device=dev).to(memory_format=fmt)
        xb = torch.rand(batch, 3, 224, 224, device=dev).to(memory_format=fmt)
        with torch.no_grad(), _amp(dev, amp):
            t1 = bench(lambda: fwd(x1), repeats, dev)
            tb = bench(lambda: fwd(xb), max(2, repeats // 2), dev)
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        y = torch.randint(0, 2, (batch,), device=dev)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with _amp(dev, amp):
                loss = torch.nn.functional.cross_entropy(fwd(xb), y)
            loss.backward()
            opt.step()

        ts = bench(step, max(2, repeats // 2), dev)
        rows.append((name, t1, batch / tb, batch / ts))
    base = rows[0]
    print(f"{'variant':38s} {'latency b1':>11s} {'infer img/s':>12s} {'train img/s':>12s}  vs fp32 (train)")
    for name, t1, inf, tr in rows:
        print(f"{name:38s} {t1 * 1e3:8.2f} ms {inf:12.1f} {tr:12.1f}  {tr / base[3]:5.2f}x")
    best = max(rows, key=lambda r: r[3])
    best_lat = min(r[1] for r in rows)
    print(f"seed 1 comparison: {PAPER_MS_PER_PATCH:.0f} ms/patch in the paper vs {best_lat * 1e3:.2f} ms here "
          f"({PAPER_MS_PER_PATCH / (best_lat * 1e3):.0f}x faster at batch 1; "
          f"{PAPER_MS_PER_PATCH / (1e3 / best[2]):.0f}x per patch at batch {batch})")
    fold_s = PAPER_TRAIN_PATCHES_PER_FOLD * epochs / best[3]
    print(f"projected training time per fold ({PAPER_TRAIN_PATCHES_PER_FOLD} patches x {epochs} epochs at "
          f"{best[3]:.0f} img/s): {fold_s:.1f} s vs the paper's {PAPER_S_PER_FOLD:.0f} s ({PAPER_S_PER_FOLD / fold_s:.2g}x)")


def vgg(dev: str, repeats: int, batch: int, shape: tuple[int, int, int], channels: tuple[int, ...]) -> None:
    print(f"\n== 3D VGG {channels}, input 1x{'x'.join(map(str, shape))}, batch {batch}, device {dev}")
    print(f"{'variant':38s} {'step s':>8s} {'vol/s':>8s} {'peak GPU MiB':>13s}")
    cases = [("fp32", False, False), ("bf16 autocast", True, False), ("bf16 autocast + checkpointing", True, True)]
    if dev != "cuda":
        cases = [("fp32", False, False), ("fp32 + checkpointing", False, True)]
    for name, amp, ckpt in cases:
        net = VGG3DCAM(channels=channels, use_checkpoint=ckpt).to(dev).train()
        opt = torch.optim.Adam(net.parameters(), 2.5e-5)
        x = torch.rand(batch, 1, *shape, device=dev)
        y = torch.randint(0, 2, (batch,), device=dev)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with _amp(dev, amp):
                loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()

        if dev == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            t = bench(step, repeats, dev, warmup=1)
        except torch.OutOfMemoryError:
            print(f"{name:38s} out of memory")
            continue
        peak = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else float("nan")
        print(f"{name:38s} {t:8.3f} {batch / t:8.1f} {peak:13.0f}")
        del net, opt, x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=None, help="ResNet batch (default 64 on cuda, 16 on cpu)")
    ap.add_argument("--epochs", type=int, default=20, help="assumed epochs per fold for the projection")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--vgg-shape", default=None, help="3D input, e.g. 128,128,64 (default: 128,128,64 on cuda, 64,64,32 on cpu)")
    ap.add_argument("--vgg-batch", type=int, default=None, help="3D batch (default 10 on cuda as in seed 2, 4 on cpu)")
    args = ap.parse_args()
    dev = args.device
    cuda = dev == "cuda"
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}; {name}")
    if cuda:
        torch.backends.cudnn.benchmark = True
    resnet(dev, args.repeats, args.batch or (64 if cuda else 16), args.compile, args.epochs)
    shape = tuple(int(s) for s in (args.vgg_shape or ("128,128,64" if cuda else "64,64,32")).split(","))
    vgg(dev, max(2, args.repeats // 2), args.vgg_batch or (10 if cuda else 4), shape, (32, 64, 128, 256))


if __name__ == "__main__":
    main()
