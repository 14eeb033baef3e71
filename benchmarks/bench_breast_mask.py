"""BreastMask against the phantom's true breast mask, in memory and from files with no mask.

    .venv/bin/python benchmarks/bench_breast_mask.py [--patients 8] [--full 3] [--median-size 3] [--figure docs/img/breast_mask.png]

Rows (demo-size phantom patients 0..N-1 of ``dce-monai phantom --seed 0``, i.e. patient i is
simulated from ``SeedSequence(0).spawn(N)[i]``):

- ``demo SNR 30``: the default phantom, T1pre as a MetaTensor in RAS voxel order;
- ``demo SNR 10 / 5 / 3``: noisier acquisitions (same anatomy draw per patient);
- ``demo bias 0.8``: a strong bias field (peak log amplitude 0.8 instead of 0.3);
- ``files, LPS, no mask``: each patient's T1pre written as NIfTI in LPS voxel order (as
  MAMA-MIA ships its images) with no breast mask in the data, read back with MONAI's
  ``LoadImaged`` + ``EnsureChannelFirstd``, mask made by ``BreastMaskd``; scored against the
  true mask after mapping it to the same voxel order;
- ``full size``: the ``full`` preset (matrix, slices and spacing of real BreastDCEDL exams),
  first 3 patients (slow on 2 cores).

Printed per row: Dice (mean, min), fraction of lesion voxels inside the mask, time per patient.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from dce_monai.data.phantom import PhantomConfig, simulate_patient
from dce_monai.transforms import BreastMask, BreastMaskd


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def _meta(arr: np.ndarray, affine: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.as_tensor(arr.astype(np.float32))[None], affine=torch.as_tensor(affine))


def _lps(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [arr.shape[0] - 1, arr.shape[1] - 1]
    return arr[::-1, ::-1, :].copy(), affine @ flip


def _score(mask: np.ndarray, truth: np.ndarray, lesions: np.ndarray) -> tuple[float, float]:
    return dice(mask, truth), float((mask[lesions] > 0).mean()) if lesions.any() else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--full", type=int, default=3, help="patients of the full preset (0 to skip)")
    ap.add_argument("--median-size", type=int, default=3, help="BreastMask median_size (1 = no filter)")
    ap.add_argument("--figure", default=None, help="write an overlay figure of patient 0 (PNG)")
    args = ap.parse_args()
    seeds = np.random.SeedSequence(0).spawn(max(args.patients, args.full))
    rows: dict[str, list[tuple[float, float, float]]] = {}
    op = BreastMask(split=True, median_size=args.median_size)

    def run(name: str, cfg: PhantomConfig, n: int, files: bool = False) -> None:
        for i in range(n):
            c = simulate_patient(seeds[i], cfg, patient_id=f"PH{i:04d}")
            truth, lesions = c.breast_mask, c.label_map > 0
            t = time.perf_counter()
            if files:
                from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

                arr, aff = _lps(c.images["T1pre"], c.affine)
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"{c.patient_id.lower()}_0000.nii.gz"
                    nib.save(nib.Nifti1Image(arr, aff), path)
                    t = time.perf_counter()
                    d = Compose([LoadImaged("T1pre", image_only=True), EnsureChannelFirstd("T1pre"), BreastMaskd(split=True, median_size=args.median_size)])(
                        {"patient_id": c.patient_id, "T1pre": str(path)}
                    )
                m = d["breast_mask"][0].numpy()
                truth, lesions = _lps(truth, c.affine)[0], _lps(lesions, c.affine)[0]
            else:
                m = op(_meta(c.images["T1pre"], c.affine))[0].numpy()
            dt = time.perf_counter() - t
            rows.setdefault(name, []).append((*_score(m, truth, lesions), dt))
            if args.figure and name == "demo SNR 30" and i == 0:
                figure(c, m, args.figure)
        r = np.array(rows[name])
        print(
            f"  {name:24s} n={len(r):2d}  Dice mean {r[:, 0].mean():.4f} min {r[:, 0].min():.4f}   "
            f"lesion voxels inside {r[:, 1].mean():.4f} (min {r[:, 1].min():.4f})   {r[:, 2].mean():6.2f} s/patient",
            flush=True,
        )

    print(f"torch threads {torch.get_num_threads()}; BreastMask median_size={args.median_size}, Otsu on log intensities")
    run("demo SNR 30", PhantomConfig.demo(), args.patients)
    for snr in (10.0, 5.0, 3.0):
        run(f"demo SNR {snr:g}", PhantomConfig.demo(snr=snr), args.patients)
    run("demo bias 0.8", PhantomConfig.demo(bias_strength=0.8), args.patients)
    run("files, LPS, no mask", PhantomConfig.demo(), args.patients, files=True)
    if args.full:
        run("full size", PhantomConfig.full(), args.full)


def figure(c, mask: np.ndarray, path: str) -> None:  # type: ignore[no-untyped-def]
    """Axial and sagittal views of T1pre with the true (white) and estimated (red/blue) masks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pre = c.images["T1pre"].astype(float)
    z = pre.shape[2] // 2
    xs = np.nonzero(mask == 1)[0]
    x = int(np.median(xs)) if len(xs) else pre.shape[0] // 4
    sx, sy, sz = c.spacing_mm
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.6), gridspec_kw={"width_ratios": [1, 0.75]})
    vmax = np.percentile(pre, 99.5)
    views = [
        (pre[:, :, z].T, mask[:, :, z].T, c.breast_mask[:, :, z].T, sy / sx, f"axial slice {z}", "left-right (x)", "posterior -> anterior (y)"),
        (pre[x, :, :], mask[x, :, :], c.breast_mask[x, :, :], sy / sz, f"sagittal slice x={x} (left breast)", "inferior -> superior (z)", "posterior -> anterior (y)"),
    ]
    for ax, (img, m, tr, aspect, title, xl, yl) in zip(axes, views):
        ax.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=vmax, aspect=aspect)
        ax.contour(tr, levels=[0.5], colors="white", linewidths=1.6)
        ax.contour(m == 1, levels=[0.5], colors="red", linewidths=1.0, linestyles="--")
        ax.contour(m == 2, levels=[0.5], colors="deepskyblue", linewidths=1.0, linestyles="--")
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.suptitle(
        f"BreastMask on phantom {c.patient_id} (Dice {dice(mask, c.breast_mask):.3f}): white = true mask, "
        "red = label 1 (patient's left), blue = label 2 (right)",
        fontsize=10,
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
