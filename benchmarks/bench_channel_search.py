"""Channel-search benchmark: a MONAI pipeline per cell (naive) vs the patch cache + on-device fast path.

    .venv/bin/python benchmarks/bench_channel_search.py                      # CPU-scaled
    .venv/bin/python benchmarks/bench_channel_search.py --device cuda --image-size 224 \\
        --patients 40 --epochs 3 --triplets 4 --group-sizes 1,4

Both paths compute the same cells (triplet, fold) with the same settings and seeds on a
phantom cohort:

- naive ("a bundle per cell"): for every cell, the files are read and preprocessed again
  for that triplet through a MONAI ``Dataset`` (load, subtract, scale, stack, cut patches),
  then trained from a ``DataLoader`` whose per-sample transforms do the augmentation
  (``RandRotated``, ``RandFlipd`` x2), ``Resized`` to the network size and
  ``ImageNetNormalized``; evaluation resizes and normalises the same way.
- fast: the seven-channel patch cache is built once (its build time is reported and
  counted), put on the device as one tensor, indexed per triplet, augmented and resized in
  one batched ``grid_sample`` (bf16 autocast + channels-last on CUDA); ``--group-sizes``
  also times triplets trained in lock-step.

Printed: seconds and cells/s per path, the speed-up, per-epoch training time per patch, and
the projected time of the full search (35 triplets x 10 folds, ``--paper-epochs`` epochs,
``--paper-patches`` patches, 90 % of them in training) from the measured per-epoch times.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, RandFlipd, RandRotated, Resized

from dce_monai.data.folds import patient_folds
from dce_monai.data.phantom import generate_cohort
from dce_monai.metrics.aggregation import aggregate_by_lesion
from dce_monai.sequences import triplets as all_triplets
from dce_monai.transforms import ImageNetNormalized
from dce_monai.workflows.patch_cache import get_patch_cache
from dce_monai.workflows.search_channels import (
    SearchSettings,
    _new_model,
    reference_patches,
    run_cells,
)


def naive_cell(manifest: Path, trip: tuple[str, str, str], fold: int, folds: list[list[str]], st: SearchSettings, dev: torch.device, patch: int, loader_workers: int = 0) -> tuple[float, float]:
    """One cell the bundle way; returns (total seconds, training seconds per epoch)."""
    t0 = time.perf_counter()
    imgs, lids, pids, ys = reference_patches(manifest, trip, patch)
    held = set(folds[fold])
    recs = [{"image": imgs[i], "label": int(ys[i]), "lesion_id": lids[i]} for i in range(len(lids))]
    train = [r for r, p in zip(recs, pids) if p not in held]
    test = [r for r, p in zip(recs, pids) if p in held]
    lo, hi = st.intensity_range
    aug = Compose([
        RandRotated("image", range_x=math.radians(st.rotate_deg), prob=1.0, padding_mode="border"),
        RandFlipd("image", prob=0.5, spatial_axis=0), RandFlipd("image", prob=0.5, spatial_axis=1),
        Resized("image", (st.image_size, st.image_size), mode="bilinear"), ImageNetNormalized(a_min=lo, a_max=hi),
    ])
    aug.set_random_state(st.seed + fold)
    plain = Compose([Resized("image", (st.image_size, st.image_size), mode="bilinear"), ImageNetNormalized(a_min=lo, a_max=hi)])
    model = _new_model(st).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=st.lr, momentum=st.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, st.lr_step, st.lr_gamma)
    g = torch.Generator().manual_seed(st.seed + fold)
    loader = DataLoader(Dataset(train, aug), batch_size=st.batch_size, shuffle=True, generator=g, num_workers=loader_workers, persistent_workers=loader_workers > 0)
    t1 = time.perf_counter()
    for _ in range(st.epochs):
        model.train()
        for b in loader:
            x, y = b["image"].as_tensor().to(dev), b["label"].to(dev)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_train = time.perf_counter() - t1
    model.eval()
    probs, ids = [], []
    with torch.no_grad():
        for b in DataLoader(Dataset(test, plain), batch_size=st.eval_batch_size, num_workers=0):
            probs.append(torch.softmax(model(b["image"].as_tensor().to(dev)), 1)[:, 1].cpu())
            ids += list(b["lesion_id"])
    aggregate_by_lesion(torch.cat(probs).numpy(), ids)
    return time.perf_counter() - t0, t_train / st.epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--size", default="demo", choices=("tiny", "demo"))
    ap.add_argument("--patch-size", type=int, default=50)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--triplets", type=int, default=2, help="first N of the 35 triplets")
    ap.add_argument("--folds", type=int, default=2, help="k (all folds are run)")
    ap.add_argument("--group-sizes", default="1", help="comma list of lock-step group sizes to time on the fast path")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--loader-workers", type=int, default=0, help="DataLoader worker processes of the naive path")
    ap.add_argument("--paper-epochs", type=int, default=15)
    ap.add_argument("--paper-patches", type=int, default=1881)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_cs_"))
    t = time.perf_counter()
    manifest = generate_cohort(work / "cohort", args.patients, seed=0, size=args.size, workers=2, progress=False)
    print(f"cohort: {args.patients} {args.size} patients in {time.perf_counter() - t:.1f} s ({work})")
    st = SearchSettings(epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, seed=0)
    trips = list(all_triplets())[: args.triplets]
    t = time.perf_counter()
    cache = get_patch_cache(manifest, work / "cache", size=(args.patch_size, args.patch_size), progress=False)
    t_cache = time.perf_counter() - t
    folds = patient_folds(cache.lesion_table(), k=args.folds, seed=0)
    n_cells = len(trips) * args.folds
    n_train_mean = np.mean([sum(p not in set(f) for p in cache.patient_ids) for f in folds])
    print(f"patches: {len(cache)} ({len(cache.lesion_table())} lesions), cache built in {t_cache:.2f} s, {cache.images.numel() * cache.images.element_size() / 1e6:.1f} MB")
    print(f"cells: {len(trips)} triplets x {args.folds} folds = {n_cells}; epochs {args.epochs}, image {args.image_size}, batch {args.batch_size}, device {dev}")
    if dev.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}; naive DataLoader workers: {args.loader_workers}")
    if dev.type == "cuda":  # warm-up (cuDNN autotune, lazy init) outside the timings
        warm = SearchSettings(epochs=1, batch_size=args.batch_size, image_size=args.image_size)
        run_cells(cache, trips[:1], 0, folds, warm, dev)
        run_cells(cache, trips[:1], 0, folds, warm, dev, amp=False)
        if not args.skip_naive:
            naive_cell(manifest, trips[0], 0, folds, warm, dev, args.patch_size, args.loader_workers)
    images = cache.images.to(dev)
    template = _new_model(st)
    # fast (group 1) and naive cells alternate, so that load from other processes hits both alike
    acc: dict[str, list[float]] = {"fast": [], "fast_epoch": [], "naive": [], "naive_epoch": []}
    for f in range(args.folds):
        for trip in trips:
            t = time.perf_counter()
            res = run_cells(cache, [trip], f, folds, st, dev, True, images, template)
            acc["fast"].append(time.perf_counter() - t)
            acc["fast_epoch"].append(res[0]["seconds"]["train_per_epoch_group"])
            if not args.skip_naive:
                secs, pe = naive_cell(manifest, trip, f, folds, st, dev, args.patch_size, args.loader_workers)
                acc["naive"].append(secs)
                acc["naive_epoch"].append(pe)
    results = {"fast (group 1)": (sum(acc["fast"]), float(np.mean(acc["fast_epoch"])))}
    for gs in [int(v) for v in args.group_sizes.split(",") if int(v) > 1]:
        t = time.perf_counter()
        per_epoch = []
        for f in range(args.folds):
            for i in range(0, len(trips), gs):
                res = run_cells(cache, trips[i : i + gs], f, folds, st, dev, True, images, template)
                per_epoch.append(res[0]["seconds"]["train_per_epoch_group"] / len(res))
        results[f"fast (group {gs})"] = (time.perf_counter() - t, float(np.mean(per_epoch)))
    if dev.type == "cuda":  # the fast path without bf16 autocast / channels-last, to separate the two effects
        t = time.perf_counter()
        per_epoch = [run_cells(cache, [trip], f, folds, st, dev, False, images, template)[0]["seconds"]["train_per_epoch_group"] for f in range(args.folds) for trip in trips]
        results["fast fp32"] = (time.perf_counter() - t, float(np.mean(per_epoch)))
    if not args.skip_naive:
        results["naive"] = (sum(acc["naive"]), float(np.mean(acc["naive_epoch"])))
    for name, (secs, pe) in results.items():
        extra = f" (+ cache build {t_cache:.2f} s once)" if name.startswith("fast") else ""
        print(f"{name:16s}: {secs:8.2f} s, {n_cells / secs:.3f} cells/s{extra}; training {pe / n_train_mean * 1e3:.2f} ms/patch/epoch")
    if "naive" in results:
        secs = results["naive"][0]
        best = min((v[0], k) for k, v in results.items() if k != "naive")
        print(f"speed-up naive / {best[1]}: {secs / best[0]:.2f}x ({secs / (best[0] + t_cache):.2f}x counting the cache build); "
              f"training epochs only: {results['naive'][1] / results[best[1]][1]:.2f}x")
    n_train_paper = 0.9 * args.paper_patches
    for name, (_, pe) in results.items():
        per_patch = pe / n_train_mean
        full = 350 * args.paper_epochs * n_train_paper * per_patch
        print(f"projected full search, {name}, image {args.image_size}: 350 cells x {args.paper_epochs} epochs x {n_train_paper:.0f} training patches "
              f"= {full / 3600:.2f} h ({full / 350:.1f} s per cell; seed 1: 180 s per fold at 224 on a GTX 1070)")


if __name__ == "__main__":
    main()
