"""Network speed: ResNet34 (224x224) and 3D VGG on this machine, against seed 1's reported figures.

    .venv/bin/python benchmarks/bench_networks.py [--repeats 5]

Seed 1 reports ~300 ms per patch and ~180 s per fold on a GTX 1070; ratios below compare our
latency to the 300 ms figure measured on whatever device runs this script (CPU here).
"""

from __future__ import annotations

import argparse
import time

import torch

from dce_monai.networks import VGG3DCAM, ResNet34Transfer

PAPER_MS_PER_PATCH = 300.0


def bench(fn, repeats: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    net = ResNet34Transfer().to(dev).eval()
    x1 = torch.rand(1, 3, 224, 224, device=dev)
    x16 = torch.rand(16, 3, 224, 224, device=dev)
    with torch.no_grad():
        t1 = bench(lambda: net(x1), args.repeats)
        t16 = bench(lambda: net(x16), max(1, args.repeats // 2))
        netcl = net.to(memory_format=torch.channels_last)
        with torch.autocast(dev, dtype=torch.bfloat16):
            t1b = bench(lambda: netcl(x1.to(memory_format=torch.channels_last)), args.repeats)
    print(f"ResNet34 224x224 inference, batch 1, fp32          : {t1 * 1e3:7.1f} ms  ({PAPER_MS_PER_PATCH / (t1 * 1e3):.1f}x the paper's 300 ms/patch)")
    print(f"ResNet34 224x224 inference, batch 1, bf16 + ch-last: {t1b * 1e3:7.1f} ms")
    print(f"ResNet34 224x224 inference, batch 16, fp32         : {16 / t16:7.1f} images/s")
    net = ResNet34Transfer().to(dev).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    y = torch.randint(0, 2, (16,), device=dev)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x16), y).backward()
        opt.step()

    ts = bench(step, max(1, args.repeats // 2))
    print(f"ResNet34 training, batch 16, fp32                  : {16 / ts:7.1f} images/s")
    vgg = VGG3DCAM(channels=(32, 64, 128, 256)).to(dev).train()
    opt = torch.optim.Adam(vgg.parameters(), 2.5e-5)
    xv = torch.rand(4, 1, 64, 64, 32, device=dev)
    yv = torch.randint(0, 2, (4,), device=dev)

    def vstep() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(vgg(xv), yv).backward()
        opt.step()

    tv = bench(vstep, max(1, args.repeats // 2))
    print(f"3D VGG (32-64-128-256) train step, batch 4 at 1x64x64x32: {tv:.2f} s")


if __name__ == "__main__":
    main()
