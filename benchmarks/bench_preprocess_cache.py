"""Preprocessing once per case: ``dce-monai compare-masking`` with and without the persistent cache.

    .venv/bin/python benchmarks/bench_preprocess_cache.py [--patients 6] [--k 2] [--threads 2]

On a demo-size phantom cohort, three runs of ``run_compare_masking`` (3 variants x k folds,
1 epoch, 32x32x16 crops, a 2-block VGG):

- ``no cache``: ``cache_dir=None``, each dataset of each cell preprocesses its lesions (the
  behaviour before the cache);
- ``cache, first run``: ``cache_dir`` = a fresh folder;
- ``cache, re-run``: another ``--out`` and 2 epochs (every cell recomputed), the same cache folder.

Each run prints its wall time and how often the expensive steps ran: ``FuzzyCMeansMaskd``
(once per lesion preprocessing) and ``LoadImaged`` (twice: sequences, then the breast mask).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from dce_monai.workflows.threads import set_process_threads

    set_process_threads(args.threads)
    from monai.transforms import LoadImaged

    from dce_monai import transforms as T
    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.workflows.compare_masking import run_compare_masking

    calls: Counter[str] = Counter()
    for cls, name in ((T.FuzzyCMeansMaskd, "FuzzyCMeansMaskd"), (LoadImaged, "LoadImaged")):
        original = cls.__call__

        def counted(self, *a, _orig=original, _name=name, **k):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _orig(self, *a, **k)

        cls.__call__ = counted  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = generate_cohort(root / "cohort", n_patients=args.patients, seed=0, size="demo", progress=False)
        n = len(load_manifest(manifest).to_datalist(level="lesion"))
        print(f"{args.patients} demo-size patients, {n} lesions, 3 variants x {args.k} folds, {args.threads} threads")
        cache = root / "preprocess_cache"
        runs = [("no cache", "none", None, 1), ("cache, first run", "first", cache, 1), ("cache, re-run (2 epochs)", "rerun", cache, 2)]
        for label, out, cache_dir, epochs in runs:
            calls.clear()
            t = time.perf_counter()
            run_compare_masking(manifest, root / out, k=args.k, overrides={"max_epochs": epochs, "spatial_size": [32, 32, 16],
                                "batch_size": 4, "vgg_channels": [4, 8]}, cache_dir=cache_dir, progress=False)
            dt = time.perf_counter() - t
            print(f"  {label:26s} {dt:7.1f} s   lesion preprocessings (FuzzyCMeansMaskd) {calls['FuzzyCMeansMaskd']:4d}"
                  f"   LoadImaged calls {calls['LoadImaged']:4d}")
        files = list(cache.glob("*.pt"))
        print(f"  cache folder: {len(files)} files, {sum(f.stat().st_size for f in files) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
