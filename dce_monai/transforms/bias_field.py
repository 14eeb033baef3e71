"""N4 bias field correction with ITK (``itk.N4BiasFieldCorrectionImageFilter``).

Model: ``observed = true x bias``, with ``log(bias)`` a smooth cubic B-spline. N4 fits the
B-spline control-point lattice; the corrected image is ``observed / exp(log_bias)``.

Speed: the field is fitted on a shrunk image and the log bias is then evaluated at FULL
resolution from the fitted control-point lattice (``GetLogBiasFieldControlPointLattice``).
Evaluating the fitted spline is exact and smooth, unlike interpolating a shrunk field image.
Only the shrunk grid is handed to ITK (a strided numpy view of the voxels ITK's
``ShrinkImageFilter`` keeps), and the lattice is evaluated on the full
grid as three small matrix products (:func:`evaluate_lattice`, the spline is separable) instead
of ITK's per-voxel ``ReconstructBiasField``; both are tested to give ITK's own result. The shrink is chosen per axis from a target voxel size of the fitting grid
(``fit_spacing_mm``, default 8 mm; :func:`fit_shrink_factors`), so the fit costs about the same
whatever the resolution; ``shrink`` sets one factor for every axis instead.

Defaults, chosen on phantom patients with a known bias field (realistic ``full`` geometry):
2 fitting levels x 50 iterations with 300 mm control-point spacing (one or two B-spline spans
over the field of view). More levels, a tighter convergence threshold or a finer control-point
spacing let the finer meshes absorb tissue contrast. The sweep, its correlations with the true
field, the timings, the same recipe run by SimpleITK and SimpleITK at full resolution are in
docs/benchmarks.md (``benchmarks/bench_n4.py``); this docstring repeats none of its figures.
ITK's class default is ONE fitting level.
ITK's first use in a process (loading its compiled modules) costs seconds and hundreds of MiB
(docs/benchmarks.md); ITK is
imported inside the functions that need it, so processes that never run N4 or registration
do not pay it, and Python's module cache makes it a once-per-process cost.

Geometry: the MetaTensor's RAS affine is converted to ITK's LPS origin/spacing/direction
(x and y flipped) for the fit, so the spline distance in mm and anisotropic voxels are
honoured. The output carries the input's ORIGINAL affine and meta untouched (nothing of the
LPS round trip leaks back). A bare tensor/array has no geometry, so it is refused unless
``spacing`` is given (house rule: a spacing-aware transform never assumes an identity affine).

Default fitting mask: voxels above 5 % of the 99th intensity percentile of the image the
field is fitted on (the same noise-floor rule as the kinetic maps). It removes air, whose
noise would otherwise pull the fit, without Otsu's tendency to split fat from gland in
breast MRI; pass a body or breast mask to override it.

Reference: Tustison NJ et al. "N4ITK: improved N3 bias correction." IEEE TMI 29(6), 2010.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from dce_monai.transforms.utils import (
    case_label,
    check_binary_mask,
    check_finite,
    check_spatial_dims,
    divide_keys,
    wrap_like,
)

__all__ = [
    "DEFAULT_FIT_SPACING_MM",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectiond",
    "bias_correction",
    "bspline_basis",
    "default_body_mask",
    "evaluate_lattice",
    "fit_shrink_factors",
    "n4_log_bias",
    "ras_affine_to_itk",
    "shrink_slices",
]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def ras_affine_to_itk(affine: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """Convert a 4x4 RAS voxel-to-world affine to ITK's LPS (spacing, origin, direction).

    ``world_LPS = diag(-1, -1, 1) @ world_RAS``; spacing = column norms of the 3x3 part (mm),
    direction = ``diag(-1, -1, 1) @ A / spacing``, origin = ``diag(-1, -1, 1) @ t`` (mm).

    Args:
        affine: (4, 4) RAS affine (NIfTI/MONAI convention), mm.

    Returns:
        ``(spacing, origin, direction)`` for an ITK image whose index axes are (X, Y, Z).

    Raises:
        ValueError: the affine is not 4x4 or has a zero-length axis.

    Example:
        >>> ras_affine_to_itk(np.diag([2.0, 2.0, 3.0, 1.0]))[0]
        [2.0, 2.0, 3.0]
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {a.shape}.")
    lin = a[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"affine has a zero-length voxel axis (spacing {spacing.tolist()}).")
    return [float(s) for s in spacing], [float(v) for v in _RAS_TO_LPS @ a[:3, 3]], _RAS_TO_LPS @ (lin / spacing)


def _itk_image(arr: np.ndarray, affine: np.ndarray):  # type: ignore[no-untyped-def]
    """(X, Y, Z) array + RAS affine -> ``itk.Image[F, 3]`` (``[UC, 3]`` for uint8/bool) with LPS geometry."""
    import itk

    # arr is (X, Y, Z); ITK's numpy view is (Z, Y, X)
    # one copy: the transpose into ITK's (Z, Y, X) order, already in the target dtype
    # (uint8/bool masks become uint8; everything else float32)
    dtype = np.uint8 if arr.dtype in (np.uint8, np.bool_) else np.float32
    img = itk.image_from_array(np.ascontiguousarray(arr.transpose(2, 1, 0), dtype=dtype))
    spacing, origin, direction = ras_affine_to_itk(affine)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    return img


#: Target voxel size (mm) of the grid N4 fits on; see :func:`fit_shrink_factors` and docs/benchmarks.md.
DEFAULT_FIT_SPACING_MM = 8.0
#: Default iterations per fitting level (its length is the number of levels).
DEFAULT_ITERATIONS = (50, 50)


def fit_shrink_factors(
    spacing: Sequence[float], fit_spacing_mm: float = DEFAULT_FIT_SPACING_MM, shape: Sequence[int] | None = None
) -> list[int]:
    """Per-axis integer shrink factors bringing voxels of ``spacing`` mm to about ``fit_spacing_mm``.

    ``factor = max(1, round(fit_spacing_mm / spacing))`` per axis, so the fitting grid (and
    N4's cost, which grows with its voxel count) depends on the field of view, not on the
    resolution: a 0.6 mm and a 1.6 mm acquisition of the same breast are fitted on about the
    same grid. Axes already coarser than the target are not shrunk. With ``shape`` given, a
    factor never leaves fewer than 8 voxels on its axis (``n // 8``; small images stay
    fittable: ITK's N4 fails on a grid smaller than its B-spline support).

    Args:
        spacing: voxel size per axis (mm).
        fit_spacing_mm: target voxel size of the fitting grid (mm, > 0).
        shape: optional image size per axis (voxels), to cap the factors as above.

    Returns:
        One integer factor >= 1 per axis.

    Raises:
        ValueError: ``fit_spacing_mm`` or a spacing is not > 0.

    Example:
        >>> fit_shrink_factors((0.7, 0.7, 2.0), 8.0)
        [11, 11, 4]
    """
    if not fit_spacing_mm > 0:
        raise ValueError(f"fit_spacing_mm must be > 0, got {fit_spacing_mm!r}.")
    if any(not s > 0 for s in spacing):
        raise ValueError(f"spacing must be positive (mm), got {list(spacing)!r}.")
    factors = [max(1, int(round(fit_spacing_mm / float(s)))) for s in spacing]
    if shape is not None:
        factors = [max(1, min(f, int(n) // 8)) for f, n in zip(factors, shape)]
    return factors


def default_mask_threshold(arr: np.ndarray, fraction: float = 0.05) -> float:
    """``fraction`` x the 99th percentile of ``arr``: the default N4 fitting mask keeps the voxels above it."""
    return float(np.percentile(arr, 99)) * fraction


def default_body_mask(arr: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Voxels above ``fraction`` x the 99th percentile of ``arr`` (the default N4 fitting mask)."""
    return arr > default_mask_threshold(arr, fraction)


def shrink_slices(shape: Sequence[int], factors: Sequence[int]) -> tuple[slice, ...]:
    """The voxels ``itk.ShrinkImageFilter`` keeps, as slices: a numpy view shrinks without a copy.

    ITK keeps ``M = floor(n / f)`` voxels per axis, every ``f``-th one, placed so that the
    physical centres of the input and the shrunk grid coincide: output voxel ``o`` is input
    voxel ``o * f + round_half_up((n - 1) / 2 - (M - 1) * f / 2)``. A test checks the result
    against ITK's filter.

    Args:
        shape: image size per axis (voxels).
        factors: integer shrink factor per axis (>= 1).

    Returns:
        One slice per axis.

    Example:
        >>> shrink_slices((10,), (3,))
        (slice(1, 8, 3),)
    """
    out = []
    for n, f in zip(shape, factors):
        m = max(1, int(n) // int(f))
        first = int(np.floor((int(n) - 1) / 2 - (m - 1) * int(f) / 2 + 0.5))
        out.append(slice(first, first + (m - 1) * int(f) + 1, int(f)))
    return tuple(out)


def _itk_shrink_plan(shape: Sequence[int], affine: np.ndarray, factors: Sequence[int]):  # type: ignore[no-untyped-def]
    """Slices of the voxels ``itk.ShrinkImageFilter`` keeps, and the shrunk grid's ITK geometry.

    ITK's own arithmetic on an image header without a buffer (nothing of full size is
    allocated): ``GenerateOutputInformation`` gives the shrunk grid, and the first kept voxel
    is found as the filter finds it (output voxel 0 -> physical point -> input index, rounded).
    On an oblique grid whose centred offset is a half voxel, that float round trip decides
    which neighbour is kept, which :func:`shrink_slices` cannot know; this follows ITK exactly.
    """
    import itk

    image_type = itk.Image[itk.F, 3]
    full = image_type.New()
    full.SetRegions([int(n) for n in shape])
    spacing, origin, direction = ras_affine_to_itk(affine)
    full.SetSpacing(spacing)
    full.SetOrigin(origin)
    full.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    f = itk.ShrinkImageFilter[image_type, image_type].New(Input=full, ShrinkFactors=[int(x) for x in factors])
    f.UpdateOutputInformation()
    out = f.GetOutput()
    start = out.GetLargestPossibleRegion().GetIndex()
    size = out.GetLargestPossibleRegion().GetSize()
    first = full.TransformPhysicalPointToIndex(out.TransformIndexToPhysicalPoint(start))
    slices = []
    for i in range(3):
        o = max(0, int(first[i]) - int(start[i]) * int(factors[i]))
        slices.append(slice(o, o + (int(size[i]) - 1) * int(factors[i]) + 1, int(factors[i])))
    return tuple(slices), out


def _shrunk_itk_image(arr: np.ndarray, affine: np.ndarray, factors: Sequence[int], plan=None):  # type: ignore[no-untyped-def]
    """``itk.shrink_image_filter(_itk_image(arr, affine), factors)`` without building the full-size ITK image."""
    sl, info = plan if plan is not None else _itk_shrink_plan(arr.shape, affine, factors)
    small = _itk_image(arr[sl], affine)
    small.SetSpacing(info.GetSpacing())
    small.SetOrigin(info.GetOrigin())
    small.SetDirection(info.GetDirection())
    return small


def bspline_basis(n: int, n_control: int, order: int = 3) -> np.ndarray:
    """(n, n_control) weights of a uniform B-spline lattice axis evaluated on ``n`` grid points.

    ITK's ``BSplineControlPointImageFilter`` convention: the ``S = n_control - order`` spans
    cover the grid from the first to the last voxel centre, voxel ``i`` sits at parametric
    ``u = S * i / (n - 1)`` (the last one just below ``S``), and the knots are the integers
    ``-order .. S + order`` (an open uniform B-spline, no clamping).

    Args:
        n: grid points on the axis (voxels).
        n_control: control points on the axis (> ``order``).
        order: spline order (3: cubic).

    Returns:
        float64 array; each row sums to 1.

    Example:
        >>> bspline_basis(5, 4).sum(axis=1).round(12).tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    from scipy.interpolate import BSpline

    spans = int(n_control) - int(order)
    u = spans * np.arange(n, dtype=np.float64) / max(int(n) - 1, 1)
    u[-1] = np.nextafter(float(spans), 0.0)
    knots = np.arange(-order, spans + order + 1, dtype=np.float64)
    return BSpline.design_matrix(u, knots, int(order)).toarray()


def evaluate_lattice(lattice: np.ndarray, shape: Sequence[int], order: int = 3) -> np.ndarray:
    """A B-spline control-point lattice (cx, cy, cz) evaluated on a full grid ``shape`` (X, Y, Z).

    A tensor-product B-spline is separable: ``f[x, y, z] = sum_ijk c[i, j, k] Bx[x, i] By[y, j]
    Bz[z, k]`` is three small matrix products (z, then y, then x), ``X*Y*Z*cx`` multiply-adds
    for the last one, instead of ITK's per-voxel evaluation of ``(order + 1)^3`` weights. It
    gives ITK's ``ReconstructBiasField`` on the same grid within float32 rounding (tested).

    Args:
        lattice: control-point values (cx, cy, cz).
        shape: output grid (X, Y, Z).
        order: spline order.

    Returns:
        float32 array of ``shape``.
    """
    bx, by, bz = (torch.from_numpy(bspline_basis(n, c, order)).float() for n, c in zip(shape, lattice.shape))
    c = torch.from_numpy(np.ascontiguousarray(lattice, dtype=np.float32))
    c = torch.einsum("ijk,zk->ijz", c, bz)
    c = torch.einsum("ijz,yj->iyz", c, by)
    # the full-size product written straight into a C-ordered (X, Y, Z) result: no second full-size copy
    return (bx @ c.reshape(c.shape[0], -1)).reshape(*shape).numpy()


def n4_log_bias(
    arr: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray | None = None,
    shrink: int | None = None,
    iterations: Sequence[int] = DEFAULT_ITERATIONS,
    spline_distance_mm: float = 300.0,
    convergence: float = 1e-3,
    control_points: Sequence[int] | None = None,
    fit_spacing_mm: float = DEFAULT_FIT_SPACING_MM,
    spline_order: int = 3,
) -> np.ndarray:
    """Fit N4 on ``arr`` (X, Y, Z) and return the full-resolution log bias field (X, Y, Z).

    Only the shrunk grid goes to ITK (a strided view of ``arr`` copied: the voxels ITK's
``ShrinkImageFilter`` keeps, found with ITK's own geometry arithmetic),
    the fitted lattice comes back and is evaluated on the full grid here
    (:func:`evaluate_lattice`): same field as ITK's ``ShrinkImageFilter`` + N4 +
    ``ReconstructBiasField``, without two full-size copies into ITK and its per-voxel evaluation.

    Args:
        arr: image intensities (X, Y, Z).
        affine: (4, 4) RAS affine of ``arr`` (mm).
        mask: boolean fitting mask (X, Y, Z); default :func:`default_body_mask`.
        shrink: shrink factor for the fit (every axis); ``None`` (default) derives one factor
            per axis from ``fit_spacing_mm`` (:func:`fit_shrink_factors`).
        iterations: iterations per fitting level; its length is the number of levels.
        spline_distance_mm: control-point spacing (mm); the mesh size per axis is
            ``ceil(extent_mm / spline_distance_mm)`` and the control points that plus 3 (cubic).
        convergence: N4 convergence threshold.
        control_points: control points per axis (>= 4), overrides ``spline_distance_mm``.
        fit_spacing_mm: target voxel size of the fitting grid (mm) when ``shrink`` is ``None``.
        spline_order: B-spline order of the field (ITK default 3); the control points per
            axis are then the mesh size plus ``spline_order``.

    Returns:
        float32 array (X, Y, Z), natural log of the multiplicative bias.

    Raises:
        ValueError: the fitting mask is empty; a bad ``spline_order`` or ``fit_spacing_mm``.
    """
    import itk

    if isinstance(spline_order, bool) or not isinstance(spline_order, int) or not 1 <= spline_order <= 5:
        raise ValueError(f"spline_order must be an integer in 1..5, got {spline_order!r}.")
    spacing = ras_affine_to_itk(affine)[0]
    factors = [int(shrink)] * 3 if shrink is not None else fit_shrink_factors(spacing, fit_spacing_mm, arr.shape)
    plan = _itk_shrink_plan(arr.shape, affine, factors)
    sl = plan[0]
    # the default rule's threshold comes from the full image; only the kept voxels are compared
    small_mask = arr[sl] > default_mask_threshold(arr) if mask is None else np.asarray(mask, dtype=bool)[sl]
    if not small_mask.any():
        raise ValueError("the N4 fitting mask is empty (no voxel to fit the bias on).")
    small = _shrunk_itk_image(arr, affine, factors, plan)
    small_m = _itk_image(np.ascontiguousarray(small_mask).view(np.uint8), np.eye(4))
    small_m.CopyInformation(small)
    n4 = itk.N4BiasFieldCorrectionImageFilter[type(small), type(small_m), type(small)].New()
    n4.SetInput(small)
    n4.SetMaskImage(small_m)
    n4.SetNumberOfFittingLevels(len(iterations))
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(convergence)
    if control_points is None:
        extent = np.array(arr.shape) * np.array(spacing)
        n_ctrl = [max(spline_order + 1, int(np.ceil(e / spline_distance_mm)) + spline_order) for e in extent]
    else:
        n_ctrl = [int(c) for c in control_points]
    n4.SetSplineOrder(int(spline_order))
    n4.SetNumberOfControlPoints(n_ctrl)
    n4.Update()
    lat = n4.GetLogBiasFieldControlPointLattice()
    size = [int(v) for v in lat.GetLargestPossibleRegion().GetSize()]
    lattice = np.array([[[lat.GetPixel([i, j, k])[0] for k in range(size[2])] for j in range(size[1])] for i in range(size[0])])
    return evaluate_lattice(lattice, arr.shape, spline_order)


def _plain_float(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    return (t.as_tensor() if isinstance(t, MetaTensor) else t).float()


class N4BiasFieldCorrection(Transform):
    """N4 bias field correction of a channel-first 3D image (C, X, Y, Z).

    ``out[c] = img[c] / exp(log_bias)``. With ``reference_channel`` set (default 0) the field
    is estimated on that channel and divided out of every channel: in DCE the coil
    sensitivity is shared by all phases of a patient, and one field keeps the relative
    enhancement between phases exactly intact (per-phase fields would each absorb a bit of
    the contrast uptake). ``reference_channel=None`` fits and corrects each channel on its own.

    Args:
        shrink: shrink factor for the fit on every axis; ``None`` (default) chooses one factor
            per axis from ``fit_spacing_mm`` (:func:`fit_shrink_factors`), so the fitting grid
            stays about the same whatever the resolution.
        fit_spacing_mm: target voxel size (mm) of the fitting grid when ``shrink`` is ``None``.
        iterations: iterations per fitting level (its length is the number of levels).
        spline_distance_mm: B-spline control-point spacing, mm. 300 mm: one B-spline span
            over a breast field of view (ITK's own default of 4 control points); finer spacings
            let the field absorb tissue contrast (docs/benchmarks.md).
        control_points: control points per axis (3 integers >= 4); overrides ``spline_distance_mm``.
        convergence: N4 convergence threshold (> 0).
        reference_channel: channel the field is estimated on, or ``None`` for one field per channel.
        spacing: voxel size (mm) for a bare tensor/array (RAS axes, no rotation, assumed then).
            Ignored for a MetaTensor, whose affine is used.
        return_log_bias: return ``(corrected, log_bias)`` instead of ``corrected``; the log
            bias has one channel (or one per channel with ``reference_channel=None``).

    Outputs are MetaTensors carrying the input's affine, meta and transform trace (for a bare
    input, the affine ``diag(spacing)`` that was assumed); plain tensors under
    ``set_track_meta(False)``.

    Raises:
        ValueError: bad arguments (at construction); non-3D input, NaN/Inf voxels, bare
            tensor without ``spacing``, bad mask, empty fitting mask (at call).

    Example:
        >>> out = N4BiasFieldCorrection()(t1pre)  # t1pre: MetaTensor (1, X, Y, Z)  # doctest: +SKIP
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        shrink: int | None = None,
        iterations: Sequence[int] = DEFAULT_ITERATIONS,
        spline_distance_mm: float = 300.0,
        convergence: float = 1e-3,
        reference_channel: int | None = 0,
        spacing: Sequence[float] | None = None,
        return_log_bias: bool = False,
        control_points: Sequence[int] | None = None,
        fit_spacing_mm: float = DEFAULT_FIT_SPACING_MM,
    ) -> None:
        if shrink is not None and (isinstance(shrink, bool) or not isinstance(shrink, int) or shrink < 1):
            raise ValueError(f"shrink must be an integer >= 1 or None, got {shrink!r}.")
        if isinstance(fit_spacing_mm, bool) or not isinstance(fit_spacing_mm, (int, float)) or not fit_spacing_mm > 0:
            raise ValueError(f"fit_spacing_mm must be a number > 0 (mm), got {fit_spacing_mm!r}.")
        if isinstance(iterations, (str, bytes)) or not isinstance(iterations, Sequence) or not iterations or any(int(i) < 1 for i in iterations):
            raise ValueError(f"iterations must list >= 1 iterations per level, got {iterations!r}.")
        if not spline_distance_mm > 0:
            raise ValueError(f"spline_distance_mm must be > 0, got {spline_distance_mm!r}.")
        if not convergence > 0:
            raise ValueError(f"convergence must be > 0, got {convergence!r}.")
        if control_points is not None and (len(control_points) != 3 or any(int(c) < 4 for c in control_points)):
            raise ValueError(f"control_points must be three integers >= 4 (cubic B-spline), got {control_points!r}.")
        if spacing is not None and (len(spacing) != 3 or any(not s > 0 for s in spacing)):
            raise ValueError(f"spacing must be three positive numbers (mm), got {spacing!r}.")
        if reference_channel is not None and (isinstance(reference_channel, bool) or not isinstance(reference_channel, int) or reference_channel < 0):
            raise ValueError(f"reference_channel must be a channel index >= 0 or None, got {reference_channel!r}.")
        self.kw: dict[str, Any] = {
            "shrink": shrink,
            "iterations": tuple(int(i) for i in iterations),
            "spline_distance_mm": float(spline_distance_mm),
            "convergence": float(convergence),
            "control_points": None if control_points is None else tuple(int(c) for c in control_points),
            "fit_spacing_mm": float(fit_spacing_mm),
        }
        self.reference_channel, self.spacing, self.return_log_bias = reference_channel, spacing, return_log_bias

    def __call__(self, img: Any, mask: Any | None = None, case: str = "input") -> Any:
        """Correct ``img``; ``mask`` (1, X, Y, Z) binary restricts the fit; ``case`` labels errors."""
        x, log_bias, affine = self._fit(img, mask, case)
        out = x / torch.exp(log_bias)
        out, log_bias = wrap_like(out, img), wrap_like(log_bias, img)
        if not isinstance(img, MetaTensor):  # a bare input: record the geometry N4 assumed (diag(spacing))
            for t in (out, log_bias):
                if isinstance(t, MetaTensor):
                    t.affine = torch.as_tensor(affine, dtype=torch.float64)
        if not self.return_log_bias:
            return out
        return out, log_bias

    def log_bias(self, img: Any, mask: Any | None = None, case: str = "input") -> torch.Tensor:
        """The fitted log bias field only (C', X, Y, Z) as a plain float32 tensor; nothing is corrected."""
        return self._fit(img, mask, case)[1]

    def _fit(self, img: Any, mask: Any | None, case: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        check_spatial_dims(img, 3, "img", case)
        check_finite(img, "img", case)
        if isinstance(img, MetaTensor):
            affine = np.asarray(img.affine, dtype=np.float64)
        elif self.spacing is not None:
            affine = np.diag([float(s) for s in self.spacing] + [1.0])
        else:
            raise ValueError(
                f"{case}: N4BiasFieldCorrection needs the image geometry: pass a MetaTensor (with its affine) "
                f"or give spacing=(sx, sy, sz); got a bare {type(img).__name__} of shape {tuple(img.shape)}."
            )
        if self.reference_channel is not None and self.reference_channel >= img.shape[0]:
            raise ValueError(f"{case}: reference_channel={self.reference_channel} but the image has {img.shape[0]} channel(s).")
        m = None
        if mask is not None:
            check_spatial_dims(mask, 3, "mask", case)
            if tuple(mask.shape[1:]) != tuple(img.shape[1:]) or mask.shape[0] != 1:
                raise ValueError(f"{case}: 'mask' must have shape (1, {', '.join(map(str, img.shape[1:]))}), got {tuple(mask.shape)}.")
            check_binary_mask(mask, "mask", case)
            m = _plain_float(mask)[0].numpy() > 0
        x = _plain_float(img)
        channels = [self.reference_channel] if self.reference_channel is not None else list(range(x.shape[0]))
        try:
            fields = [torch.from_numpy(n4_log_bias(x[c].numpy(), affine, m, **self.kw)) for c in channels]
        except ValueError as e:
            raise ValueError(f"{case}: {e}") from None
        return x, (fields[0][None] if len(fields) == 1 else torch.stack(fields)), affine


class N4BiasFieldCorrectiond(MapTransform):
    """Dictionary form: estimate the bias on ``reference_key`` and divide it out of every key.

    Args:
        keys: images corrected (e.g. all DCE phases of a patient); all on the reference's grid.
        reference_key: image the field is fitted on (default ``T1pre``; it need not be in ``keys``).
        mask_key: optional body/breast mask key restricting the fit (default rule otherwise).
        log_bias_key: if set, the log bias field (1, X, Y, Z) is written there
            (e.g. ``"T1pre_log_bias"``).
        allow_missing_keys: skip keys of ``keys`` that are absent.
        inplace: divide float32 images in place (as ``torchvision``'s ``Normalize(inplace=True)``):
            the input dictionary's tensors then hold the corrected values too. For pipelines
            that own their data (right after ``LoadImaged``): a 448x448x160 case then needs no
            second float32 copy of every phase at once (docs/benchmarks.md). Other dtypes get
            a new float32 tensor either way.
        **kwargs: :class:`N4BiasFieldCorrection` arguments (``reference_channel`` is fixed to 0).

    Raises:
        KeyError: the reference or mask key is missing (message lists the available keys).
        ValueError: see :class:`N4BiasFieldCorrection`; a key on another grid than the reference.

    Example:
        >>> N4BiasFieldCorrectiond(["T1pre", "T1post1", "T1post2"], log_bias_key="T1pre_log_bias")  # doctest: +SKIP
    """

    backend = N4BiasFieldCorrection.backend

    def __init__(self, keys: Any, reference_key: str = "T1pre", mask_key: str | None = None, log_bias_key: str | None = None, allow_missing_keys: bool = False,
                 inplace: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inplace = bool(inplace)
        if "reference_channel" in kwargs:
            raise ValueError("reference_channel is not an option of N4BiasFieldCorrectiond: the field is fitted on reference_key.")
        self.reference_key, self.mask_key, self.log_bias_key = reference_key, mask_key, log_bias_key
        self.op = N4BiasFieldCorrection(return_log_bias=True, **kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = case_label(d)
        for what, k in (("N4 reference key", self.reference_key), ("N4 mask key", self.mask_key)):
            if k is not None and k not in d:
                raise KeyError(f"{case}: missing {what} {k!r}; available: {sorted(map(str, d))}.")
        ref = d[self.reference_key]
        log_bias = self.op.log_bias(ref, d[self.mask_key] if self.mask_key else None, case)
        if self.log_bias_key:
            d[self.log_bias_key] = wrap_like(log_bias, ref)
            field = torch.exp(log_bias)
        else:  # the log bias is not kept: exponentiate in place (one full-size volume fewer at the peak)
            field = log_bias.exp_()
        keys = list(self.key_iterator(d))
        for k in keys:  # every key checked before any is divided (in place or not)
            v = d[k]
            if tuple(v.shape[1:]) != tuple(field.shape[1:]):
                raise ValueError(f"{case}: {k!r} has spatial shape {tuple(v.shape[1:])}, the N4 reference {self.reference_key!r} {tuple(field.shape[1:])}.")
            if v is not ref:  # the reference was checked by the fit
                check_finite(v, str(k), case)
        divide_keys(d, keys, field, self.inplace)
        return d


def bias_correction(keys: Sequence[str], enabled: bool = True, inplace: bool = True, **kwargs: Any) -> Any:
    """The N4 step of a bundle pipeline: every T1- and T2-weighted image of ``keys`` corrected.

    Seed 1 (Haarburger et al. 2018, section 2.2) corrects "all T1- and T2-weighted images using
    N4ITK" before rescaling. Here the T1 phases (``T1pre``, ``T1post<k>``) share ONE field
    fitted on ``T1pre``: the coil sensitivity is the patient's, not the phase's, and one field
    keeps every ratio between phases (the relative enhancement) exactly; ``T2``, another
    contrast and often another grid, gets its own field. Other keys (label maps, masks,
    ``sub``) are left alone: subtract after this step.

    Args:
        keys: the keys a pipeline loads (e.g. the bundle's ``load_keys``).
        enabled: ``False`` gives a no-op (an empty ``Compose``).
        inplace: correct the loaded float32 images in place (default: the step follows
            ``LoadImaged``, so the pipeline owns them); see :class:`N4BiasFieldCorrectiond`.
        **kwargs: :class:`N4BiasFieldCorrection` settings for both fields.

    Returns:
        A dictionary transform.

    Raises:
        ValueError: ``enabled`` is not a bool; T1 phases without ``T1pre`` to fit on.

    Example:
        >>> bias_correction(["T1pre", "T1post1", "label_map"])  # doctest: +SKIP
        Compose(...)
    """
    from monai.transforms import Compose

    from dce_monai.sequences import PRE, T2, is_post

    if not isinstance(enabled, bool):
        raise ValueError(f"bias_correction must be true or false, got {enabled!r}.")
    t1 = [k for k in keys if k == PRE or is_post(k)]
    steps: list[Any] = []
    if enabled and t1:
        if PRE not in t1:
            raise ValueError(f"bias correction fits the T1 field on {PRE!r}, which is not among the keys {list(keys)}.")
        steps.append(N4BiasFieldCorrectiond(t1, reference_key=PRE, inplace=inplace, **kwargs))
    if enabled and T2 in keys:
        steps.append(N4BiasFieldCorrectiond([T2], reference_key=T2, inplace=inplace, **kwargs))
    return Compose(steps)
