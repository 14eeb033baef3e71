"""Channel selection: stack named DCE sequences into a multi-channel image.

Seed 1 feeds 3 of 7 channels (T2, T1pre, T1post1..4, sub) into an ImageNet network; which 3
is the experiment. The names chosen travel in the output's meta under ``channel_names`` so
every later step (and a reader of a saved tensor) knows what each channel is.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from dce_monai.sequences import (
    CHANNEL_NAMES_KEY,
    sort_sequences,
    validate_sequence_names,
)
from dce_monai.transforms.utils import case_label, check_same_grid, to_float_tensor, wrap_like

__all__ = ["SelectSequences", "SelectSequencesd"]


class SelectSequences(Transform):
    """Pick channels by name from a multi-channel image whose meta lists ``channel_names``.

    Args:
        names: sequence names in the output order, e.g. ``("T1pre", "T1post3", "sub")``.

    The output keeps the input's affine, meta and transform trace (a plain tensor under
    ``set_track_meta(False)``).

    Raises:
        ValueError: unknown/repeated names; input without ``channel_names`` meta; a name not
            among the input's channels (the message lists those available).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, names: Sequence[str]) -> None:
        self.names = validate_sequence_names(names, "names")

    def __call__(self, img: Any, case: str = "input") -> torch.Tensor:
        have = img.meta.get(CHANNEL_NAMES_KEY) if isinstance(img, MetaTensor) else None
        if have is None:
            raise ValueError(f"{case}: SelectSequences needs a MetaTensor with meta[{CHANNEL_NAMES_KEY!r}] naming its channels.")
        missing = [n for n in self.names if n not in have]
        if missing:
            raise ValueError(f"{case}: sequence(s) {missing} not among the channels; available: {list(have)}.")
        out = wrap_like(img.as_tensor()[[list(have).index(n) for n in self.names]], img)
        if isinstance(out, MetaTensor):
            out.meta[CHANNEL_NAMES_KEY] = list(self.names)
        return out


class SelectSequencesd(MapTransform):
    """Stack the named sequence keys of a data dict into one channel-first image.

    Each key holds a (1, X, Y, Z) image (after ``LoadImaged`` + ``EnsureChannelFirstd``);
    the output ``d[output_key]`` is (len(names), X, Y, Z) float32 with the first sequence's
    affine, meta and transform trace and ``meta["channel_names"] = names`` (a plain tensor
    under ``set_track_meta(False)``). Real cohorts have 2-7 post phases: a missing one is an
    error naming the case, the name and the sequences present.

    Args:
        names: the keys to stack, in channel order (default seed 1's best: T1pre, T1post3,
            sub). Called ``names`` rather than MONAI's ``keys`` because they are checked as
            sequence names (see :mod:`dce_monai.sequences`) and their order is the channel order.
        output_key: key written (default ``image``).
        drop_inputs: remove the stacked keys from the dict afterwards (saves memory in caches).
        allow_missing_keys: stack only the sequences present (as MONAI's ``ConcatItemsd``);
            ``channel_names`` then lists exactly those; with none present the dict is returned
            unchanged.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, names: Sequence[str] = ("T1pre", "T1post3", "sub"), output_key: str = "image", drop_inputs: bool = False, allow_missing_keys: bool = False) -> None:
        self.names = validate_sequence_names(names, "names")
        super().__init__(self.names, allow_missing_keys)
        self.output_key, self.drop_inputs = output_key, drop_inputs

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        case = case_label(d)
        missing = [n for n in self.names if n not in d]
        names = [n for n in self.names if n in d]
        if missing and self.allow_missing_keys:
            if not names:
                return d
        elif missing:
            present = sort_sequences([k for k in d if isinstance(k, str) and _is_seq(k)])
            raise KeyError(f"{case}: sequence(s) {missing} requested but not in the data; present: {present}.")
        imgs = {n: d[n] for n in names}
        check_same_grid(imgs, case)
        for n, v in imgs.items():
            if v.shape[0] != 1:
                raise ValueError(f"{case}: {n!r} must have one channel, got shape {tuple(v.shape)}.")
        parts = [to_float_tensor(v) for v in imgs.values()]
        stacked = torch.cat([p.as_tensor() if isinstance(p, MetaTensor) else p for p in parts])
        out = wrap_like(stacked, imgs[names[0]])
        if isinstance(out, MetaTensor):
            out.meta[CHANNEL_NAMES_KEY] = list(names)
        d[self.output_key] = out
        if self.drop_inputs:
            for n in names:
                d.pop(n, None)
        return d


def _is_seq(k: str) -> bool:
    try:
        validate_sequence_names([k])
        return True
    except ValueError:
        return False
