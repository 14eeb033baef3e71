"""N4 benchmark: our default (shrink 4, full-resolution reconstruction) vs full-resolution ITK N4.

    .venv/bin/python benchmarks/bench_n4.py [--seed 0] [--size demo|full]

Both runs use the same ITK filter, levels and iterations on the same phantom volume with a
known bias field; printed: time, correlation of the estimated and true log bias inside the
body, and the time ratio. Peer: SimpleITK's ``N4BiasFieldCorrectionImageFilter`` at full
resolution with the same levels and iterations (``pip install -e .[bench]``; skipped if absent).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.data import MetaTensor

from dce_monai.data.phantom import PhantomConfig, simulate_patient
from dce_monai.transforms.bias_field import N4BiasFieldCorrection


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", choices=("demo", "full"), default="demo")
    args = ap.parse_args()
    c = simulate_patient(args.seed, PhantomConfig(size=args.size))
    x = MetaTensor(torch.as_tensor(c.images["T1pre"].astype(np.float32))[None], affine=torch.as_tensor(c.affine))
    body = c.tissue_map > 0
    mask = torch.as_tensor(body)[None]
    truth = np.log(c.bias_field)[body]
    N4BiasFieldCorrection(shrink=8, iterations=(1,))(x, mask)  # warm-up: ITK's lazy loading (5-7 s) is not N4's cost
    print(f"volume {tuple(x.shape[1:])} voxels, spacing {c.spacing_mm} mm, torch threads {torch.get_num_threads()}")
    times = {}
    for name, shrink in (("dce_monai default (shrink 4)", 4), ("full resolution (shrink 1)", 1)):
        t = time.perf_counter()
        _, lb = N4BiasFieldCorrection(shrink=shrink, return_log_bias=True)(x, mask)
        times[name] = time.perf_counter() - t
        r = np.corrcoef(lb[0].numpy()[body], truth)[0, 1]
        print(f"  {name:30s} {times[name]:7.2f} s   corr(log bias) {r:.4f}")
    try:
        import SimpleITK as sitk
    except ImportError:
        print("  SimpleITK not installed (pip install -e .[bench]): peer skipped")
    else:
        img = sitk.GetImageFromArray(np.ascontiguousarray(x[0].numpy().transpose(2, 1, 0)))
        img.SetSpacing(tuple(float(v) for v in c.spacing_mm))
        msk = sitk.GetImageFromArray(np.ascontiguousarray(body.transpose(2, 1, 0)).astype(np.uint8))
        msk.CopyInformation(img)
        f = sitk.N4BiasFieldCorrectionImageFilter()
        f.SetMaximumNumberOfIterations([50] * 4)
        t = time.perf_counter()
        f.Execute(img, msk)
        lb = sitk.GetArrayFromImage(f.GetLogBiasFieldAsImage(img)).transpose(2, 1, 0)
        times["SimpleITK N4 (full resolution)"] = time.perf_counter() - t
        r = np.corrcoef(lb[body], truth)[0, 1]
        print(f"  {'SimpleITK N4 (full resolution)':30s} {times['SimpleITK N4 (full resolution)']:7.2f} s   corr(log bias) {r:.4f}")
    base = times["dce_monai default (shrink 4)"]
    for name, t in times.items():
        print(f"  {name:30s} takes {t / base:6.1f}x the default's time")


if __name__ == "__main__":
    main()
