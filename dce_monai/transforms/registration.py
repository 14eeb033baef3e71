"""Rigid registration of post-contrast phases to the pre-contrast image (ITK).

Patients move between the phases of a DCE exam; a shift of a few millimetres turns every
edge (skin, fat/gland boundaries, chest wall) into a bright/dark rim in the subtraction image
``T1post1 - T1pre`` and in every enhancement map. This module estimates, for each phase, the
rigid transform that maps the pre-contrast (fixed) image onto the phase (moving) and
resamples the phase onto the pre-contrast grid, so that it runs BEFORE subtraction.

Method (all ITK, ``itk.ImageRegistrationMethodv4``):

- transform: ``itk.Euler3DTransform`` (3 rotations + 3 translations) centred on the fixed
  image's centre, started at identity (all phases of an exam share the patient position);
  ``transform="translation"`` uses ``itk.TranslationTransform`` (3 parameters);
- metric: Mattes mutual information (``MattesMutualInformationImageToImageMetricv4``, 32 bins):
  contrast uptake changes intensities between phases, so a sum-of-squares metric would pull
  enhancing tissue towards a wrong alignment; MI only needs the intensities to stay related;
- optimiser: regular-step gradient descent with parameter scales estimated from physical
  shifts (``RegistrationParameterScalesFromPhysicalShift``), so radians and mm are balanced;
- multi-resolution: shrink factors (4, 2, 1) with Gaussian smoothing (2, 1, 1) voxels.
  Smoothing 1 voxel at full resolution: with less, an occasional phase stays stuck about
  0.9 mm off (mutual information of a randomly sampled noisy image with linear interpolation
  has local optima); over the 24 phases of the 6 patients of ``dce-monai phantom --seed 0
  --motion-mm 2`` the worst error was 0.93 mm with sigma 0.5 and 0.10 mm with sigma 1 (mean
  0.071 mm; ``benchmarks/bench_registration.py --motion 2 --smoothing 2 1 0.5`` and without
  ``--smoothing``);
- metric sampling: a fixed-seed random 25 % of the voxels per level (``sampling_fraction``),
  at most 200,000 per level (``max_samples``), which keeps the result reproducible and the run
  at seconds per phase on the demo phantom (128x128x32; figures in docs/benchmarks.md,
  ``benchmarks/bench_registration.py``). A full-size exam (512x512x96 at 0.7x0.7x1.1 mm) took
  87 s per phase in a run not repeated since (error 0.003 mm), over 3.5 minutes without the
  cap; ``shrink_factors=(4, 2)`` with ``smoothing_sigmas=(2, 1)`` skips the full-resolution
  level for such exams.

Resampling: linear interpolation with ``itk.ResampleImageFilter`` onto the fixed grid. Voxels
whose source lies outside the moving image take the value of the nearest edge voxel (the
moving image is edge-padded first, by exactly as many voxels as the transform needs; ITK's
Python wrapping has no nearest-neighbour extrapolator): a zero fill would draw a false dark
band into the subtraction at the edge slices.

Geometry: the MetaTensor's RAS affine is converted to ITK's LPS geometry (as for N4); the
estimate is converted back and recorded in RAS mm under ``meta["registration"]``:
``translation_mm`` (RAS, mm), ``rotation_rad`` (RAS, about the x, y, z axes, composed as
``R = Rz Rx Ry`` as in ITK's Euler3D), ``center_mm`` (RAS), ``fixed_to_moving`` (4x4 RAS
affine: a point ``p`` of the fixed image corresponds to ``fixed_to_moving @ p`` in the
moving image, i.e. the moving image's content is displaced by ``translation_mm`` when there
is no rotation), ``metric`` (final Mattes MI value, negative: lower is better, evaluated on all voxels
of the fixed image shrunk to at most about 2 million voxels), ``metric_identity`` (the same
before registration), ``iterations``,
``stop_condition`` and ``time_s``.

Why hand-written code here: MONAI has no intensity-based registration; the code is only the
ITK pipeline set-up, the RAS/LPS bookkeeping and the edge padding, which ITK's Python wrapping
does not offer as one call.

Measured on phantom cohorts with ``motion_mm`` (see docs/transforms.md).

Reference: Mattes D et al. "PET-CT image registration in the chest using free-form
deformations." IEEE TMI 22(1), 2003; Avants BB et al. "The Insight ToolKit image registration
framework." Front Neuroinform 8:44, 2014.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, look_up_option

from dce_monai.sequences import PRE, SUB, is_post, post_index
from dce_monai.transforms.bias_field import _itk_image
from dce_monai.transforms.utils import case_label, check_finite, check_spatial_dims

__all__ = ["RegisterPhases", "RegisterPhasesd", "phase_registration", "register_rigid"]

_F = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS
TRANSFORMS = ("rigid", "translation")
INTERPOLATIONS = ("linear", "bspline")


def _plain(x: Any) -> np.ndarray:
    t = x.as_tensor() if isinstance(x, MetaTensor) else x
    return np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float32)


def _centre_ras(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    return (affine @ np.r_[(np.asarray(shape, float) - 1) / 2, 1.0])[:3]


def _edge_padded(arr: np.ndarray, affine: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge-replicate ``arr`` by ``lo``/``hi`` voxels per axis; return it and its affine."""
    lo, hi = np.maximum(lo, 0).astype(int), np.maximum(hi, 0).astype(int)
    if not (lo.any() or hi.any()):
        return arr, affine
    out = np.pad(arr, list(zip(lo, hi)), mode="edge")
    aff = affine.copy()
    aff[:3, 3] = (affine @ np.r_[-lo, 1.0])[:3]
    return out, aff


def register_rigid(
    fixed: np.ndarray,
    moving: np.ndarray,
    fixed_affine: np.ndarray,
    moving_affine: np.ndarray | None = None,
    transform: str = "rigid",
    shrink_factors: Sequence[int] = (4, 2, 1),
    smoothing_sigmas: Sequence[float] = (2.0, 1.0, 1.0),
    iterations: int = 100,
    histogram_bins: int = 32,
    sampling_fraction: float = 0.25,
    learning_rate: float = 1.0,
    min_step: float = 1e-3,
    seed: int = 0,
    interpolation: str = "linear",
    max_samples: int = 200_000,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Register ``moving`` (X, Y, Z) to ``fixed`` (X, Y, Z) and resample it onto the fixed grid.

    Args:
        fixed: fixed (reference) image, e.g. T1pre, (X, Y, Z).
        moving: moving image, e.g. a post-contrast phase, (X', Y', Z').
        fixed_affine: (4, 4) RAS affine of ``fixed`` (mm).
        moving_affine: (4, 4) RAS affine of ``moving``; default ``fixed_affine``.
        transform: ``"rigid"`` (Euler3D) or ``"translation"``.
        shrink_factors: shrink factor per resolution level (coarse to fine).
        smoothing_sigmas: Gaussian sigma per level, voxels (same length as ``shrink_factors``).
        iterations: maximum optimiser iterations per level.
        histogram_bins: Mattes MI histogram bins.
        sampling_fraction: fraction of voxels the metric samples (random, fixed seed); 1 = all.
        learning_rate: initial step of the regular-step gradient descent (scaled units).
        min_step: step length at which the optimiser stops.
        seed: seed of the metric's random sampling.
        interpolation: resampling of the moving image, ``"linear"`` or ``"bspline"`` (cubic).
        max_samples: at most this many metric samples per level (the fraction is lowered on
            large levels; a full-size exam has 25 million voxels at full resolution).

    Returns:
        ``(resampled, info)``: the moving image on the fixed grid, float32 (X, Y, Z), and the
        estimate in RAS (see the module docstring for the keys).

    Example:
        >>> out, info = register_rigid(pre, post, affine)  # doctest: +SKIP
        >>> info["translation_mm"]  # RAS mm: the phase's content relative to pre  # doctest: +SKIP
    """
    import itk

    t0 = time.perf_counter()
    moving_affine = fixed_affine if moving_affine is None else moving_affine
    fixed = np.ascontiguousarray(fixed, dtype=np.float32)
    moving = np.ascontiguousarray(moving, dtype=np.float32)
    f_img = _itk_image(fixed, fixed_affine)
    m_img = _itk_image(moving, moving_affine)
    image_t = type(f_img)
    centre_ras = _centre_ras(fixed.shape, fixed_affine)
    centre_lps = _F @ centre_ras
    if transform == "rigid":
        tfm = itk.Euler3DTransform[itk.D].New()
        tfm.SetCenter([float(v) for v in centre_lps])
    else:
        tfm = itk.TranslationTransform[itk.D, 3].New()
    tfm.SetIdentity()

    metric = itk.MattesMutualInformationImageToImageMetricv4[image_t, image_t].New()
    metric.SetNumberOfHistogramBins(int(histogram_bins))
    scales = itk.RegistrationParameterScalesFromPhysicalShift[type(metric)].New()
    scales.SetMetric(metric)
    opt = itk.RegularStepGradientDescentOptimizerv4[itk.D].New()
    opt.SetLearningRate(float(learning_rate))
    opt.SetMinimumStepLength(float(min_step))
    opt.SetNumberOfIterations(int(iterations))
    opt.SetRelaxationFactor(0.5)
    opt.SetScalesEstimator(scales)
    opt.SetReturnBestParametersAndValue(True)

    reg = itk.ImageRegistrationMethodv4[image_t, image_t].New()
    reg.SetFixedImage(f_img)
    reg.SetMovingImage(m_img)
    reg.SetMetric(metric)
    reg.SetOptimizer(opt)
    reg.SetInitialTransform(tfm)
    reg.InPlaceOn()
    reg.SetNumberOfLevels(len(shrink_factors))
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink_factors])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas])
    reg.SetSmoothingSigmasAreSpecifiedInPhysicalUnits(False)
    n_level = [float(np.prod(np.ceil(np.asarray(fixed.shape) / s))) for s in shrink_factors]
    pct = [min(float(sampling_fraction), max_samples / n) for n in n_level]
    if min(pct) < 1.0:
        reg.SetMetricSamplingStrategy(itk.ImageRegistrationMethodv4Enums.MetricSamplingStrategy_RANDOM)
        reg.SetMetricSamplingPercentagePerLevel(pct)
        reg.MetricSamplingReinitializeSeed(int(seed))

    # metric before and after, for the record: the same metric on all voxels of the images
    # shrunk to at most ~2 million voxels (a full-size exam at full resolution costs seconds)
    k = max(1, int(np.ceil((fixed.size / 2e6) ** (1 / 3))))
    f_probe = itk.shrink_image_filter(f_img, shrink_factors=[k] * 3) if k > 1 else f_img
    probe = itk.MattesMutualInformationImageToImageMetricv4[image_t, image_t].New()
    probe.SetNumberOfHistogramBins(int(histogram_bins))
    probe.SetFixedImage(f_probe)
    probe.SetMovingImage(m_img)
    probe.SetMovingTransform(itk.TranslationTransform[itk.D, 3].New())
    probe.Initialize()
    metric_identity = float(probe.GetValue())

    reg.Update()
    final = tfm  # optimised in place (InPlaceOn)
    params = np.asarray(final.GetParameters(), dtype=np.float64)
    if transform == "rigid":
        angles_lps, t_lps = params[:3], params[3:]
        rot_lps = np.asarray(itk.array_from_matrix(final.GetMatrix()), dtype=np.float64)
    else:
        angles_lps, t_lps = np.zeros(3), params
        rot_lps = np.eye(3)
    rot_ras = _F @ rot_lps @ _F
    t_ras = _F @ t_lps
    m = np.eye(4)
    m[:3, :3] = rot_ras
    m[:3, 3] = centre_ras + t_ras - rot_ras @ centre_ras

    probe.SetMovingTransform(final)
    probe.Initialize()
    metric_final = float(probe.GetValue())

    # edge-pad the moving image by exactly what the transform reaches outside it
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in fixed.shape], indexing="ij")).reshape(3, -1).T
    world = (fixed_affine @ np.c_[corners, np.ones(len(corners))].T).T @ m.T
    vox = (np.linalg.inv(moving_affine) @ world.T).T[:, :3]
    lo = np.ceil(-vox.min(0)) + 1
    hi = np.ceil(vox.max(0) - (np.asarray(moving.shape) - 1)) + 1
    padded, padded_aff = _edge_padded(moving, moving_affine, lo, hi)
    src = _itk_image(padded, padded_aff) if padded is not moving else m_img
    resampler = itk.ResampleImageFilter[image_t, image_t].New()
    resampler.SetInput(src)
    resampler.SetTransform(final)
    if interpolation == "bspline":
        interp = itk.BSplineInterpolateImageFunction[image_t, itk.D, itk.F].New()
        interp.SetSplineOrder(3)
    else:
        interp = itk.LinearInterpolateImageFunction[image_t, itk.D].New()
    resampler.SetInterpolator(interp)
    resampler.SetReferenceImage(f_img)
    resampler.UseReferenceImageOn()
    resampler.SetDefaultPixelValue(0.0)
    resampler.Update()
    out = np.ascontiguousarray(itk.array_from_image(resampler.GetOutput()).transpose(2, 1, 0)).astype(np.float32)
    if interpolation == "bspline":  # cubic B-splines overshoot at edges: keep the moving image's range
        out = np.clip(out, float(moving.min()), float(moving.max()))

    angles_ras = np.array([-angles_lps[0], -angles_lps[1], angles_lps[2]])
    info = {
        "method": f"itk ImageRegistrationMethodv4, {'Euler3D' if transform == 'rigid' else 'translation'}, Mattes MI",
        "transform": transform,
        "translation_mm": [float(v) for v in t_ras],
        "rotation_rad": [float(v) for v in angles_ras],
        "center_mm": [float(v) for v in centre_ras],
        "fixed_to_moving": m.tolist(),
        "metric": metric_final,
        "metric_identity": metric_identity,
        "iterations": int(opt.GetCurrentIteration()),
        "stop_condition": str(opt.GetStopConditionDescription()),
        "time_s": float(time.perf_counter() - t0),
    }
    return out, info


def _affine_of(img: Any, name: str, case: str, what: str) -> np.ndarray:
    if not isinstance(img, MetaTensor):
        raise ValueError(
            f"{case}: {what} needs the geometry of {name!r} (rotation centre and mm): pass a MetaTensor "
            f"with its affine (e.g. from LoadImaged + EnsureChannelFirstd); got a bare {type(img).__name__} "
            f"of shape {tuple(img.shape)}."
        )
    return np.asarray(img.affine, dtype=np.float64)


class RegisterPhases(Transform):
    """Rigidly register every channel of ``img`` to ``fixed`` and resample it onto ``fixed``'s grid.

    ``out[c](p) = img[c](T_c(p))`` for each voxel centre ``p`` of the fixed grid, with ``T_c``
    the rigid (or translation) transform that maximises Mattes mutual information between
    ``fixed`` and ``img[c]`` (see the module docstring for the method, units and timings).
    The output is a float32 MetaTensor with ``fixed``'s affine and ``img``'s other meta, plus
    ``meta["registration"]``: one dict (single channel) or a list of dicts (one per channel)
    with the estimate in RAS mm / rad.

    Args:
        transform: ``"rigid"`` (Euler3D: 3 rotations + 3 translations) or ``"translation"``.
        shrink_factors: shrink factor per resolution level, coarse to fine (integers >= 1).
        smoothing_sigmas: Gaussian smoothing per level, voxels (>= 0), one per level.
        iterations: maximum optimiser iterations per level (>= 1).
        histogram_bins: Mattes MI histogram bins (>= 8).
        sampling_fraction: fraction of voxels sampled by the metric, in (0, 1].
        max_translation_mm: an estimate moving further than this (norm of ``translation_mm``)
            is refused with an error naming the case and key (a failed registration must not
            silently distort a phase); ``None`` accepts any.
        max_rotation_deg: same for the largest absolute rotation angle; ``None`` accepts any.
        seed: seed of the metric's random sampling (results are reproducible).
        interpolation: resampling of each phase onto the fixed grid: ``"linear"`` (default) or
            ``"bspline"`` (cubic, clipped to the phase's range; blurs edges less).
        max_samples: cap on the metric samples per resolution level (>= 1000); the sampling
            fraction is lowered on levels with more voxels.

    Raises:
        ValueError: bad arguments (at construction); bare tensors, non-3D input, NaN/Inf
            voxels, a one-channel ``fixed`` expected, an estimate beyond the limits (at call).

    Example:
        >>> reg = RegisterPhases()
        >>> post1_aligned = reg(post1, fixed=pre)  # MetaTensors (1, X, Y, Z)  # doctest: +SKIP
        >>> post1_aligned.meta["registration"]["translation_mm"]  # RAS mm  # doctest: +SKIP
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        transform: str = "rigid",
        shrink_factors: Sequence[int] = (4, 2, 1),
        smoothing_sigmas: Sequence[float] = (2.0, 1.0, 1.0),
        iterations: int = 100,
        histogram_bins: int = 32,
        sampling_fraction: float = 0.25,
        max_translation_mm: float | None = 30.0,
        max_rotation_deg: float | None = 15.0,
        seed: int = 0,
        interpolation: str = "linear",
        max_samples: int = 200_000,
    ) -> None:
        self.transform = look_up_option(transform, TRANSFORMS)
        self.interpolation = look_up_option(interpolation, INTERPOLATIONS)
        if (
            isinstance(shrink_factors, (str, bytes))
            or not isinstance(shrink_factors, Sequence)
            or not shrink_factors
            or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shrink_factors)
        ):
            raise ValueError(f"shrink_factors must be a non-empty sequence of integers >= 1, got {shrink_factors!r}.")
        if (
            isinstance(smoothing_sigmas, (str, bytes))
            or not isinstance(smoothing_sigmas, Sequence)
            or len(smoothing_sigmas) != len(shrink_factors)
            or any(not float(s) >= 0 for s in smoothing_sigmas)
        ):
            raise ValueError(
                f"smoothing_sigmas must give one sigma >= 0 (voxels) per level ({len(shrink_factors)} levels), "
                f"got {smoothing_sigmas!r}."
            )
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}.")
        if isinstance(histogram_bins, bool) or not isinstance(histogram_bins, int) or histogram_bins < 8:
            raise ValueError(f"histogram_bins must be an integer >= 8, got {histogram_bins!r}.")
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1000:
            raise ValueError(f"max_samples must be an integer >= 1000, got {max_samples!r}.")
        if not 0.0 < float(sampling_fraction) <= 1.0:
            raise ValueError(f"sampling_fraction must be in (0, 1], got {sampling_fraction!r}.")
        for name, v in (("max_translation_mm", max_translation_mm), ("max_rotation_deg", max_rotation_deg)):
            if v is not None and not float(v) > 0:
                raise ValueError(f"{name} must be > 0 or None, got {v!r}.")
        self.kw: dict[str, Any] = {
            "transform": self.transform,
            "shrink_factors": tuple(int(s) for s in shrink_factors),
            "smoothing_sigmas": tuple(float(s) for s in smoothing_sigmas),
            "iterations": int(iterations),
            "histogram_bins": int(histogram_bins),
            "sampling_fraction": float(sampling_fraction),
            "seed": int(seed),
            "interpolation": self.interpolation,
            "max_samples": int(max_samples),
        }
        self.max_translation_mm = None if max_translation_mm is None else float(max_translation_mm)
        self.max_rotation_deg = None if max_rotation_deg is None else float(max_rotation_deg)

    def __call__(self, img: Any, fixed: Any, case: str = "input", name: str = "img", fixed_name: str = "fixed") -> MetaTensor:
        """Register ``img`` (C, X, Y, Z) to ``fixed`` (1, X, Y, Z); ``case``/``name``/``fixed_name`` label errors."""
        for k, v in ((name, img), (fixed_name, fixed)):
            check_spatial_dims(v, 3, k, case)
        moving_aff = _affine_of(img, name, case, "RegisterPhases")
        fixed_aff = _affine_of(fixed, fixed_name, case, "RegisterPhases")
        if fixed.shape[0] != 1:
            raise ValueError(f"{case}: the fixed image {fixed_name!r} must have one channel, got shape {tuple(fixed.shape)}.")
        for k, v in ((name, img), (fixed_name, fixed)):
            check_finite(v, k, case)
        f = _plain(fixed)[0]
        x = _plain(img)
        outs, infos = [], []
        for c in range(x.shape[0]):
            out, info = register_rigid(f, x[c], fixed_aff, moving_aff, **self.kw)
            label = name if x.shape[0] == 1 else f"{name}[{c}]"
            shift = float(np.linalg.norm(info["translation_mm"]))
            if self.max_translation_mm is not None and shift > self.max_translation_mm:
                raise ValueError(
                    f"{case}: registration of {label!r} to {fixed_name!r} moved it by {shift:.1f} mm "
                    f"(translation {np.round(info['translation_mm'], 2).tolist()} mm), more than "
                    f"max_translation_mm={self.max_translation_mm}; check the images (wrong phase or patient?) "
                    "or raise the limit."
                )
            rot = float(np.degrees(np.abs(info["rotation_rad"]).max()))
            if self.max_rotation_deg is not None and rot > self.max_rotation_deg:
                raise ValueError(
                    f"{case}: registration of {label!r} to {fixed_name!r} rotated it by {rot:.1f} degrees, more than "
                    f"max_rotation_deg={self.max_rotation_deg}; check the images or raise the limit."
                )
            info["fixed"] = fixed_name
            outs.append(torch.from_numpy(out))
            infos.append(info)
        data = torch.stack(outs)
        meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
        meta.pop("affine", None)
        if "spatial_shape" in meta:
            meta["spatial_shape"] = np.asarray(data.shape[1:])
        meta["registration"] = infos[0] if len(infos) == 1 else infos
        return MetaTensor(data, affine=torch.as_tensor(fixed_aff, dtype=torch.float64), meta=meta)


class RegisterPhasesd(MapTransform):
    """Dictionary form: register every post-contrast phase of a case to ``fixed_key``.

    Each key is replaced by its registered version on the fixed grid (see
    :class:`RegisterPhases`); ``fixed_key`` itself is untouched. Run it before subtraction
    and enhancement maps: a ``sub`` key already in the dict (computed from unregistered
    phases) is an error. With ``info_key`` set, ``d[info_key]`` gets ``{phase: estimate}``
    for logging.

    Args:
        keys: phases to register; ``None`` (default) takes every ``T1post<k>`` key present.
        fixed_key: reference image (default ``T1pre``).
        info_key: optional key receiving a dict of the estimates per phase.
        allow_missing_keys: skip listed keys that are absent.
        **kwargs: :class:`RegisterPhases` arguments.

    Raises:
        KeyError: the fixed key or (unless allowed) a listed phase is missing; no post phase
            is present when ``keys`` is ``None``.
        ValueError: bad arguments; ``sub`` already computed; see :class:`RegisterPhases`.

    Example:
        >>> from monai.transforms import Compose, LoadImaged, EnsureChannelFirstd
        >>> keys = ["T1pre", "T1post1", "T1post2"]
        >>> pipe = Compose([LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys),
        ...                 RegisterPhasesd(), Subtractd()])  # doctest: +SKIP
    """

    backend = RegisterPhases.backend

    def __init__(
        self,
        keys: Sequence[Hashable] | Hashable | None = None,
        fixed_key: str = PRE,
        info_key: str | None = None,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        self.auto = keys is None
        super().__init__("T1post1" if keys is None else keys, allow_missing_keys)
        if not isinstance(fixed_key, str) or not fixed_key:
            raise ValueError(f"fixed_key must be a non-empty string, got {fixed_key!r}.")
        if not self.auto and fixed_key in self.keys:
            raise ValueError(f"fixed_key {fixed_key!r} is also in keys {list(self.keys)}: it cannot be registered to itself.")
        if info_key is not None and (not isinstance(info_key, str) or not info_key):
            raise ValueError(f"info_key must be a non-empty string or None, got {info_key!r}.")
        self.fixed_key, self.info_key = fixed_key, info_key
        self.op = RegisterPhases(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = case_label(d)
        if self.fixed_key not in d:
            raise KeyError(f"{case}: missing fixed key {self.fixed_key!r}; available: {sorted(map(str, d))}.")
        if SUB in d:
            raise ValueError(
                f"{case}: {SUB!r} is already in the data: RegisterPhasesd must run before subtraction "
                "(a subtraction of unregistered phases would keep the motion artefacts)."
            )
        if self.auto:
            keys = sorted((k for k in d if isinstance(k, str) and is_post(k)), key=lambda k: post_index(k) or 0)
            if not keys:
                raise KeyError(f"{case}: no post-contrast phase (T1post<k>) to register; available: {sorted(map(str, d))}.")
        else:
            missing = [k for k in self.keys if k not in d]
            if missing and not self.allow_missing_keys:
                raise KeyError(f"{case}: missing phase key(s) {missing}; available: {sorted(map(str, d))}.")
            keys = [k for k in self.keys if k in d]
        infos: dict[str, Any] = {}
        for k in keys:
            d[k] = self.op(d[k], d[self.fixed_key], case=case, name=str(k), fixed_name=self.fixed_key)
            infos[str(k)] = d[k].meta["registration"]
        if self.info_key:
            d[self.info_key] = infos
        return d


def phase_registration(manifest: str | Path, keys: Sequence[str], enabled: bool | None = None) -> Any:
    """The registration step of a bundle pipeline: :class:`~dce_monai.transforms.RegisterPhasesd` or a no-op.

    Real cohorts are imported with ``dataset.register_phases`` true (their phases are not
    co-registered); phantoms without motion have it false. ``enabled=None`` follows the
    manifest; ``True``/``False`` (the bundle's ``--register_phases``) overrides it.

    Args:
        manifest: cohort manifest path.
        keys: post-contrast phases the pipeline loads (others are skipped); ``T1pre`` and
            non-phase keys in the list are ignored.
        enabled: ``None`` (follow the manifest), ``True`` or ``False``.

    Returns:
        A dictionary transform (an empty ``Compose`` when registration is off).

    Raises:
        ValueError: ``enabled`` is not None/True/False.

    Example:
        >>> phase_registration("cohort/manifest.json", ["T1pre", "T1post1"], enabled=False)  # doctest: +SKIP
        Compose(...)
    """
    from monai.transforms import Compose

    from dce_monai.data.manifest import load_manifest

    if enabled not in (None, True, False):
        raise ValueError(f"register_phases must be null, true or false, got {enabled!r}.")
    on = load_manifest(manifest).register_phases if enabled is None else enabled
    posts = [k for k in keys if is_post(k)]
    if not on or not posts:
        return Compose([])
    return RegisterPhasesd(keys=posts, allow_missing_keys=True)
