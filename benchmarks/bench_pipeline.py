"""Training data pipeline of the seed 1 bundle: batched device-side ``prepare_batch`` vs per-patch MONAI transforms.

    .venv/bin/python benchmarks/bench_pipeline.py [--patients 12] [--epochs 3] [--size 224] [--device cpu]

Both sides are built from the bundle's own ``configs/train.json`` (``ConfigParser``; every
lesion of the cohort, ``split="all"``) and share its deterministic part, run once per lesion
when the dataset is built: ``train#lesions`` (LoadImaged -> EnsureChannelFirstd ->
phase_registration -> Subtractd -> ScaleIntensityDCEd -> SelectSequencesd -> LesionPatchesd,
cached by ``preprocessed_dataset``), flattened to patches by ``PatchDataset``, loaded by a
``DataLoader`` with the bundle's batch size, ``shuffle=True``, ``drop_last=True``. The random
part, run every epoch, is the same recipe on both sides: every patch rotated by an angle
uniform in [-rotate_deg, rotate_deg] (the bundle's 180), flipped along each axis with
probability 0.5, bilinearly resized to ``--size``, border padding:

- ``PatchBatch prepare_batch`` (the bundle): ``train#dataloader`` and ``train#prepare_batch``,
  the whole batch rotated, flipped and resized by one ``grid_sample`` on ``--device``;
- ``per-patch transforms`` (peer, MONAI's usual pattern and the bundle's former path):
  ``RandRotated`` -> ``RandFlipd`` (axis 0) -> ``RandFlipd`` (axis 1) -> ``Resized`` as the
  ``PatchDataset`` transform, run per patch on the CPU in the loader; the batch is then moved to
  ``--device`` by MONAI's ``default_prepare_batch``.

An epoch ends when the last batch (images and labels) is on the device (synchronised on CUDA).
Neither side normalises: the network does (``input_range``). Each variant runs in its own
process so its peak memory (max RSS) is its own. Printed: build time plus first epoch, steady
epoch time (fastest of the later epochs), patches/s and the ratio to the per-patch transforms
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("per-patch transforms", "PatchBatch prepare_batch")
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "breast_dce_transfer_resnet34"


def _per_patch_transforms(size: int, rotate_deg: float):
    """The bundle's augmentation and resize as per-patch MONAI transforms (same recipe as ``PatchBatch``)."""
    import math

    from monai.transforms import Compose, RandFlipd, RandRotated, Resized

    return Compose([
        RandRotated("image", range_x=math.radians(rotate_deg), prob=1.0, mode="bilinear", padding_mode="border", align_corners=False),
        RandFlipd("image", prob=0.5, spatial_axis=0),
        RandFlipd("image", prob=0.5, spatial_axis=1),
        Resized("image", (size, size), mode="bilinear", align_corners=False),
    ])


def run_variant(variant: str, manifest: str, epochs: int, size: int, batch: int, device: str, threads: int) -> dict:
    """Time ``epochs`` epochs of one variant (called in a fresh process)."""
    import torch
    from monai.bundle import ConfigParser
    from monai.data import DataLoader
    from monai.engines.utils import default_prepare_batch
    from monai.utils import set_determinism

    from dce_monai.data.patch_cache import PatchDataset

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}.")
    torch.set_num_threads(threads)
    set_determinism(0)
    dev = torch.device(device)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLE), "manifest": manifest, "folds": None, "train#datalist#split": "all",
                   "image_size": size, "batch_size": batch})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    lesions = parser.get_parsed_content("train#lesions")  # the deterministic part, once per lesion
    if variant == "PatchBatch prepare_batch":
        loader = parser.get_parsed_content("train#dataloader")
        prepare = parser.get_parsed_content("train#prepare_batch")
    else:
        ds = PatchDataset(lesions, transform=_per_patch_transforms(size, float(parser.get_parsed_content("rotate_deg"))))
        loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=parser.get_parsed_content("num_workers"), drop_last=True)
        prepare = default_prepare_batch
    times, n = [], 0
    for _ in range(epochs):
        t = time.perf_counter()
        n = 0
        for b in loader:
            x, y = prepare(b, dev)
            n += int(x.shape[0])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t)
    build = time.perf_counter() - t0 - sum(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "variant": variant,
        "patches": n,
        "lesions": len(lesions),
        "shape": list(x.shape[1:]),
        "build_s": build,
        "first_epoch_s": times[0],
        "steady_epoch_s": min(times[1:]) if len(times) > 1 else times[0],
        "max_rss_mib": rss / 1024,
        "rss_growth_mib": (rss - rss0) / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32, help="batch size (the bundle's default: 32)")
    ap.add_argument("--device", default=None, help="device of prepare_batch (default: cuda if available, else cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per variant process")
    ap.add_argument("--cohort", help="existing manifest (default: generate a demo phantom cohort)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, args.cohort, args.epochs, args.size, args.batch, args.device, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.cohort
        if manifest is None:
            from dce_monai.data.phantom import generate_cohort

            manifest = str(generate_cohort(Path(tmp) / "cohort", n_patients=args.patients, seed=0, size="demo", workers=2, progress=False))
        rows = []
        for v in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", v, "--cohort", manifest, "--epochs", str(args.epochs), "--size", str(args.size),
                   "--batch", str(args.batch), "--device", args.device, "--threads", str(args.threads)]
            r = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"variant {v!r} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    if len({(r["patches"], tuple(r["shape"])) for r in rows}) != 1:
        raise SystemExit(f"the variants disagree on patches per epoch or patch shape: {[(r['variant'], r['patches'], r['shape']) for r in rows]}")
    base = rows[0]["steady_epoch_s"]
    r0 = rows[0]
    print(f"{r0['lesions']} lesions, {r0['patches']} patches per epoch, patches resized to {args.size}, batch {args.batch}, "
          f"device {args.device}, {args.threads} thread(s)")
    print(f"{'variant':32s} {'build+1st s':>11s} {'epoch s':>8s} {'patches/s':>10s} {'vs per-patch':>12s} {'max RSS MiB':>12s}")
    for r in rows:
        print(f"{r['variant']:32s} {r['build_s'] + r['first_epoch_s']:11.2f} {r['steady_epoch_s']:8.2f} "
              f"{r['patches'] / r['steady_epoch_s']:10.1f} {base / r['steady_epoch_s']:11.1f}x {r['max_rss_mib']:12.0f}")


if __name__ == "__main__":
    main()
