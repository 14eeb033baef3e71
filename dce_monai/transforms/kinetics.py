"""Relative enhancement, kinetic maps and the enhancement-threshold tumour mask.

All arithmetic is done in float32 after conversion, so uint16 scanner data never overflows
(``post - pre`` on uint16 wraps around to ~65,000 where the post value is lower: a real bug
in public DCE code). Outputs are MetaTensors carrying the input's affine and meta.
``Subtract``/``Subtractd`` live in :mod:`dce_monai.transforms.subtraction` and are
re-exported here for backward compatibility.

References:
    Seed 1 (Haarburger et al. 2018): ``sub = T1post1 - T1pre``.
    Seed 2 (Liu et al. 2021): tumour candidates where (T1 - T0)/T0 >= 70 %.
    ACR BI-RADS MRI lexicon: initial phase slow < 50 %, medium 50-100 %, fast > 100 %;
    delayed phase persistent > +10 %, plateau within +-10 %, washout < -10 %.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from dce_monai.sequences import CHANNEL_NAMES_KEY, PRE, is_post, post_index, post_name
from dce_monai.transforms.subtraction import (  # re-exported (moved to subtraction.py)
    Subtract,
    Subtractd,
)
from dce_monai.transforms.utils import (
    case_label,
    check_binary_mask,
    check_finite,
    check_same_grid,
    check_spatial_dims,
    to_float_tensor,
    wrap_like,
)

__all__ = [
    "CURVE_TYPES",
    "EnhancementMaps",
    "EnhancementMapsd",
    "EnhancementThresholdMask",
    "EnhancementThresholdMaskd",
    "Subtract",
    "Subtractd",
    "relative_enhancement",
]

#: Values of the BI-RADS delayed-phase curve-type map.
CURVE_TYPES = {0: "non-enhancing", 1: "persistent", 2: "plateau", 3: "washout"}


def _like(out: torch.Tensor, ref: Any, names: Sequence[str] | None = None) -> torch.Tensor:
    """``out`` as MONAI returns it (:func:`wrap_like`: ``ref``'s affine, meta and trace), named ``names``."""
    res = wrap_like(out, ref)
    if names is not None and isinstance(res, MetaTensor):
        res.meta[CHANNEL_NAMES_KEY] = list(names)
    return res


def _floor(pre: torch.Tensor, noise_floor: float | None, floor_fraction: float) -> torch.Tensor:
    if noise_floor is not None:
        return torch.as_tensor(float(noise_floor))
    q = torch.quantile(pre.flatten()[:: max(1, pre.numel() // 1_000_000)].float(), 0.99)
    return q * floor_fraction


def relative_enhancement(pre: torch.Tensor, post: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Relative enhancement ``(post - pre)/pre`` where ``pre > floor``, 0 elsewhere (unitless).

    Guarding the denominator with a noise floor keeps air and noise, whose ratio is noise
    over noise, from "enhancing".

    Args:
        pre: pre-contrast intensities (float tensor).
        post: post-contrast intensities, same shape.
        floor: scalar tensor, intensity floor (same unit as ``pre``).

    Returns:
        float tensor of ``pre``'s shape.

    Example:
        >>> relative_enhancement(torch.tensor([100.0, 1.0]), torch.tensor([170.0, 9.0]), torch.tensor(10.0))
        tensor([0.7000, 0.0000])
    """
    valid = pre > floor
    return torch.where(valid, (post - pre) / torch.where(valid, pre, torch.ones_like(pre)), torch.zeros_like(pre))


class EnhancementMaps(Transform):
    """Kinetic maps from a pre-contrast and K post-contrast phases.

    Input is a multi-channel tensor (1 + K, X, Y, Z): channel 0 pre-contrast, then the post
    phases in time order. With S0 the pre, Se the early and Sl the last post phase
    (intensities in any consistent unit; the maps are unitless ratios):

    - ``re``: relative enhancement per post phase, RE_k = (S_k - S0)/S0 (K channels);
    - ``washin`` = RE of the early phase (initial enhancement);
    - ``washout`` = (Sl - Se)/Se (delayed change relative to the early phase);
    - ``ser`` = (Se - S0)/(Sl - S0) (signal enhancement ratio; 0 where Sl - S0 <= 0);
    - ``ttp``: time-to-peak index, the 1-based post phase of maximal signal (0 = not analysed);
    - ``curve_type`` (BI-RADS delayed phase): 1 persistent (washout > +10 %), 2 plateau
      (within +-10 %), 3 washout (< -10 %), 0 below the noise floor or washin < ``min_enhancement``;
    - ``initial_type`` (BI-RADS initial phase): 1 slow (< 50 %), 2 medium (50-100 %),
      3 fast (> 100 %), 0 as above;
    - ``valid``: 1 where S0 is above the noise floor, 0 where the voxel was not analysed
      (every other map is 0 there, so air never "enhances").

    The early phase is the ``early_phase``-th post phase, or, when ``early_time_s`` is set,
    the first post phase acquired at least ``early_time_s`` seconds after the pre-contrast
    phase (times from ``times_s``; BI-RADS reads the initial phase at ~90-120 s).

    Args:
        early_phase: 1-based index of the early post phase (default 1).
        noise_floor: absolute pre-contrast intensity at or below which a voxel is not
            analysed; default ``floor_fraction`` x the 99th percentile of the pre-contrast image.
        floor_fraction: see ``noise_floor`` (default 0.05).
        min_enhancement: washin below which a voxel counts as non-enhancing (default 0.1).
        early_time_s: if set, choose the early phase from acquisition times (s) instead.

    Returns:
        dict of MetaTensors (each (C, X, Y, Z), with the input's affine, meta and transform
        trace when it has them; plain tensors under ``set_track_meta(False)``).

    Raises:
        ValueError: bad arguments, fewer than 2 channels, ``early_phase`` outside the post
            phases, missing/invalid times, no phase after ``early_time_s``, non-3D input, NaN/Inf.

    Example:
        >>> maps = EnhancementMaps(noise_floor=10.0)(x)  # x: (1 + K, X, Y, Z)  # doctest: +SKIP
        >>> maps["curve_type"]  # doctest: +SKIP

    Reference: ACR BI-RADS MRI lexicon (kinetic curve assessment).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        early_phase: int = 1,
        noise_floor: float | None = None,
        floor_fraction: float = 0.05,
        min_enhancement: float = 0.1,
        early_time_s: float | None = None,
    ) -> None:
        if isinstance(early_phase, bool) or not isinstance(early_phase, int) or early_phase < 1:
            raise ValueError(f"early_phase must be an integer >= 1 (1 = first post phase), got {early_phase!r}.")
        if not 0 <= floor_fraction < 1:
            raise ValueError(f"floor_fraction must be in [0, 1), got {floor_fraction!r}.")
        if noise_floor is not None and not noise_floor >= 0:
            raise ValueError(f"noise_floor must be >= 0 or None, got {noise_floor!r}.")
        if early_time_s is not None and not early_time_s >= 0:
            raise ValueError(f"early_time_s must be >= 0 seconds or None, got {early_time_s!r}.")
        self.early_phase, self.noise_floor, self.floor_fraction, self.min_enhancement = early_phase, noise_floor, floor_fraction, min_enhancement
        self.early_time_s = early_time_s

    def early_index(self, n_post: int, times_s: Sequence[float] | None = None, case: str = "input") -> int:
        """1-based early post phase for ``n_post`` post phases (and ``times_s``: pre then posts, s)."""
        if self.early_time_s is None:
            if self.early_phase > n_post:
                raise ValueError(f"{case}: early_phase={self.early_phase} but only {n_post} post phase(s) given.")
            return self.early_phase
        if times_s is None or len(times_s) != n_post + 1:
            got = None if times_s is None else len(times_s)
            raise ValueError(f"{case}: early_time_s={self.early_time_s} needs acquisition times of the pre and {n_post} post phase(s) ({n_post + 1} values), got {got}.")
        rel = [float(t) - float(times_s[0]) for t in times_s[1:]]
        for k, t in enumerate(rel, start=1):
            if t >= self.early_time_s:
                return k
        raise ValueError(f"{case}: no post phase acquired >= {self.early_time_s} s after the pre-contrast phase (times after pre: {rel} s).")

    def __call__(self, img: Any, case: str = "input", times_s: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
        """Compute the maps; ``times_s`` (pre then posts, s) is used when ``early_time_s`` is set."""
        check_spatial_dims(img, 3, "img", case)
        if img.shape[0] < 2:
            raise ValueError(f"{case}: EnhancementMaps needs the pre-contrast and at least one post phase as channels, got {img.shape[0]} channel(s).")
        e = self.early_index(int(img.shape[0]) - 1, times_s, case)
        check_finite(img, "img", case)
        x = to_float_tensor(img)
        x = x.as_tensor() if isinstance(x, MetaTensor) else x
        pre, posts = x[0], x[1:]
        floor = _floor(pre, self.noise_floor, self.floor_fraction)
        re = torch.stack([relative_enhancement(pre, p, floor) for p in posts])
        early, late = posts[e - 1], posts[-1]
        valid = pre > floor
        washin = re[e - 1]
        washout = torch.where(valid, relative_enhancement(early, late, floor), torch.zeros_like(pre))
        denom = late - pre
        ser = torch.where(valid & (denom > 0), (early - pre) / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(pre))
        enhancing = valid & (washin >= self.min_enhancement)
        curve = torch.full_like(pre, 2.0)
        curve[washout > 0.10] = 1
        curve[washout < -0.10] = 3
        curve[~enhancing] = 0
        initial = torch.full_like(pre, 2.0)
        initial[washin < 0.5] = 1
        initial[washin > 1.0] = 3
        initial[~enhancing] = 0
        ttp = torch.where(valid, posts.argmax(dim=0) + 1, torch.zeros_like(pre, dtype=torch.long))
        out = {
            "re": re,
            "washin": washin[None],
            "washout": washout[None],
            "ser": ser[None],
            "ttp": ttp[None].to(torch.uint8),
            "curve_type": curve[None].to(torch.uint8),
            "initial_type": initial[None].to(torch.uint8),
            "valid": valid[None].to(torch.uint8),
        }
        return {k: _like(v, img, names=[k] if k != "re" else [f"re{i + 1}" for i in range(len(posts))]) for k, v in out.items()}


class EnhancementMapsd(MapTransform):
    """Dictionary form of :class:`EnhancementMaps`.

    Reads ``T1pre`` and the ``T1post<k>`` keys (all found in the dict, in phase order, or
    those listed in ``post_keys``) and writes ``<prefix>washin``, ``<prefix>washout``,
    ``<prefix>ser``, ``<prefix>ttp``, ``<prefix>curve_type``, ``<prefix>initial_type``,
    ``<prefix>valid`` and ``<prefix>re_T1post<k>`` per phase, each with the pre's affine.

    Args:
        pre_key: pre-contrast key (default ``T1pre``).
        post_keys: post phases in time order; default: every ``T1post<k>`` key in the dict.
        prefix: prefix of the output keys.
        times_key: key of a ``{sequence name: seconds}`` dict (the manifest's
            ``acquisition_times_s``), read only when ``early_time_s`` is set.
        allow_missing_keys: return the dict unchanged when the pre-contrast phase, a listed post
            phase or (with ``early_time_s``) the times are missing, or no post phase is found.
        **kwargs: :class:`EnhancementMaps` arguments.

    The phases are named by role (``pre_key``, ``post_keys`` in time order) rather than given
    as MONAI ``keys``: the formula needs to know which image is the baseline.

    Raises:
        KeyError: missing pre/post phase or times (message lists the available keys).
        ValueError: see :class:`EnhancementMaps`; phases on different grids.
    """

    backend = EnhancementMaps.backend

    def __init__(self, pre_key: str = PRE, post_keys: Sequence[str] | None = None, prefix: str = "", times_key: str = "acquisition_times_s", allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__([pre_key] + list(post_keys or []), allow_missing_keys)
        self.pre_key, self.post_keys, self.prefix, self.times_key = pre_key, list(post_keys) if post_keys else None, prefix, times_key
        self.op = EnhancementMaps(**kwargs)

    def _posts(self, d: Mapping[Hashable, Any]) -> list[str] | None:
        if self.post_keys is not None:
            missing = [k for k in self.post_keys if k not in d]
            if missing:
                if self.allow_missing_keys:
                    return None
                raise KeyError(f"{case_label(d)}: missing phase(s) {missing}; available: {sorted(map(str, d))}.")
            return self.post_keys
        return sorted((str(k) for k in d if isinstance(k, str) and is_post(k)), key=lambda k: post_index(k) or 0)

    def _times(self, d: Mapping[Hashable, Any], names: list[str]) -> list[float] | None:
        if self.op.early_time_s is None:
            return None
        case = case_label(d)
        if self.times_key not in d:
            raise KeyError(f"{case}: early_time_s is set but the acquisition times key {self.times_key!r} is missing; available: {sorted(map(str, d))}.")
        times = d[self.times_key]
        missing = [n for n in names if n not in times]
        if missing:
            raise KeyError(f"{case}: {self.times_key!r} has no time for {missing}; it has {sorted(map(str, times))}.")
        return [float(times[n]) for n in names]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = case_label(d)
        if self.pre_key not in d:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"{case}: missing pre-contrast key {self.pre_key!r}; available: {sorted(map(str, d))}.")
        posts = self._posts(d)
        if not posts:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"{case}: no post-contrast phase (T1post<k>) found; available: {sorted(map(str, d))}.")
        imgs = {k: d[k] for k in [self.pre_key] + posts}
        check_same_grid(imgs, case)
        for k, v in imgs.items():
            check_spatial_dims(v, 3, k, case)
            if v.shape[0] != 1:
                raise ValueError(f"{case}: {k!r} must have 1 channel, got shape {tuple(v.shape)}.")
        names = [self.pre_key] + posts
        if self.op.early_time_s is not None and self.times_key not in d and self.allow_missing_keys:
            return d
        times = self._times(d, names)
        stacked = torch.cat([to_float_tensor(v).as_tensor() if isinstance(v, MetaTensor) else to_float_tensor(v) for v in imgs.values()])
        maps = self.op(_like(stacked, d[self.pre_key]), case, times)
        for i, k in enumerate(posts):
            d[f"{self.prefix}re_{k}"] = _like(maps["re"][i : i + 1], d[self.pre_key], names=[f"re_{k}"])
        for k, v in maps.items():
            if k != "re":
                d[f"{self.prefix}{k}"] = v
        return d


class EnhancementThresholdMask(Transform):
    """Binary mask of voxels whose early relative enhancement reaches a threshold.

    ``mask = (pre > floor) & ((post - pre)/pre >= threshold) [& breast]`` with the default
    threshold 0.70 of seed 2 and a noise floor (default 5 % of the pre-contrast 99th
    percentile) so that air, whose relative "enhancement" is noise over noise, never passes.

    Args:
        threshold: relative enhancement threshold (0.70 = 70 %).
        noise_floor: absolute pre-contrast floor; default from ``floor_fraction``.
        floor_fraction: fraction of the pre-contrast 99th percentile used as floor.

    Raises:
        ValueError: bad arguments, images on different grids, NaN/Inf, non-binary restriction mask.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, threshold: float = 0.70, noise_floor: float | None = None, floor_fraction: float = 0.05) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0 (relative enhancement, 0.7 = 70 %), got {threshold!r}.")
        if not 0 <= floor_fraction < 1:
            raise ValueError(f"floor_fraction must be in [0, 1), got {floor_fraction!r}.")
        self.threshold, self.noise_floor, self.floor_fraction = threshold, noise_floor, floor_fraction

    def __call__(self, pre: Any, post: Any, restrict: Any | None = None, case: str = "input") -> torch.Tensor:
        check_spatial_dims(pre, 3, "pre", case)
        imgs = {"pre": pre, "post": post} if restrict is None else {"pre": pre, "post": post, "restrict": restrict}
        check_same_grid(imgs, case)
        for k in ("pre", "post"):
            check_finite(imgs[k], k, case)
        a, b = (to_float_tensor(v) for v in (pre, post))
        a = a.as_tensor() if isinstance(a, MetaTensor) else a
        b = b.as_tensor() if isinstance(b, MetaTensor) else b
        floor = _floor(a, self.noise_floor, self.floor_fraction)
        mask = (a > floor) & (relative_enhancement(a, b, floor) >= self.threshold)
        if restrict is not None:
            check_binary_mask(restrict, "restrict", case, allow_empty=True)
            r = torch.as_tensor(np.asarray(restrict)) if isinstance(restrict, np.ndarray) else torch.as_tensor(restrict)
            mask &= r.as_tensor().bool() if isinstance(r, MetaTensor) else r.bool()
        return _like(mask.to(torch.uint8), pre)


class EnhancementThresholdMaskd(MapTransform):
    """Dictionary form of :class:`EnhancementThresholdMask` (``d[output_key]``, default ``mask``).

    Args:
        pre_key: pre-contrast phase (default ``T1pre``).
        post_key: early post-contrast phase (default ``T1post1``).
        output_key: key written (uint8 mask with the pre-contrast phase's affine, meta and trace).
        breast_mask_key: optional binary mask the result is restricted to.
        allow_missing_keys: return the dict unchanged when one of these keys is missing.
        **kwargs: :class:`EnhancementThresholdMask` arguments.

    The keys are named by role rather than given as MONAI ``keys``: the relative enhancement
    ``(post - pre)/pre`` needs to know which image is the baseline.

    Raises:
        KeyError: a key is missing and ``allow_missing_keys`` is off.
    """

    backend = EnhancementThresholdMask.backend

    def __init__(
        self,
        pre_key: str = PRE,
        post_key: str = post_name(1),
        output_key: str = "mask",
        breast_mask_key: str | None = None,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        keys: KeysCollection = [pre_key, post_key] + ([breast_mask_key] if breast_mask_key else [])
        super().__init__(keys, allow_missing_keys)
        self.pre_key, self.post_key, self.output_key, self.breast_mask_key = pre_key, post_key, output_key, breast_mask_key
        self.op = EnhancementThresholdMask(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [k for k in self.keys if k not in d]
        if missing:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"{case_label(d)}: EnhancementThresholdMaskd needs key(s) {missing}; available: {sorted(map(str, d))}.")
        restrict = d[self.breast_mask_key] if self.breast_mask_key else None
        d[self.output_key] = self.op(d[self.pre_key], d[self.post_key], restrict, case_label(d))
        return d
