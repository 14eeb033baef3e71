"""Subtraction, relative enhancement, kinetic maps and the enhancement-threshold tumour mask.

All arithmetic is done in float32 after conversion, so uint16 scanner data never overflows
(``post - pre`` on uint16 wraps around to ~65,000 where the post value is lower: a real bug
in public DCE code). Outputs are MetaTensors carrying the input's affine and meta.

References:
    Seed 1 (Hu, Whitney & Giger): ``sub = T1post1 - T1pre``.
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

from dce_monai.sequences import CHANNEL_NAMES_KEY, PRE, SUB, is_post, post_index, post_name
from dce_monai.transforms.utils import case_label, check_binary_mask, check_finite, check_same_grid, check_spatial_dims, to_float_tensor, wrap_like

__all__ = [
    "Subtract",
    "Subtractd",
    "relative_enhancement",
    "EnhancementMaps",
    "EnhancementMapsd",
    "EnhancementThresholdMask",
    "EnhancementThresholdMaskd",
    "CURVE_TYPES",
]

#: Values of the BI-RADS delayed-phase curve-type map.
CURVE_TYPES = {0: "non-enhancing", 1: "persistent", 2: "plateau", 3: "washout"}


def _like(out: torch.Tensor, ref: Any, names: Sequence[str] | None = None) -> torch.Tensor:
    """Wrap ``out`` as a MetaTensor with ``ref``'s affine/meta (when ``ref`` has them)."""
    res = wrap_like(out, ref) if isinstance(ref, MetaTensor) else (MetaTensor(out) if names is not None else out)
    if names is not None and isinstance(res, MetaTensor):
        res.meta[CHANNEL_NAMES_KEY] = list(names)
    return res


def _floor(pre: torch.Tensor, noise_floor: float | None, floor_fraction: float) -> torch.Tensor:
    if noise_floor is not None:
        return torch.as_tensor(float(noise_floor))
    q = torch.quantile(pre.flatten()[:: max(1, pre.numel() // 1_000_000)].float(), 0.99)
    return q * floor_fraction


class Subtract(Transform):
    """``minuend - subtrahend`` in float32 (no unsigned overflow), e.g. sub = T1post1 - T1pre.

    Args:
        check_grid: require both images on one grid (shape, and affine for MetaTensors).

    Example:
        >>> Subtract()(post, pre)  # doctest: +SKIP
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, check_grid: bool = True) -> None:
        self.check_grid = check_grid

    def __call__(self, minuend: Any, subtrahend: Any, case: str = "input", names: tuple[str, str] = ("minuend", "subtrahend")) -> torch.Tensor:
        if self.check_grid:
            check_same_grid({names[0]: minuend, names[1]: subtrahend}, case)
        a, b = to_float_tensor(minuend), to_float_tensor(subtrahend)
        out = a.as_tensor() if isinstance(a, MetaTensor) else a
        out = out - (b.as_tensor() if isinstance(b, MetaTensor) else b)
        return _like(out, minuend if isinstance(minuend, MetaTensor) else subtrahend, names=[SUB])


class Subtractd(MapTransform):
    """Dictionary form of :class:`Subtract`: ``d[output_key] = d[minuend] - d[subtrahend]``.

    Args:
        minuend: key of the post-contrast image (default ``T1post1``).
        subtrahend: key of the pre-contrast image (default ``T1pre``).
        output_key: key written (default ``sub``).
    """

    backend = Subtract.backend

    def __init__(self, minuend: str = "T1post1", subtrahend: str = PRE, output_key: str = SUB, allow_missing_keys: bool = False) -> None:
        super().__init__([minuend, subtrahend], allow_missing_keys)
        self.minuend, self.subtrahend, self.output_key = minuend, subtrahend, output_key
        self.op = Subtract()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [k for k in (self.minuend, self.subtrahend) if k not in d]
        if missing:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"{case_label(d)}: Subtractd needs key(s) {missing}; available: {sorted(map(str, d))}.")
        d[self.output_key] = self.op(d[self.minuend], d[self.subtrahend], case_label(d), (self.minuend, self.subtrahend))
        return d


def relative_enhancement(pre: torch.Tensor, post: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """``(post - pre)/pre`` where ``pre > floor``, 0 elsewhere (air and noise never enhance)."""
    valid = pre > floor
    return torch.where(valid, (post - pre) / torch.where(valid, pre, torch.ones_like(pre)), torch.zeros_like(pre))


class EnhancementMaps(Transform):
    """Kinetic maps from a pre-contrast and K post-contrast phases.

    Input is a multi-channel tensor (1 + K, X, Y, Z): channel 0 pre-contrast, then the post
    phases in time order. With S0 the pre, Se the early and Sl the last post phase:

    - ``re``: relative enhancement per post phase, RE_k = (S_k - S0)/S0 (K channels);
    - ``washin`` = RE of the early phase; ``washout`` = (Sl - Se)/Se;
    - ``ser`` = (Se - S0)/(Sl - S0) (signal enhancement ratio; 0 where Sl - S0 <= 0);
    - ``curve_type``: 1 persistent (washout > +10 %), 2 plateau, 3 washout (< -10 %),
      0 where the voxel is below the noise floor or washin < ``min_enhancement``;
    - ``initial_type``: 1 slow (< 50 %), 2 medium (50-100 %), 3 fast (> 100 %), 0 as above.

    Args:
        early_phase: 1-based index of the early post phase (default 1, ~90-120 s).
        noise_floor: absolute pre-contrast intensity below which a voxel is not analysed;
            default ``floor_fraction`` x the 99th percentile of the pre-contrast image.
        floor_fraction: see ``noise_floor``.
        min_enhancement: washin below which a voxel counts as non-enhancing (default 0.1).

    Returns:
        dict of tensors (each (C, X, Y, Z), MetaTensor with the input's affine).

    Raises:
        ValueError: fewer than 2 channels, ``early_phase`` outside the post phases, non-3D
            input, NaN/Inf voxels.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, early_phase: int = 1, noise_floor: float | None = None, floor_fraction: float = 0.05, min_enhancement: float = 0.1) -> None:
        if isinstance(early_phase, bool) or not isinstance(early_phase, int) or early_phase < 1:
            raise ValueError(f"early_phase must be an integer >= 1 (1 = first post phase), got {early_phase!r}.")
        if not 0 <= floor_fraction < 1:
            raise ValueError(f"floor_fraction must be in [0, 1), got {floor_fraction!r}.")
        self.early_phase, self.noise_floor, self.floor_fraction, self.min_enhancement = early_phase, noise_floor, floor_fraction, min_enhancement

    def __call__(self, img: Any, case: str = "input") -> dict[str, torch.Tensor]:
        check_spatial_dims(img, 3, "img", case)
        if img.shape[0] < 2:
            raise ValueError(f"{case}: EnhancementMaps needs the pre-contrast and at least one post phase as channels, got {img.shape[0]} channel(s).")
        if self.early_phase > img.shape[0] - 1:
            raise ValueError(f"{case}: early_phase={self.early_phase} but only {img.shape[0] - 1} post phase(s) given.")
        check_finite(img, "img", case)
        x = to_float_tensor(img)
        x = x.as_tensor() if isinstance(x, MetaTensor) else x
        pre, posts = x[0], x[1:]
        floor = _floor(pre, self.noise_floor, self.floor_fraction)
        re = torch.stack([relative_enhancement(pre, p, floor) for p in posts])
        early, late = posts[self.early_phase - 1], posts[-1]
        valid = pre > floor
        washin = re[self.early_phase - 1]
        washout = relative_enhancement(early, late, floor)
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
        out = {"re": re, "washin": washin[None], "washout": washout[None], "ser": ser[None], "curve_type": curve[None].to(torch.uint8), "initial_type": initial[None].to(torch.uint8)}
        return {k: _like(v, img) for k, v in out.items()}


class EnhancementMapsd(MapTransform):
    """Dictionary form of :class:`EnhancementMaps`.

    Reads ``T1pre`` and the ``T1post<k>`` keys (all found in the dict, in phase order, or
    those listed in ``post_keys``) and writes ``<prefix>washin``, ``<prefix>washout``,
    ``<prefix>ser``, ``<prefix>curve_type``, ``<prefix>initial_type`` and
    ``<prefix>re_T1post<k>`` per phase.
    """

    backend = EnhancementMaps.backend

    def __init__(self, pre_key: str = PRE, post_keys: Sequence[str] | None = None, prefix: str = "", allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__([pre_key] + list(post_keys or []), allow_missing_keys)
        self.pre_key, self.post_keys, self.prefix = pre_key, list(post_keys) if post_keys else None, prefix
        self.op = EnhancementMaps(**kwargs)

    def _posts(self, d: Mapping[Hashable, Any]) -> list[str]:
        if self.post_keys is not None:
            missing = [k for k in self.post_keys if k not in d]
            if missing:
                raise KeyError(f"{case_label(d)}: missing phase(s) {missing}; available: {sorted(map(str, d))}.")
            return self.post_keys
        return sorted((str(k) for k in d if isinstance(k, str) and is_post(k)), key=lambda k: post_index(k) or 0)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = case_label(d)
        if self.pre_key not in d:
            raise KeyError(f"{case}: missing pre-contrast key {self.pre_key!r}; available: {sorted(map(str, d))}.")
        posts = self._posts(d)
        if not posts:
            raise KeyError(f"{case}: no post-contrast phase (T1post<k>) found; available: {sorted(map(str, d))}.")
        imgs = {k: d[k] for k in [self.pre_key] + posts}
        check_same_grid(imgs, case)
        stacked = torch.cat([to_float_tensor(v).as_tensor() if isinstance(v, MetaTensor) else to_float_tensor(v) for v in imgs.values()])
        maps = self.op(_like(stacked, d[self.pre_key]), case)
        for i, k in enumerate(posts):
            d[f"{self.prefix}re_{k}"] = _like(maps["re"][i : i + 1].as_tensor(), d[self.pre_key])
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
    """Dictionary form of :class:`EnhancementThresholdMask` (``d[output_key]``, default ``mask``)."""

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
            raise KeyError(f"{case_label(d)}: EnhancementThresholdMaskd needs key(s) {missing}; available: {sorted(map(str, d))}.")
        restrict = d[self.breast_mask_key] if self.breast_mask_key else None
        d[self.output_key] = self.op(d[self.pre_key], d[self.post_key], restrict, case_label(d))
        return d
