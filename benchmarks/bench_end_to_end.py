"""End to end: seconds per case from NIfTI files to per-lesion probabilities, and peak memory.

    .venv/bin/python benchmarks/bench_end_to_end.py [--grid demo|full] [--device cpu|cuda]

Stages, each timed: load 6 sequences + label map (LoadImaged), N4 bias correction (one field
fitted on T1pre, applied to all T1 phases), subtraction, intensity scaling, channel selection
(T1pre, T1post3, sub), the lesion's axial patches (50 voxels at 0.7 mm = 35 mm) resized to
224, the ResNet34 forward pass over all patches at once, per-lesion max aggregation.

``--grid demo`` uses a demo phantom case (128x128x32); ``--grid full`` resamples it to a
real full-size grid, 448x448x160 (Duke-like), written as uint16 NIfTI, to measure the
memory of preprocessing a full-size case. The peer figure is seed 1's 300 ms per patch for
prediction alone.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

SEQS = ["T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4"]
PAPER_MS_PER_PATCH = 300.0


def _full_size_case(case: dict, out: Path, shape: tuple[int, int, int]) -> dict:
    """Resample a demo case's volumes to ``shape`` (trilinear; nearest for the label map)."""
    new = dict(case)
    for k in SEQS + ["label_map"]:
        img = nib.load(case[k])
        data = torch.from_numpy(np.asarray(img.dataobj, dtype=np.float32))[None, None]
        mode = "nearest" if k == "label_map" else "trilinear"
        res = torch.nn.functional.interpolate(data, size=shape, mode=mode)[0, 0].numpy()
        zoom = np.array(img.shape) / np.array(shape)
        aff = img.affine.copy()
        aff[:3, :3] = aff[:3, :3] * zoom
        dtype = np.uint8 if k == "label_map" else np.uint16
        path = out / f"{k}.nii.gz"
        nib.save(nib.Nifti1Image(np.rint(res).astype(dtype), aff), str(path))
        new[k] = str(path)
    return new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", choices=("demo", "full"), default="demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch/BLAS/ITK threads (fixed, so figures do not follow the core count)")
    args = ap.parse_args()
    import itk

    from dce_monai.workflows.threads import set_process_threads

    set_process_threads(args.threads)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(args.threads)

    from monai.transforms import EnsureChannelFirstd, LoadImaged, Resized

    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.metrics import aggregate_by_lesion
    from dce_monai.networks import ResNet34Transfer
    from dce_monai.transforms import (
        ImageNetNormalized,
        LesionPatchesd,
        N4BiasFieldCorrectiond,
        ScaleIntensityDCEd,
        SelectSequencesd,
        Subtractd,
    )

    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate_cohort(Path(tmp) / "c", n_patients=1, seed=4, size="demo", progress=False)
        lesions = load_manifest(manifest).to_datalist(level="lesion")
        case = lesions[0]
        if args.grid == "full":
            case = _full_size_case(case, Path(tmp), (448, 448, 160))
        net = ResNet34Transfer().to(dev).eval()
        t1 = ["T1pre", "T1post1", "T1post2", "T1post3", "T1post4"]
        stages = [
            ("load", [LoadImaged(SEQS + ["label_map"], image_only=True), EnsureChannelFirstd(SEQS + ["label_map"])]),
            ("N4", [N4BiasFieldCorrectiond(t1, reference_key="T1pre")]),
            ("subtract+scale+select", [Subtractd(), ScaleIntensityDCEd(t1 + ["sub"], reference_keys=["T1pre"]),
                                       SelectSequencesd(("T1pre", "T1post3", "sub"))]),
            ("patches+resize+normalise", [LesionPatchesd(size_mm=(35.0, 35.0)), Resized("image", (224, 224)), ImageNetNormalized()]),
        ]
        best: dict[str, float] = {}
        best_cpu = np.inf
        for rep in range(args.repeats + 1):  # the first pass warms ITK's lazy loading and torch
            d: object = dict(case)
            times = {}
            c0 = time.process_time()
            for name, ts in stages:
                t = time.perf_counter()
                for tr in ts:
                    d = [tr(x) for x in d] if isinstance(d, list) else tr(d)
                times[name] = time.perf_counter() - t
            pre_cpu = time.process_time() - c0
            patches = d if isinstance(d, list) else [d]
            t = time.perf_counter()
            with torch.no_grad():
                x = torch.stack([p["image"].as_tensor() for p in patches]).to(dev)
                prob = torch.softmax(net(x), 1)[:, 1].cpu().numpy()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times["network"] = time.perf_counter() - t
            t = time.perf_counter()
            ids, scores, _ = aggregate_by_lesion(prob, [p["lesion_id"] for p in patches])
            times["aggregate"] = time.perf_counter() - t
            if rep:
                best = {k: min(v, best.get(k, np.inf)) for k, v in times.items()}
                best_cpu = min(pre_cpu, best_cpu)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = sum(best.values())
    shape = "448x448x160" if args.grid == "full" else "128x128x32"
    print(f"one lesion, {len(patches)} axial patches, grid {shape}, 6 sequences, device {dev}, {torch.get_num_threads()} threads")
    for k, v in best.items():
        print(f"  {k:28s} {v:8.3f} s  ({100 * v / total:4.1f} %)")
    print(f"  {'total':28s} {total:8.3f} s per case; peak RSS {rss:.0f} MiB")
    pre = sum(v for k, v in best.items() if k not in ("network", "aggregate"))
    print(f"  preprocessing (load to patches) {pre:.3f} s wall, {best_cpu:.3f} s CPU of this process")
    paper = PAPER_MS_PER_PATCH * len(patches) / 1e3
    print(f"seed 1 prediction alone: {len(patches)} x 300 ms = {paper:.1f} s; our network stage {best['network']:.3f} s "
          f"({paper / best['network']:.0f}x faster), whole case from files {total:.2f} s ({paper / total:.1f}x)")


if __name__ == "__main__":
    main()
