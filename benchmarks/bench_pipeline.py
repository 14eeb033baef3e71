"""Data pipeline of the seed 1 bundle: plain Dataset vs CacheDataset vs PersistentDataset (+ ThreadDataLoader).

    .venv/bin/python benchmarks/bench_pipeline.py [--patients 12] [--epochs 3] [--size 224]

One epoch = every lesion's axial patches through the seed 1 pipeline: LoadImaged ->
EnsureChannelFirstd -> Subtractd -> ScaleIntensityDCEd -> SelectSequencesd -> LesionPatchesd
(deterministic), then RandRotated -> RandFlipd -> Resized(224) -> ImageNetNormalized (random
or cheap, run every epoch). Each variant runs in its own process so its peak memory (max RSS)
is its own. Printed: build time (first epoch), steady epoch time, patches/s and the ratio to
the plain Dataset measured in the same run.
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

VARIANTS = ("Dataset", "CacheDataset", "PersistentDataset", "CacheDataset+ThreadDataLoader")
PHASES = ["T1pre", "T1post1", "T1post2", "T1post3", "T1post4"]


def _transforms(size: int):
    import numpy as np
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        LoadImaged,
        RandFlipd,
        RandRotated,
        Resized,
    )

    from dce_monai.transforms import (
        ImageNetNormalized,
        LesionPatchesd,
        ScaleIntensityDCEd,
        SelectSequencesd,
        Subtractd,
    )

    keys = PHASES + ["label_map"]
    det = [
        LoadImaged(keys, image_only=True),
        EnsureChannelFirstd(keys),
        Subtractd(),
        ScaleIntensityDCEd(PHASES + ["sub"], reference_keys=["T1pre"]),
        SelectSequencesd(("T1pre", "T1post3", "sub")),
        LesionPatchesd(size_mm=(35.0, 35.0)),
        EnsureTyped("image", track_meta=False),
    ]
    rnd = [
        RandRotated("image", range_x=np.pi / 12, prob=0.5),
        RandFlipd("image", prob=0.5, spatial_axis=0),
        Resized("image", (size, size)),
        ImageNetNormalized(),
    ]
    return Compose(det), Compose(rnd)


def run_variant(variant: str, manifest: str, epochs: int, size: int, batch: int, cache_dir: str) -> dict:
    """Time ``epochs`` epochs of one dataset variant (called in a fresh process)."""
    import torch
    from monai.data import (
        CacheDataset,
        DataLoader,
        Dataset,
        PersistentDataset,
        ThreadDataLoader,
        list_data_collate,
    )
    from monai.transforms import Compose
    from monai.utils import set_determinism

    from dce_monai.data.manifest import load_manifest

    torch.set_num_threads(1)
    set_determinism(0)
    data = load_manifest(manifest).to_datalist(level="lesion")
    det, rnd = _transforms(size)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if variant == "Dataset":
        ds = Dataset(data, Compose(list(det.transforms) + list(rnd.transforms)))
    elif variant.startswith("CacheDataset"):
        ds = CacheDataset(data, Compose(list(det.transforms) + list(rnd.transforms)), num_workers=0, progress=False)
    elif variant == "PersistentDataset":
        ds = PersistentDataset(data, Compose(list(det.transforms) + list(rnd.transforms)), cache_dir=cache_dir)
    else:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}.")
    loader_cls = ThreadDataLoader if variant.endswith("ThreadDataLoader") else DataLoader
    loader = loader_cls(ds, batch_size=batch, shuffle=True, num_workers=0, collate_fn=list_data_collate)
    times, n = [], 0
    for _ in range(epochs):
        t = time.perf_counter()
        n = 0
        for b in loader:
            n += b["image"].shape[0]
        times.append(time.perf_counter() - t)
    build = time.perf_counter() - t0 - sum(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "variant": variant,
        "patches": n,
        "lesions": len(data),
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
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cohort", help="existing manifest (default: generate a demo phantom cohort)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, args.cohort, args.epochs, args.size, args.batch, args.cache_dir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.cohort
        if manifest is None:
            from dce_monai.data.phantom import generate_cohort

            manifest = str(generate_cohort(Path(tmp) / "cohort", n_patients=args.patients, seed=0, size="demo", workers=2, progress=False))
        rows = []
        for v in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", v, "--cohort", manifest, "--epochs", str(args.epochs),
                   "--size", str(args.size), "--batch", str(args.batch), "--cache-dir", str(Path(tmp) / f"pcache_{len(rows)}")]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
    base = rows[0]["steady_epoch_s"]
    r0 = rows[0]
    print(f"{r0['lesions']} lesions, {r0['patches']} patches per epoch, patches resized to {args.size}, batch {args.batch}, 1 thread")
    print(f"{'variant':32s} {'build+1st s':>11s} {'epoch s':>8s} {'patches/s':>10s} {'vs Dataset':>10s} {'max RSS MiB':>12s}")
    for r in rows:
        print(f"{r['variant']:32s} {r['build_s'] + r['first_epoch_s']:11.2f} {r['steady_epoch_s']:8.2f} "
              f"{r['patches'] / r['steady_epoch_s']:10.1f} {base / r['steady_epoch_s']:9.1f}x {r['max_rss_mib']:12.0f}")


if __name__ == "__main__":
    main()
