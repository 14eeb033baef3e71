"""Per-lesion aggregation of patch scores (seed 1: lesion score = max over its slices)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from monai.utils import look_up_option

from dce_monai.metrics.stats import as_id_list

__all__ = ["aggregate_by_lesion"]


def aggregate_by_lesion(
    scores: Sequence[float] | np.ndarray,
    lesion_ids: Sequence[Hashable] | Any,
    labels: Sequence[int] | np.ndarray | None = None,
    reduction: str = "max",
) -> tuple[list[Hashable], np.ndarray, np.ndarray | None]:
    """Reduce patch scores to one score per lesion.

    Args:
        scores: per-patch malignancy probabilities.
        lesion_ids: lesion id of each patch, kept as given: ``1`` and ``"1"`` are two lesions
            (ids compare as Python values; see :func:`dce_monai.metrics.stats.as_id_list`).
        labels: per-patch labels (must agree within a lesion).
        reduction: ``"max"`` (seed 1) or ``"mean"``.

    Returns:
        ``(ids in first-seen order, lesion scores, lesion labels or None)``.

    Raises:
        ValueError: length mismatch, unknown reduction, a missing lesion id (None, NaN, empty;
            positions named), or a lesion whose patches disagree on the label (named).
    """
    red = look_up_option(reduction, ("max", "mean"))
    s = np.asarray(scores, dtype=np.float64).ravel()
    lids = as_id_list(lesion_ids, "lesion_ids")
    if len(s) != len(lids) or (labels is not None and len(labels) != len(s)):
        raise ValueError(f"scores ({len(s)}), lesion_ids ({len(lids)}) and labels ({None if labels is None else len(labels)}) must have the same length.")
    order: dict[Hashable, list[int]] = {}
    for i, lid in enumerate(lids):
        order.setdefault(lid, []).append(i)
    ids = list(order)
    agg = np.array([s[idx].max() if red == "max" else s[idx].mean() for idx in order.values()])
    if labels is None:
        return ids, agg, None
    y = np.asarray(labels).ravel()
    out = []
    for lid, idx in order.items():
        vals = set(y[idx].tolist())
        if len(vals) != 1:
            raise ValueError(f"lesion {lid!r}: its patches carry different labels {sorted(vals)}.")
        out.append(vals.pop())
    return ids, agg, np.asarray(out)
