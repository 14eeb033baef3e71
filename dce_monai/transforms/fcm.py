"""Fuzzy C-means (FCM) clustering and the FCM tumour mask of seed 2.

Seed 2 (Liu et al. 2021) builds tumour masks from the subtraction image: voxels above a 70 %
relative-enhancement threshold, then fuzzy C-means, keeping the most-enhancing cluster.

:func:`fuzzy_cmeans` is the standard Bezdek iteration, written here in torch because the
available packages do not scale to whole volumes (scikit-fuzzy's ``cmeans`` takes ~90 s and
2.5 GB for 1e7 voxels on 2 cores) and do not run on a GPU.
:func:`fuzzy_cmeans_histogram` is exact for integer-valued data: memberships depend on a
voxel only through its value, so FCM on the unique values weighted by their counts has the
same fixed point as FCM on all voxels, at O(unique values) per iteration.

Updates (fuzzifier m > 1, squared distance d_ik^2 = ||x_i - c_k||^2, weights w_i):
    u_ik = 1 / sum_j (d_ik / d_ij)^(2/(m-1))
    c_k = sum_i w_i u_ik^m x_i / sum_i w_i u_ik^m
A point exactly on a centre gets membership 1 there (and 0 elsewhere).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, look_up_option

from dce_monai.transforms.utils import case_label, check_binary_mask, check_finite, check_same_grid, check_spatial_dims, to_float_tensor, wrap_like

__all__ = ["FCMResult", "fuzzy_cmeans", "fuzzy_cmeans_histogram", "FuzzyCMeansMask", "FuzzyCMeansMaskd"]


@dataclass
class FCMResult:
    """Result of fuzzy C-means.

    Attributes:
        centers: (c, F) cluster centres, sorted ascending by their first feature.
        memberships: (N, c) memberships of the input points (rows sum to 1).
        n_iter: iterations run.
        converged: whether the centre change fell below ``tol``.
        objective: final weighted objective sum_i w_i sum_k u_ik^m d_ik^2.
        n_points: number of points the iteration ran on (unique values in histogram mode).
    """

    centers: torch.Tensor
    memberships: torch.Tensor
    n_iter: int
    converged: bool
    objective: float
    n_points: int


def _memberships(x: torch.Tensor, centers: torch.Tensor, m: float) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape[1] == 1:  # 1D features (intensities): plain broadcasting beats cdist
        d2 = (x - centers.T).square()  # (N, c)
    else:
        d2 = torch.cdist(x, centers).square()
    zero = d2 <= 0
    d2c = d2.clamp_min(torch.finfo(d2.dtype).tiny)
    inv = d2c.reciprocal() if m == 2.0 else d2c.pow(-1.0 / (m - 1.0))
    u = inv / inv.sum(1, keepdim=True)
    if bool(zero.any()):
        rows = zero.any(1)
        u[rows] = zero[rows].to(u.dtype) / zero[rows].sum(1, keepdim=True).to(u.dtype)
    return u, d2


def fuzzy_cmeans(
    x: Any,
    n_clusters: int = 3,
    m: float = 2.0,
    tol: float = 1e-6,
    max_iter: int = 300,
    weights: Any | None = None,
    init: Any | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> FCMResult:
    """Fuzzy C-means on points ``x`` of shape (N,) or (N, F).

    Args:
        x: data points.
        n_clusters: c >= 2.
        m: fuzzifier > 1 (2 is the usual choice).
        tol: stop when the largest centre move is below ``tol`` (data units).
        max_iter: iteration cap.
        weights: optional non-negative per-point weights (counts in histogram mode).
        init: optional (c,) or (c, F) initial centres; default: quantiles of the first feature
            at (k + 0.5)/c, deterministic.
        device: torch device (default: that of ``x`` or CPU).
        dtype: computation dtype (float64 default for agreement with references).

    Returns:
        :class:`FCMResult`.

    Raises:
        ValueError: bad arguments, NaN/Inf points, or fewer distinct values than clusters.
    """
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 2:
        raise ValueError(f"n_clusters must be an integer >= 2, got {n_clusters!r}.")
    if not m > 1:
        raise ValueError(f"fuzzifier m must be > 1, got {m!r}.")
    if not (tol > 0 and isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"tol must be > 0 and max_iter an integer >= 1, got tol={tol!r}, max_iter={max_iter!r}.")
    xt = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
    xt = xt.as_tensor() if isinstance(xt, MetaTensor) else xt
    xt = xt.to(device=device or xt.device, dtype=dtype)
    if xt.ndim == 1:
        xt = xt[:, None]
    if xt.ndim != 2:
        raise ValueError(f"x must have shape (N,) or (N, F), got {tuple(xt.shape)}.")
    if not bool(torch.isfinite(xt).all()):
        raise ValueError(f"x has {int((~torch.isfinite(xt)).sum())} NaN/Inf values.")
    n_distinct = int(torch.unique(xt, dim=0).shape[0])
    if n_distinct < n_clusters:
        raise ValueError(f"FCM needs at least n_clusters={n_clusters} distinct values, got {n_distinct}.")
    w = None
    if weights is not None:
        w = torch.as_tensor(np.asarray(weights) if isinstance(weights, np.ndarray) else weights).to(xt.device, dtype)
        if w.shape != (xt.shape[0],) or bool((w < 0).any()):
            raise ValueError(f"weights must be non-negative with shape ({xt.shape[0]},), got shape {tuple(w.shape)}.")
    if init is None:
        qs = (torch.arange(n_clusters, dtype=dtype, device=xt.device) + 0.5) / n_clusters
        first = xt[:, 0]
        if w is None:
            c0 = torch.quantile(first, qs) if first.numel() <= 16_000_000 else torch.quantile(first[:: first.numel() // 1_000_000 + 1], qs)
        else:  # weighted quantiles
            order = torch.argsort(first)
            cw = torch.cumsum(w[order], 0)
            idx = torch.searchsorted(cw, qs * cw[-1]).clamp_max(first.numel() - 1)
            c0 = first[order][idx]
        centers = xt.mean(0, keepdim=True).repeat(n_clusters, 1)
        centers[:, 0] = c0
    else:
        centers = torch.as_tensor(init, dtype=dtype, device=xt.device).reshape(n_clusters, -1).clone()
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        u, _ = _memberships(xt, centers, m)
        um = u.pow(m)
        if w is not None:
            um = um * w[:, None]
        new = (um.T @ xt) / um.sum(0)[:, None].clamp_min(torch.finfo(dtype).tiny)
        shift = float((new - centers).abs().max())
        centers = new
        if shift < tol:
            converged = True
            break
    order = torch.argsort(centers[:, 0])
    centers = centers[order]
    u, d2 = _memberships(xt, centers, m)
    um = u.pow(m) * (w[:, None] if w is not None else 1.0)
    return FCMResult(centers, u, it, converged, float((um * d2).sum()), int(xt.shape[0]))


def fuzzy_cmeans_histogram(values: Any, n_bins: int | None = None, **kwargs: Any) -> tuple[FCMResult, torch.Tensor]:
    """FCM on the histogram of 1D ``values``; returns ``(result, memberships per value)``.

    Integer-valued data (``n_bins=None``): clustering runs on the unique values weighted by
    their counts, which has exactly the fixed point of FCM on all values. Float data must
    give ``n_bins``: values are quantised to bin centres (an approximation; state it).

    Returns:
        ``(result, u)`` where ``result`` is the FCM on the histogram (``n_points`` = number of
        bins used) and ``u`` (N, c) the memberships mapped back to every input value.

    Raises:
        ValueError: non-integer data without ``n_bins``, or a bad ``n_bins``.
    """
    v = torch.as_tensor(np.asarray(values) if isinstance(values, np.ndarray) else values).flatten()
    v = v.as_tensor() if isinstance(v, MetaTensor) else v
    if n_bins is None:
        if v.is_floating_point() and not bool(torch.all(v == torch.round(v))):
            raise ValueError("fuzzy_cmeans_histogram: values are not integers; pass n_bins to quantise them.")
        vi = v.to(torch.int64)
        lo = int(vi.min())
        span = int(vi.max()) - lo + 1
        if span <= 4 * vi.numel() + 65536:  # counting is O(N), sorting O(N log N)
            counts_all = torch.bincount(vi - lo, minlength=span)
            present = counts_all > 0
            uniq = torch.nonzero(present).flatten().to(torch.float64) + lo
            counts = counts_all[present]
            inverse = (torch.cumsum(present, 0) - 1)[vi - lo]
        else:
            uniq, inverse, counts = torch.unique(vi.to(torch.float64), return_inverse=True, return_counts=True)
    else:
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}.")
        vf = v.to(torch.float64)
        lo, hi = float(vf.min()), float(vf.max())
        width = (hi - lo) / n_bins or 1.0
        idx = ((vf - lo) / width).floor().clamp(0, n_bins - 1).long()
        used, inverse, counts = torch.unique(idx, return_inverse=True, return_counts=True)
        uniq = lo + (used.to(torch.float64) + 0.5) * width
    res = fuzzy_cmeans(uniq, weights=counts.to(torch.float64), **kwargs)
    return res, res.memberships[inverse]


class FuzzyCMeansMask(Transform):
    """Tumour mask: FCM on candidate voxels' intensities, keep the highest-centre cluster.

    Args:
        n_clusters: FCM clusters. Seed 2 does not state c; clustering the subtraction image
            inside the breast mask with c = 2 gave lesion Dice 0.82-0.94 on phantom patients
            0-3 (c = 3: 0.81-0.92), so 2 is the default.
        m: fuzzifier.
        mode: ``"histogram"`` (exact for integer data, O(unique values) per iteration; float
            data is rounded to integers first — subtraction of integer phases stays exact)
            or ``"full"`` (FCM on every candidate voxel).
        membership_threshold: voxel kept when its membership in the top cluster exceeds this
            (0.5); ``None`` keeps voxels whose top-cluster membership is the largest.
        keep_largest: keep only the largest connected component (MONAI
            ``KeepLargestConnectedComponent``); ``min_size`` drops smaller components instead.
        on_empty: ``"raise"`` (default) or ``"empty"`` (return an all-zero mask) when the
            candidate mask is empty or has too few distinct values.

    Returns:
        uint8 mask (1, X, Y, Z) with the image's affine.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        n_clusters: int = 2,
        m: float = 2.0,
        mode: str = "histogram",
        membership_threshold: float | None = 0.5,
        keep_largest: bool = False,
        min_size: int = 0,
        on_empty: str = "raise",
        tol: float = 1e-6,
        max_iter: int = 300,
    ) -> None:
        self.mode = look_up_option(mode, ("histogram", "full"))
        self.on_empty = look_up_option(on_empty, ("raise", "empty"))
        if membership_threshold is not None and not 0 < membership_threshold < 1:
            raise ValueError(f"membership_threshold must be in (0, 1) or None, got {membership_threshold!r}.")
        if min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {min_size!r}.")
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 2:
            raise ValueError(f"n_clusters must be an integer >= 2, got {n_clusters!r}.")
        self.n_clusters, self.m, self.tol, self.max_iter = n_clusters, m, tol, max_iter
        self.membership_threshold, self.keep_largest, self.min_size = membership_threshold, keep_largest, min_size

    def __call__(self, img: Any, candidates: Any | None = None, case: str = "input") -> torch.Tensor:
        check_spatial_dims(img, 3, "img", case)
        if img.shape[0] != 1:
            raise ValueError(f"{case}: FuzzyCMeansMask expects a single-channel image, got {img.shape[0]} channels.")
        check_finite(img, "img", case)
        x = to_float_tensor(img)
        x = x.as_tensor() if isinstance(x, MetaTensor) else x
        if candidates is not None:
            check_same_grid({"img": img, "candidates": candidates}, case)
            check_binary_mask(candidates, "candidates", case, allow_empty=True)
            cand = torch.as_tensor(np.asarray(candidates)) if isinstance(candidates, np.ndarray) else torch.as_tensor(candidates)
            cand = (cand.as_tensor() if isinstance(cand, MetaTensor) else cand).bool()
        else:
            cand = torch.ones_like(x, dtype=torch.bool)
        vals = x[cand]
        out = torch.zeros_like(x, dtype=torch.uint8)
        n_distinct = int(torch.unique(torch.round(vals) if self.mode == "histogram" else vals).numel())
        if n_distinct < self.n_clusters:
            if self.on_empty == "empty":
                return wrap_like(out, img)
            raise ValueError(
                f"{case}: 'candidates' holds {int(cand.sum())} voxel(s) with {n_distinct} distinct value(s); "
                f"FCM with {self.n_clusters} clusters needs at least {self.n_clusters} (empty or too small candidate mask)."
            )
        kw = dict(n_clusters=self.n_clusters, m=self.m, tol=self.tol, max_iter=self.max_iter)
        if self.mode == "histogram":
            _, u = fuzzy_cmeans_histogram(torch.round(vals), **kw)  # type: ignore[arg-type]
        else:
            u = fuzzy_cmeans(vals, **kw).memberships  # type: ignore[arg-type]
        top = u[:, -1]
        keep = top > self.membership_threshold if self.membership_threshold is not None else u.argmax(1) == u.shape[1] - 1
        out[cand] = keep.to(torch.uint8)
        out = self._cleanup(out)
        return wrap_like(out, img)

    def _cleanup(self, out: torch.Tensor) -> torch.Tensor:
        if self.keep_largest and bool(out.any()):
            from monai.transforms import KeepLargestConnectedComponent

            out = torch.as_tensor(KeepLargestConnectedComponent(applied_labels=[1], connectivity=3)(out)).to(torch.uint8)
        if self.min_size > 0 and bool(out.any()):
            from scipy import ndimage

            lab, n = ndimage.label(out[0].numpy())
            sizes = ndimage.sum(np.ones_like(lab), lab, index=np.arange(1, n + 1))
            small = np.isin(lab, np.flatnonzero(sizes < self.min_size) + 1)
            out[0][torch.from_numpy(small)] = 0
        return out


class FuzzyCMeansMaskd(MapTransform):
    """Dictionary form of :class:`FuzzyCMeansMask`.

    Args:
        image_key: intensity image clustered (default ``sub``, the subtraction).
        candidate_key: binary mask of the voxels clustered (e.g. ``breast_mask``, or ``mask``
            from the 70 % threshold step); ``None`` clusters every voxel.
        output_key: key written (default ``mask``: the candidate mask is refined in place).
    """

    backend = FuzzyCMeansMask.backend

    def __init__(self, image_key: str = "sub", candidate_key: str | None = "mask", output_key: str = "mask", allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__([image_key] + ([candidate_key] if candidate_key else []), allow_missing_keys)
        self.image_key, self.candidate_key, self.output_key = image_key, candidate_key, output_key
        self.op = FuzzyCMeansMask(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [k for k in self.keys if k not in d]
        if missing:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"{case_label(d)}: FuzzyCMeansMaskd needs key(s) {missing}; available: {sorted(map(str, d))}.")
        cand = d[self.candidate_key] if self.candidate_key else None
        d[self.output_key] = self.op(d[self.image_key], cand, case_label(d))
        return d
