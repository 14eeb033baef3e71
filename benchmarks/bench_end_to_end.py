"""End to end: seconds per case from NIfTI files to per-lesion probabilities, and peak memory.

    .venv/bin/python benchmarks/bench_end_to_end.py [--grid demo|full] [--device cpu|cuda]

What runs is the seed 1 bundle's own per-lesion ``preprocessing`` (``configs/train.json`` of
``bundles/breast_dce_transfer_resnet34``, parsed with MONAI's ``ConfigParser``, default
channels T1pre, T1post3, sub): load the sequences those channels need and the label map, N4
(``bias_correction``: one field fitted on T1pre divided out of every T1 phase), subtraction,
scaling, channel selection, the lesion's axial patches (50x50 voxels); then the bundle's
evaluation ``prepare_batch`` (resize to 224) and the ResNet34 forward pass over all patches at
once, and per-lesion max aggregation. Each transform is timed, and the resident memory of the
process is sampled every 5 ms, so the peak of each stage is reported beside the whole run's.

``--grid demo`` uses a demo phantom case (128x128x32); ``--grid full`` resamples it to a
real full-size grid, 448x448x160 (Duke-like), written as uint16 NIfTI, to measure the time
and memory of preprocessing a full-size case. The peer figure is seed 1's 300 ms per patch for
prediction alone.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from rss import PeakRSS

SEQS = ["T2", "T1pre", "T1post1", "T1post2", "T1post3", "T1post4"]
PAPER_MS_PER_PATCH = 300.0


def _stage_name(tr: object) -> str | None:
    """Stage a bundle transform belongs to (None: an empty step, not reported)."""
    name = type(tr).__name__
    if name == "Compose":
        inner = list(getattr(tr, "transforms", []))
        return _stage_name(inner[0]) if inner else None
    return {"LoadImaged": "load", "EnsureChannelFirstd": "load", "RegisterPhasesd": "registration",
            "N4BiasFieldCorrectiond": "N4", "Subtractd": "subtract", "ScaleIntensityDCEd": "scale",
            "SelectSequencesd": "select", "LesionPatchesd": "patches", "DeleteItemsd": "drop unused phases"}.get(name, name)


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


def _write_case(tmp: Path, grid: str) -> tuple[Path, dict]:
    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.phantom import generate_cohort

    manifest = generate_cohort(tmp / "c", n_patients=1, seed=4, size="demo", progress=False)
    case = load_manifest(manifest).to_datalist(level="lesion")[0]
    return manifest, (_full_size_case(case, tmp, (448, 448, 160)) if grid == "full" else case)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", choices=("demo", "full"), default="demo")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch/BLAS/ITK threads (fixed, so figures do not follow the core count)")
    args = ap.parse_args()
    mem = PeakRSS()
    import itk

    from dce_monai.workflows.threads import set_process_threads

    set_process_threads(args.threads)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(args.threads)

    from dce_monai.engines.prepare_batch import PatchBatch
    from dce_monai.metrics import aggregate_by_lesion
    from dce_monai.networks import ResNet34Transfer
    from dce_monai.workflows.search_channels import bundle_preprocessing

    dev = torch.device(args.device)
    channels = ("T1pre", "T1post3", "sub")
    with tempfile.TemporaryDirectory() as tmp:
        # the case is written by a child process, so its arrays never count in this process's memory
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
            manifest, case = ex.submit(_write_case, Path(tmp), args.grid).result()
        pre, _ = bundle_preprocessing(manifest, channels, (50, 50))
        stages: list[tuple[str, list]] = []
        for tr in pre.transforms:
            name = _stage_name(tr)
            if name is None:
                continue
            if stages and stages[-1][0] == name:
                stages[-1][1].append(tr)
            else:
                stages.append((name, [tr]))
        net = ResNet34Transfer().to(dev).eval()
        prep = PatchBatch(image_size=224, augment=False)
        best: dict[str, float] = {}
        peaks: dict[str, float] = {}
        best_cpu = np.inf
        base = np.inf
        for rep in range(args.repeats + 1):  # the first pass warms ITK's lazy loading and torch
            d: object = dict(case)
            times = {}
            start = mem.reset()
            c0 = time.process_time()
            for name, ts in stages:
                mem.reset()
                t = time.perf_counter()
                for tr in ts:
                    d = tr(d)
                times[name] = time.perf_counter() - t
                if rep:
                    peaks[name] = max(peaks.get(name, 0.0), mem.read())
            pre_cpu = time.process_time() - c0
            patches = d if isinstance(d, list) else [d]
            del d
            mem.reset()
            t = time.perf_counter()
            with torch.no_grad():
                batch = {"image": torch.stack([p["image"].as_tensor() for p in patches]), "label": torch.zeros(len(patches), dtype=torch.long)}
                x, _ = prep(batch, dev)
                prob = torch.softmax(net(x), 1)[:, 1].cpu().numpy()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times["network"] = time.perf_counter() - t
            t = time.perf_counter()
            ids, scores, _ = aggregate_by_lesion(prob, [p["lesion_id"] for p in patches])
            times["aggregate"] = time.perf_counter() - t
            if rep:
                peaks["network"] = max(peaks.get("network", 0.0), mem.read())
                best = {k: min(v, best.get(k, np.inf)) for k, v in times.items()}
                best_cpu = min(pre_cpu, best_cpu)
                base = min(base, start)
            del patches, batch, x
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = sum(best.values())
    shape = "448x448x160" if args.grid == "full" else "128x128x32"
    loaded = [k for tr in pre.transforms if type(tr).__name__ == "LoadImaged" for k in tr.keys]
    print(f"seed 1 bundle preprocessing (channels {', '.join(channels)}; loads {', '.join(loaded)}), one lesion, {len(ids)} lesion score(s) "
          f"from {len(prob)} axial patches, grid {shape}, device {dev}, {torch.get_num_threads()} threads")
    print(f"  resident memory before the case (torch, MONAI, ITK loaded, network): {base:.0f} MiB")
    for k, v in best.items():
        pk = f"peak {peaks[k]:6.0f} MiB" if k in peaks else ""
        print(f"  {k:28s} {v:8.3f} s  ({100 * v / total:4.1f} %)  {pk}")
    print(f"  {'total':28s} {total:8.3f} s per case; peak RSS {rss:.0f} MiB (whole process, setup included), {max(peaks.values()):.0f} MiB during the case")
    pre_s = sum(v for k, v in best.items() if k not in ("network", "aggregate"))
    print(f"  preprocessing (load to patches) {pre_s:.3f} s wall, {best_cpu:.3f} s CPU of this process")
    paper = PAPER_MS_PER_PATCH * len(prob) / 1e3
    print(f"seed 1 prediction alone: {len(prob)} x 300 ms = {paper:.1f} s; our network stage {best['network']:.3f} s "
          f"({paper / best['network']:.0f}x faster), whole case from files {total:.2f} s ({paper / total:.1f}x)")


if __name__ == "__main__":
    main()
