"""Float subtraction of two DCE phases (``sub = T1post1 - T1pre`` by default).

Scanner data are often stored as uint16. ``post - pre`` computed in uint16 wraps around to
~65,000 wherever the post value is lower than the pre value (noise, fat, motion), which turns
dark background into the brightest structure of the subtraction image. Both operands are
therefore converted to float32 BEFORE subtracting (:func:`~dce_monai.transforms.utils.to_float_tensor`).

Reference: seed 1 (Haarburger et al. 2018), channel ``sub = T1post1 - T1pre``; seed 2 (Liu et
al. 2021) subtracts the first post-contrast phase from the pre-contrast phase before
thresholding.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from dce_monai.sequences import CHANNEL_NAMES_KEY, PRE, SUB, post_name
from dce_monai.transforms.utils import (
    case_label,
    check_finite,
    check_same_grid,
    to_float_tensor,
    wrap_like,
)

__all__ = ["Subtract", "Subtractd"]


def _plain(x: Any) -> torch.Tensor:
    t = to_float_tensor(x)
    return t.as_tensor() if isinstance(t, MetaTensor) else t


class Subtract(Transform):
    """``out = minuend - subtrahend`` in float32, e.g. ``sub = T1post1 - T1pre``.

    Formula: ``out[c, x, y, z] = float(minuend[c, x, y, z]) - float(subtrahend[c, x, y, z])``
    (same intensity units as the inputs). The output is a MetaTensor with the minuend's
    affine, meta and transform trace (``applied_operations``; the subtrahend's when only it is
    a MetaTensor) and ``meta["channel_names"] = [output_name]`` (``output_name_<i>`` per channel
    if several); with two plain inputs it is a MetaTensor with an identity affine carrying the
    channel name only, and under ``set_track_meta(False)`` a plain tensor (as MONAI's
    transforms return). MONAI has no two-image arithmetic transform, hence this small one.

    Args:
        check_grid: require both images on one grid (spatial shape, and affine when both
            are MetaTensors).
        output_name: channel name stored under ``channel_names`` (default ``"sub"``).

    Raises:
        ValueError: images on different grids, different channel counts, NaN/Inf voxels.
        TypeError: ``output_name`` not a string.

    Example:
        >>> import numpy as np
        >>> pre = np.full((1, 2, 2, 2), 1000, np.uint16); post = np.full((1, 2, 2, 2), 900, np.uint16)
        >>> float(Subtract()(post, pre)[0, 0, 0, 0])
        -100.0
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, check_grid: bool = True, output_name: str = SUB) -> None:
        if not isinstance(output_name, str) or not output_name:
            raise TypeError(f"output_name must be a non-empty string, got {output_name!r}.")
        self.check_grid, self.output_name = bool(check_grid), output_name

    def __call__(self, minuend: Any, subtrahend: Any, case: str = "input", names: tuple[str, str] = ("minuend", "subtrahend")) -> torch.Tensor:
        """Subtract; ``case`` and ``names`` only label error messages."""
        if self.check_grid:
            check_same_grid({names[0]: minuend, names[1]: subtrahend}, case)
        if minuend.shape[0] != subtrahend.shape[0]:
            raise ValueError(f"{case}: {names[0]!r} has {minuend.shape[0]} channel(s) but {names[1]!r} has {subtrahend.shape[0]}.")
        check_finite(minuend, names[0], case)
        check_finite(subtrahend, names[1], case)
        out = _plain(minuend) - _plain(subtrahend)
        ref = minuend if isinstance(minuend, MetaTensor) else subtrahend
        res = wrap_like(out, ref)
        if isinstance(res, MetaTensor):
            c = int(out.shape[0])
            res.meta[CHANNEL_NAMES_KEY] = [self.output_name] if c == 1 else [f"{self.output_name}_{i}" for i in range(c)]
        return res


class Subtractd(MapTransform):
    """Dictionary form of :class:`Subtract`: ``d[output_key] = d[minuend] - d[subtrahend]``.

    Args:
        minuend: key of the later phase (default ``T1post1``).
        subtrahend: key subtracted (default ``T1pre``).
        output_key: key written (default ``sub``); also the output's channel name.
        allow_missing_keys: if either key is absent, return the dict unchanged instead of raising.

    The two keys are named (``minuend``, ``subtrahend``) rather than given as MONAI ``keys``
    because their order is the formula; the output is a new key.

    Raises:
        KeyError: a key is missing (message lists the available keys).
        ValueError: see :class:`Subtract`.

    Example:
        >>> d = Subtractd()({"T1pre": pre, "T1post1": post})  # doctest: +SKIP
        >>> d["sub"].meta["channel_names"]  # doctest: +SKIP
        ['sub']
    """

    backend = Subtract.backend

    def __init__(self, minuend: str = post_name(1), subtrahend: str = PRE, output_key: str = SUB, allow_missing_keys: bool = False) -> None:
        super().__init__([minuend, subtrahend], allow_missing_keys)
        self.minuend, self.subtrahend, self.output_key = minuend, subtrahend, output_key
        self.op = Subtract(output_name=str(output_key))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        missing = [k for k in (self.minuend, self.subtrahend) if k not in d]
        if missing:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"{case_label(d)}: Subtractd needs key(s) {missing}; available: {sorted(map(str, d))}.")
        d[self.output_key] = self.op(d[self.minuend], d[self.subtrahend], case_label(d), (self.minuend, self.subtrahend))
        return d

