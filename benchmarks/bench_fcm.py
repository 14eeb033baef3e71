"""FCM benchmark: dce_monai (torch full, histogram) vs scikit-fuzzy ``cmeans``, same run.

    .venv/bin/pip install scikit-fuzzy        # the `bench` extra
    .venv/bin/python benchmarks/bench_fcm.py --voxels 1000000 10000000

Data: integer subtraction-like values of a volume (tissue, enhancing parenchyma, tumour).
All methods start from the same centres with the same tolerance; agreement is reported
next to the speed-up (max |membership difference|, % identical hard labels).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import torch

from dce_monai.transforms.fcm import fuzzy_cmeans, fuzzy_cmeans_histogram


def data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(20, 15, int(n * 0.8)), rng.normal(250, 60, int(n * 0.15)), rng.normal(900, 120, n - int(n * 0.8) - int(n * 0.15))]
    return np.clip(np.concatenate(parts), -200, 3000).round().astype(np.float64)


def timed(fn):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    el = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, el, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import skfuzzy
    except ImportError:
        skfuzzy = None
    init = None
    for n in args.voxels:
        x = data(n)
        init = np.quantile(x, [1 / 6, 0.5, 5 / 6])
        kw = dict(n_clusters=3, m=2.0, tol=1e-4, max_iter=300, init=init)
        (h, u_h), t_h, m_h = timed(lambda: fuzzy_cmeans_histogram(x, **kw))
        full, t_f, m_f = timed(lambda: fuzzy_cmeans(x, **kw))
        print(f"\n{n:,} voxels ({h.n_points} unique values), c=3, m=2, tol=1e-4, torch threads={args.threads}")
        print(f"  dce_monai histogram : {t_h:8.3f} s  peak {m_h:8.1f} MiB (python heap)  iters {h.n_iter}")
        print(f"  dce_monai full      : {t_f:8.3f} s  peak {m_f:8.1f} MiB (python heap)  iters {full.n_iter}")
        diff = (u_h - full.memberships).abs().max().item()
        same = (u_h.argmax(1) == full.memberships.argmax(1)).double().mean().item() * 100
        print(f"  histogram vs full   : max |du| {diff:.2e}, same hard labels {same:.3f} %")
        if skfuzzy is None:
            print("  scikit-fuzzy        : not installed, skipped (pip install scikit-fuzzy)")
            continue
        # skfuzzy wants (features, N) and initial memberships; start from our init's memberships
        from dce_monai.transforms.fcm import _memberships

        u0 = _memberships(torch.as_tensor(x)[:, None], torch.as_tensor(init)[:, None], 2.0)[0].numpy().T
        (cntr, u_s, *_rest), t_s, m_s = timed(lambda: skfuzzy.cluster.cmeans(x[None], 3, 2.0, error=1e-4, maxiter=300, init=u0))
        order = np.argsort(cntr[:, 0])
        u_s = u_s[order].T
        d_s = np.abs(u_s - full.memberships.numpy()).max()
        s_s = (u_s.argmax(1) == full.memberships.numpy().argmax(1)).mean() * 100
        print(f"  scikit-fuzzy cmeans : {t_s:8.3f} s  peak {m_s:8.1f} MiB (python heap)")
        print(f"  vs scikit-fuzzy     : full {t_s / t_f:6.1f}x faster, histogram {t_s / t_h:8.1f}x faster; "
              f"max |du| {d_s:.2e}, same hard labels {s_s:.3f} %")


if __name__ == "__main__":
    main()
