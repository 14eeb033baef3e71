"""Channel-search benchmark: the seed 1 bundle run once per cell (peer) vs the search's shared work.

    .venv/bin/python benchmarks/bench_channel_search.py                      # CPU-scaled
    .venv/bin/python benchmarks/bench_channel_search.py --device cuda --image-size 224 \\
        --patients 40 --epochs 3 --triplets 4 --group-sizes 1,4

Both sides train the same model with the same recipe, because both ARE the seed 1 bundle
(``bundles/breast_dce_transfer_resnet34``); they compute the same cells (triplet, fold) with
the same settings and seeds on a phantom cohort:

- bundle per cell (peer): ``train.json`` run through ``ConfigWorkflow`` for every cell with
  ``channels`` = the triplet and ``fold`` = the cell's fold (the files are read and
  preprocessed again for that triplet by the bundle's ``CacheDataset``), then
  ``inference.json`` on the held-out fold;
- search: the patch cache is built once by the same ``preprocessing`` with every channel
  (its build time is reported and counted), then ``train.json`` + ``search.json`` per group
  of ``--group-sizes`` triplets trained in lock-step on the cache (kept on the device).

A check that the two sides agree is printed (max difference of the held-out per-lesion
probabilities of the group-1 cells; 0 on CPU). Bundle-per-cell cells, search cells and the
search's lock-step groups alternate within each fold of the timing loop, so load from other
processes hits every side alike. Printed: seconds and
cells/s per side, the speed-up, training time per patch per epoch, and the projected time of
the full search (35 triplets x 10 folds, ``--paper-epochs`` epochs, ``--paper-patches``
patches, 90 % of them in training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dce_monai.data.folds import patient_folds, write_folds
from dce_monai.data.phantom import generate_cohort
from dce_monai.metrics.results import read_predictions
from dce_monai.sequences import SEQUENCES
from dce_monai.sequences import triplets as all_triplets
from dce_monai.workflows.bundle_utils import bundle_workflow
from dce_monai.workflows.search_channels import BUNDLE, SearchSettings, run_cells, search_patch_cache


def bundle_cell(manifest: Path, folds: Path, trip: tuple[str, ...], fold: int, st: SearchSettings, dev: torch.device, patch: int,
                work: Path) -> tuple[float, float, dict[str, float]]:
    """One cell the bundle way: (total seconds, training seconds per epoch, held-out lesion probabilities)."""
    out = work / f"bundle_{'+'.join(trip)}_{fold}"
    common = {"manifest": str(manifest), "folds": str(folds), "fold": fold, "channels": list(trip), "validate_data": False,
              "patch_size": [patch, patch], "output_dir": str(out), "ckpt_dir": str(out / "models"), "train_state_dir": str(out / "state"),
              "device": dev, "resume": False, **st.overrides()}
    t0 = time.perf_counter()
    wf = bundle_workflow(BUNDLE, ["train.json"], "train", **common)
    wf.parser.get_parsed_content("train#dataset")  # preprocessing (CacheDataset) outside the epoch timing
    t1 = time.perf_counter()
    wf.run()
    t_train = time.perf_counter() - t1
    wf.finalize()
    inf = bundle_workflow(BUNDLE, ["inference.json"], "infer", **{**common, "split": "test", "predictions_split": "test",
                                                                   "predictions_fold": fold, "predictions_file": str(out / "pred.csv")})
    inf.run()
    inf.finalize()
    probs = {r["lesion_id"]: r["prob"] for r in read_predictions(out / "pred.csv")}
    return time.perf_counter() - t0, t_train / st.max_epochs, probs


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
    ap.add_argument("--group-sizes", default="1", help="comma list of lock-step group sizes to time on the search side")
    ap.add_argument("--skip-bundle", action="store_true", help="time the search side only")
    ap.add_argument("--paper-epochs", type=int, default=15)
    ap.add_argument("--paper-patches", type=int, default=1881)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_cs_"))
    t = time.perf_counter()
    manifest = generate_cohort(work / "cohort", args.patients, seed=0, size=args.size, workers=2, progress=False)
    print(f"cohort: {args.patients} {args.size} patients in {time.perf_counter() - t:.1f} s ({work})")
    st = SearchSettings(max_epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, seed=0)
    trips = list(all_triplets())[: args.triplets]
    t = time.perf_counter()
    channels = [c for c in SEQUENCES if any(c in tr for tr in trips)]
    cache = search_patch_cache(manifest, work / "cache", channels, args.patch_size, progress=False)
    t_cache = time.perf_counter() - t
    folds = patient_folds(cache.lesion_table(), k=args.folds, seed=0)
    folds_file = write_folds(folds, work / "folds.json", k=args.folds, seed=0)
    n_cells = len(trips) * args.folds
    n_train_mean = np.mean([sum(p not in set(f) for p in cache.patient_ids) for f in folds])
    print(f"patches: {len(cache)} ({len(cache.lesion_table())} lesions), cache of {len(cache.channel_names)} channels built in {t_cache:.2f} s, "
          f"{cache.images.numel() * cache.images.element_size() / 1e6:.1f} MB")
    print(f"cells: {len(trips)} triplets x {args.folds} folds = {n_cells}; epochs {args.epochs}, image {args.image_size}, batch {args.batch_size}, device {dev}, "
          f"torch threads {torch.get_num_threads()}")
    if dev.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
        run_cells(cache, trips[:1], 0, folds_file, SearchSettings(max_epochs=1, batch_size=args.batch_size, image_size=args.image_size), dev)  # warm-up
    acc: dict[str, list[float]] = {"search": [], "search_epoch": [], "bundle": [], "bundle_epoch": []}
    groups = [int(v) for v in args.group_sizes.split(",") if int(v) > 1]
    grouped: dict[int, tuple[list[float], list[float]]] = {gs: ([], []) for gs in groups}
    max_diff = 0.0
    for f in range(args.folds):  # every side runs within each fold, so load from other processes hits all alike
        for trip in trips:
            t = time.perf_counter()
            res = run_cells(cache, [trip], f, folds_file, st, dev, True)
            acc["search"].append(time.perf_counter() - t)
            acc["search_epoch"].append(res[0]["seconds"]["train_per_epoch_group"])
            if not args.skip_bundle:
                secs, pe, probs = bundle_cell(manifest, folds_file, trip, f, st, dev, args.patch_size, work)
                acc["bundle"].append(secs)
                acc["bundle_epoch"].append(pe)
                mine = {r["lesion_id"]: r["prob"] for r in res[0]["lesions"]}
                max_diff = max([max_diff] + [abs(mine[k] - probs[k]) for k in mine])
        for gs in groups:
            for i in range(0, len(trips), gs):
                t = time.perf_counter()
                res = run_cells(cache, trips[i : i + gs], f, folds_file, st, dev, True)
                grouped[gs][0].append(time.perf_counter() - t)
                grouped[gs][1].append(res[0]["seconds"]["train_per_epoch_group"] / len(res))
    results = {"search (group 1)": (sum(acc["search"]), float(np.mean(acc["search_epoch"])))}
    for gs, (secs_list, per_epoch) in grouped.items():
        results[f"search (group {gs})"] = (sum(secs_list), float(np.mean(per_epoch)))
    if not args.skip_bundle:
        results["bundle per cell"] = (sum(acc["bundle"]), float(np.mean(acc["bundle_epoch"])))
        print(f"search cells vs bundle runs, held-out lesion probabilities: max |difference| = {max_diff:.3g}")
    for name, (secs, pe) in results.items():
        extra = f" (+ cache build {t_cache:.2f} s once)" if name.startswith("search") else ""
        print(f"{name:18s}: {secs:8.2f} s, {n_cells / secs:.3f} cells/s{extra}; training {pe / n_train_mean * 1e3:.2f} ms/patch/epoch")
    if "bundle per cell" in results:
        secs = results["bundle per cell"][0]
        best = min((v[0], k) for k, v in results.items() if k != "bundle per cell")
        print(f"speed-up bundle per cell / {best[1]}: {secs / best[0]:.2f}x ({secs / (best[0] + t_cache):.2f}x counting the cache build); "
              f"training epochs only: {results['bundle per cell'][1] / results[best[1]][1]:.2f}x")
    n_train_paper = 0.9 * args.paper_patches
    for name, (_, pe) in results.items():
        full = 350 * args.paper_epochs * n_train_paper * pe / n_train_mean
        print(f"projected full search, {name}, image {args.image_size}: 350 cells x {args.paper_epochs} epochs x {n_train_paper:.0f} training patches "
              f"= {full / 3600:.2f} h ({full / 350:.1f} s per cell; seed 1: 180 s per fold at 224 on a GTX 1070)")


if __name__ == "__main__":
    main()
