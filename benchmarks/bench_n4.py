"""N4 benchmark: dce_monai's N4 against SimpleITK's, same recipe and at full resolution.

    .venv/bin/python benchmarks/bench_n4.py [--size demo|full] [--seeds 0 1] [--repeats 2]
                                            [--peer-full-resolution auto|yes|no] [--phantom-cache DIR]

On phantom patients with a known bias field (``dce_monai.data.phantom``), each recipe is timed
(best of ``--repeats``, every time printed) and scored by the correlation of its log bias with
the true log bias inside the body:

- ``dce_monai default``: :class:`~dce_monai.transforms.bias_field.N4BiasFieldCorrection` with
  its defaults (shrink chosen per axis from an 8 mm fitting grid, 2 levels x 50 iterations,
  300 mm control-point spacing, field evaluated at full resolution).
- ``dce_monai previous default``: shrink 4 on every axis, 4 levels x 50 iterations.
- ``SimpleITK, same recipe``: SimpleITK's ``N4BiasFieldCorrectionImageFilter`` on the image
  shrunk by the same factors, same levels, iterations, control points and mask, log bias
  evaluated on the full grid (``GetLogBiasFieldAsImage``).
- ``SimpleITK, full resolution``: the same without shrinking (``auto``: only for volumes up to
  1e6 voxels, it takes tens of minutes on a full-size case).

All recipes get the same mask, the default fitting rule of dce_monai (voxels above 5 % of the
99th percentile). Before anything else the script measures ITK's first use in this process
(loading the N4 module and a first tiny fit), which later calls do not pay.
SimpleITK: ``pip install -e .[bench]`` (the peers are skipped if absent).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rss import rss_mib


def itk_first_use() -> tuple[float, float]:
    """Seconds and MiB of resident memory of ITK's first N4 fit in this process (tiny image)."""
    from dce_monai.transforms.bias_field import n4_log_bias

    arr = np.random.default_rng(0).uniform(50, 100, (32, 32, 16)).astype(np.float32)
    rss, t = rss_mib(), time.perf_counter()
    n4_log_bias(arr, np.eye(4), iterations=(1,))
    first = time.perf_counter() - t
    t = time.perf_counter()
    n4_log_bias(arr, np.eye(4), iterations=(1,))
    second = time.perf_counter() - t
    print(f"ITK first use in this process: {first:.2f} s, +{rss_mib() - rss:.0f} MiB resident (the same call again: {second:.3f} s)")
    return first, second


def load_case(seed: int, size: str, cache: Path | None) -> dict[str, np.ndarray]:
    """T1pre, true bias, body mask and affine of phantom patient ``seed`` (cached as .npz if asked)."""
    path = cache / f"{size}{seed}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from dce_monai.data.phantom import PhantomConfig, simulate_patient

    c = simulate_patient(seed, PhantomConfig(size=size) if size != "full" else PhantomConfig.full())
    case = {"t1": c.images["T1pre"].astype(np.float32), "bias": c.bias_field.astype(np.float32), "body": c.tissue_map > 0, "affine": np.asarray(c.affine)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **case)
    return case


def sitk_log_bias(t1: np.ndarray, affine: np.ndarray, mask: np.ndarray, factors: list[int], iterations: tuple[int, ...], n_ctrl: list[int]) -> np.ndarray:
    """SimpleITK N4 with the given recipe; log bias evaluated on the full grid, (X, Y, Z)."""
    import SimpleITK as sitk

    from dce_monai.transforms.bias_field import ras_affine_to_itk

    spacing, origin, direction = ras_affine_to_itk(affine)
    img = sitk.GetImageFromArray(np.ascontiguousarray(t1.transpose(2, 1, 0)))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(tuple(float(v) for v in direction.ravel()))
    msk = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0)).astype(np.uint8))
    msk.CopyInformation(img)
    small, small_m = img, msk
    if any(f > 1 for f in factors):
        small, small_m = sitk.Shrink(img, factors), sitk.Shrink(msk, factors)
    f = sitk.N4BiasFieldCorrectionImageFilter()
    f.SetMaximumNumberOfIterations([int(i) for i in iterations])
    f.SetNumberOfControlPoints(n_ctrl)
    f.SetConvergenceThreshold(1e-3)
    f.Execute(small, small_m)
    return sitk.GetArrayFromImage(f.GetLogBiasFieldAsImage(img)).transpose(2, 1, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("tiny", "demo", "full"), default="demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--peer-full-resolution", choices=("auto", "yes", "no"), default="auto")
    ap.add_argument("--phantom-cache", type=Path, default=None, help="folder keeping generated phantom volumes (.npz) between runs")
    ap.add_argument("--threads", type=int, default=2, help="torch/BLAS/ITK threads (fixed, so figures do not follow the core count)")
    args = ap.parse_args()
    import itk
    import torch

    from dce_monai.workflows.threads import set_process_threads

    set_process_threads(args.threads)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(args.threads)

    from dce_monai.transforms.bias_field import (
        DEFAULT_FIT_SPACING_MM,
        DEFAULT_ITERATIONS,
        default_body_mask,
        fit_shrink_factors,
        n4_log_bias,
        ras_affine_to_itk,
    )

    print(f"torch threads {torch.get_num_threads()}, ITK threads {args.threads}; times are the best of {args.repeats} "
          "(all runs in brackets), wall clock and CPU seconds of this process (the CPU figure moves less when the cores are shared)")
    itk_first_use()
    try:
        import SimpleITK  # noqa: F401

        have_sitk = True
    except ImportError:
        have_sitk = False
        print("SimpleITK not installed (pip install -e .[bench]): peers skipped")
    for seed in args.seeds:
        case = load_case(seed, args.size, args.phantom_cache)
        t1, body, aff = case["t1"], case["body"], case["affine"]
        truth = np.log(case["bias"])[body]
        mask = default_body_mask(t1)
        spacing = ras_affine_to_itk(aff)[0]
        extent = np.array(t1.shape) * np.array(spacing)
        n_ctrl = [max(4, int(np.ceil(e / 300.0)) + 3) for e in extent]
        factors = fit_shrink_factors(spacing, DEFAULT_FIT_SPACING_MM, t1.shape)
        fit_grid = [-(-n // f) for n, f in zip(t1.shape, factors)]
        print(f"\npatient {seed} ({args.size}): {t1.shape} voxels at {tuple(round(s, 3) for s in spacing)} mm, field of view "
              f"{tuple(int(e) for e in extent)} mm; default shrink {factors} -> fit grid {fit_grid}; control points {n_ctrl}")
        recipes = {
            "dce_monai default": lambda: n4_log_bias(t1, aff, mask),
            "dce_monai previous default": lambda: n4_log_bias(t1, aff, mask, shrink=4, iterations=(50, 50, 50, 50)),
        }
        if have_sitk:
            recipes["SimpleITK, same recipe"] = lambda: sitk_log_bias(t1, aff, mask, factors, DEFAULT_ITERATIONS, n_ctrl)
            full = args.peer_full_resolution == "yes" or (args.peer_full_resolution == "auto" and t1.size <= 1_000_000)
            if full:
                recipes["SimpleITK, full resolution"] = lambda: sitk_log_bias(t1, aff, mask, [1, 1, 1], DEFAULT_ITERATIONS, n_ctrl)
            else:
                print("  SimpleITK at full resolution skipped (more than 1e6 voxels; --peer-full-resolution yes runs it)")
        best: dict[str, float] = {}
        fields: dict[str, np.ndarray] = {}
        for name, fn in recipes.items():
            runs, cpu = [], []
            for _ in range(args.repeats if "full resolution" not in name else 1):
                t, c = time.perf_counter(), time.process_time()
                fields[name] = np.asarray(fn())
                runs.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            best[name] = min(runs)
            r = np.corrcoef(fields[name][body], truth)[0, 1]
            print(f"  {name:28s} {best[name]:7.2f} s [{', '.join(f'{x:.2f}' for x in runs)}]  CPU {min(cpu):6.2f} s   corr(log bias, truth) {r:.4f}")
        if "SimpleITK, same recipe" in fields:
            d = np.abs(fields["SimpleITK, same recipe"] - fields["dce_monai default"]).max()
            print(f"  max |log bias difference| dce_monai default vs SimpleITK same recipe: {d:.2e}")
        base = best["dce_monai default"]
        for name, t in best.items():
            print(f"  {name:28s} takes {t / base:6.2f}x the default's time")


if __name__ == "__main__":
    main()
