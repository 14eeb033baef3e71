"""Per-lesion aggregation of patch scores (seed 1: lesion score = max over its slices)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from monai.utils import look_up_option

__all__ = ["aggregate_by_lesion"]


def aggregate_by_lesion(
    scores: Sequence[float] | np.ndarray,
    lesion_ids: Sequence[str],
    labels: Sequence[int] | np.ndarray | None = None,
    reduction: str = "max",
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Reduce patch scores to one score per lesion.

    Args:
        scores: per-patch malignancy probabilities.
        lesion_ids: lesion id of each patch.
        labels: per-patch labels (must agree within a lesion).
        reduction: ``"max"`` (seed 1) or ``"mean"``.

    Returns:
        ``(ids in first-seen order, lesion scores, lesion labels or None)``.

    Raises:
        ValueError: length mismatch, unknown reduction, or a lesion whose patches disagree on
            the label (named).
    """
    red = look_up_option(reduction, ("max", "mean"))
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(s) != len(lesion_ids) or (labels is not None and len(labels) != len(s)):
        raise ValueError(f"scores ({len(s)}), lesion_ids ({len(lesion_ids)}) and labels ({None if labels is None else len(labels)}) must have the same length.")
    order: dict[str, list[int]] = {}
    for i, lid in enumerate(lesion_ids):
        order.setdefault(str(lid), []).append(i)
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
