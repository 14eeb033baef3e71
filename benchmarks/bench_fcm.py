"""FCM benchmark: dce_monai (torch full, exact histogram) vs scikit-fuzzy and fuzzy-c-means.

    .venv/bin/pip install scikit-fuzzy                      # the `bench` extra
    python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install fuzzy-c-means
    FCM_PEER_PYTHON=/tmp/benchvenv/bin/python \\
        .venv/bin/python benchmarks/bench_fcm.py --voxels 1000000 10000000
    .venv/bin/python benchmarks/bench_fcm.py --data-kind float --voxels 2000000

``fuzzy-c-means`` pins numpy<2, so it runs in its own virtual environment, named by the
``FCM_PEER_PYTHON`` environment variable; a peer that is not installed is skipped.

Data (``--data-kind integer``, the default): integer subtraction-like values of a breast volume (fat/background around 0, enhancing
parenchyma, a strongly enhancing lesion), uint16-like range. ``--data-kind float``: the same
mixture times a multiplicative smooth-bias-like factor in [0.8, 1.2], not rounded, as after N4,
where almost no value repeats; there ``histogram`` is ``FuzzyCMeansMask``'s float path (1024
bins for a warm start, then full iterations on every value: exact) and ``binned`` the 1024 bins
alone (an approximation). c = 3, m = 2. Every method starts
from the same centres (quantiles 1/6, 1/2, 5/6 of the data; the peers get the matching
initial memberships). Stopping rules differ by library: dce_monai stops when the largest
centre move is below ``--tol`` (intensity units); scikit-fuzzy and fuzzy-c-means stop when the
Frobenius norm of the membership change is below ``--tol``, so iteration counts and time per
iteration are printed as well. Each method runs in its own process: the time is wall time of
the clustering call, the memory is the process's peak RSS growth during the call.
Agreement with dce_monai's full mode (max |membership difference|, % identical hard labels)
is printed next to each speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rss import rss_mib

METHODS = ("histogram", "binned", "full", "scikit-fuzzy", "fuzzy-c-means")
FLOAT_BINS = 1024  # FuzzyCMeansMask's bins for float input


def make_data(n: int, seed: int = 0) -> np.ndarray:
    """Integer subtraction values: 80 % tissue, 15 % enhancing parenchyma, 5 % lesion."""
    rng = np.random.default_rng(seed)
    n1, n2 = int(n * 0.8), int(n * 0.15)
    parts = [rng.normal(20, 15, n1), rng.normal(250, 60, n2), rng.normal(900, 120, n - n1 - n2)]
    return np.clip(np.concatenate(parts), -200, 3000).round().astype(np.float64)


def make_float_data(n: int, seed: int = 0) -> np.ndarray:
    """The same mixture, unrounded, times a factor in [0.8, 1.2]: float values that hardly repeat."""
    rng = np.random.default_rng(seed + 1)
    return make_data(n, seed) * rng.uniform(0.8, 1.2, n)


def bezdek_memberships(x: np.ndarray, centers: np.ndarray, m: float) -> np.ndarray:
    """(N, c) memberships of 1D points ``x`` for ``centers`` (the peers' initial partition)."""
    d = np.abs(x[:, None] - centers[None])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = d ** (-2.0 / (m - 1.0))
        u = inv / inv.sum(1, keepdims=True)
    on_centre = d == 0  # a point on a centre belongs to it only
    rows = on_centre.any(1)
    u[rows] = on_centre[rows] / on_centre[rows].sum(1, keepdims=True)
    return u


def worker(method: str, data_path: str, out_path: str, tol: float, max_iter: int) -> None:
    """Run one method on the saved data; save sorted memberships; print a JSON line."""
    x = np.load(data_path)
    init = np.quantile(x, [1 / 6, 0.5, 5 / 6])
    if method in ("histogram", "binned", "full"):
        from dce_monai.transforms.fcm import fuzzy_cmeans, fuzzy_cmeans_histogram

        kw = {"n_clusters": 3, "m": 2.0, "tol": tol, "max_iter": max_iter, "init": init}
        integer = bool(np.all(x == np.round(x)))  # which data kind: decided before the clock starts
        base = rss_mib()
        t = time.perf_counter()
        if method == "histogram" and integer:
            res, u_t = fuzzy_cmeans_histogram(x, **kw)
        elif method in ("histogram", "binned"):  # float: FuzzyCMeansMask's path, or the bins alone
            res, u_t = fuzzy_cmeans_histogram(x, n_bins=FLOAT_BINS, refine=method == "histogram", **kw)
        else:
            res = fuzzy_cmeans(x, **kw)
            u_t = res.memberships
        el = time.perf_counter() - t
        u, n_iter, n_points = u_t.numpy(), res.n_iter, res.n_points
    elif method == "scikit-fuzzy":
        import skfuzzy

        u0 = bezdek_memberships(x, init, 2.0).T.copy()
        base = rss_mib()
        t = time.perf_counter()
        cntr, u_s, _, _, _, n_iter, _ = skfuzzy.cluster.cmeans(x[None], 3, 2.0, error=tol, maxiter=max_iter, init=u0)
        el = time.perf_counter() - t
        u, n_points = u_s[np.argsort(cntr[:, 0])].T, len(x)
    else:
        from fcmeans import FCM

        u0 = bezdek_memberships(x, init, 2.0)

        class FixedInitFCM(FCM):
            def _init_u(self, X: np.ndarray) -> None:  # same start as the other methods
                self.u = u0.copy()

        model = FixedInitFCM(n_clusters=3, m=2.0, error=max(tol, 1e-9), max_iter=min(max_iter, 1000))
        base = rss_mib()
        t = time.perf_counter()
        model.fit(x[:, None])
        el = time.perf_counter() - t
        n_iter = -1  # fuzzy-c-means does not report it
        u, n_points = model.u[:, np.argsort(model._centers[:, 0])], len(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    np.save(out_path, np.asarray(u, dtype=np.float64))
    print(json.dumps({"time": el, "mem": max(peak - base, 0.0), "n_iter": int(n_iter), "n_points": int(n_points)}))


def run_method(method: str, data_path: str, out_dir: str, args: argparse.Namespace) -> dict | None:
    """Run ``method`` in a subprocess; ``None`` when its package is not installed."""
    python = sys.executable
    if method == "fuzzy-c-means":
        python = os.environ.get("FCM_PEER_PYTHON", "")
        if not python:
            print(f"  {method:14s}: not installed, skipped (set FCM_PEER_PYTHON to a venv's python with it)")
            return None
    module = {"scikit-fuzzy": "skfuzzy", "fuzzy-c-means": "fcmeans"}.get(method)
    if module and subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode != 0:
        print(f"  {method:14s}: not installed, skipped")
        return None
    out = str(Path(out_dir) / f"u_{method}.npy")
    cmd = [python, __file__, "--worker", method, "--data", data_path, "--out", out]
    cmd += ["--tol", str(args.tol), "--max-iter", str(args.max_iter)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  {method:14s}: failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["u"] = np.load(out)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--data-kind", choices=("integer", "float"), default="integer")
    ap.add_argument("--methods", nargs="+", default=None, choices=METHODS,
                    help="default: all; binned only for --data-kind float (on integers histogram is exact)")
    ap.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out, args.tol, args.max_iter)
        return
    if args.methods is None:
        args.methods = [m for m in METHODS if m != "binned" or args.data_kind == "float"]
    make = make_float_data if args.data_kind == "float" else make_data
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.voxels:
            data_path = str(Path(tmp) / "x.npy")
            x = make(n)
            np.save(data_path, x)
            print(f"\n{n:,} {args.data_kind} voxels, c=3, m=2, tol={args.tol:g}, max_iter={args.max_iter}, {os.cpu_count()} CPU(s)")
            res = {}
            for method in args.methods:
                r = run_method(method, data_path, tmp, args)
                if r is None:
                    continue
                res[method] = r
                its = f"{r['n_iter']:4d} iters" if r["n_iter"] >= 0 else "   ? iters"
                per = f"{r['time'] / r['n_iter'] * 1e3:9.2f} ms/iter" if r["n_iter"] > 0 else " " * 16
                print(
                    f"  {method:14s}: {r['time']:8.3f} s  peak +{r['mem']:7.0f} MiB  {its} {per}"
                    f"  ({r['n_points']:,} points iterated)"
                )
                w = r["u"] ** 2  # m = 2: the centres these memberships define, comparable across libraries
                r["centers"] = (w * x[:, None]).sum(0) / w.sum(0)
            ref = res.get("full")
            for method, r in res.items():
                if method == "full" or ref is None:
                    continue
                du = float(np.abs(r["u"] - ref["u"]).max())
                same = float((r["u"].argmax(1) == ref["u"].argmax(1)).mean() * 100)
                dc = float(np.abs(r["centers"] - ref["centers"]).max())
                print(f"  {method:14s} vs dce_monai full: max |du| {du:.1e}, same hard labels {same:.4f} %, max centre difference {dc:.4f}")
            if ref is not None:
                print("  centres (dce_monai full): " + ", ".join(f"{c:.3f}" for c in ref["centers"]))
            for peer in ("scikit-fuzzy", "fuzzy-c-means"):
                if peer in res:
                    for ours in ("full", "histogram", "binned"):
                        if ours in res:
                            print(
                                f"  speed-up {ours:9s} vs {peer:13s}: {res[peer]['time'] / res[ours]['time']:8.1f}x"
                                f"  (peak memory {peer} / ours: {res[peer]['mem'] / max(res[ours]['mem'], 1.0):4.1f})"
                            )


if __name__ == "__main__":
    main()
