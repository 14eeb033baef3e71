"""Detect a collapsed classifier: scores that are (nearly) constant or fall on one side of the threshold.

A network that has not learnt (too few steps, a learning rate too small or too large, a dead
BatchNorm) often outputs almost the same probability for every input. Its ROC AUC is then
decided by differences in the last digits, or by ties, and can come out anywhere between 0
and 1 on a small fold (AUC 1.000 from outputs spanning 1e-4 was seen on a phantom), while its
accuracy equals the class prevalence. Such an AUC is not a finding: tables and reports show
the collapse instead. Plain function so that workflows, tables and the report share one rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["COLLAPSE_SPAN", "score_collapse"]

#: Scores spanning at most this much (max - min, in probability units) count as constant.
COLLAPSE_SPAN = 1e-3


def score_collapse(scores: Any, threshold: float = 0.5, min_span: float = COLLAPSE_SPAN) -> dict[str, Any]:
    """Whether ``scores`` collapse: near-constant, or one predicted class at ``threshold``.

    Rules: ``span = max(scores) - min(scores)``; collapsed when ``span <= min_span``
    ("near-constant"), or when every score is ``>= threshold`` or every score is
    ``< threshold`` ("one predicted class": sensitivity or specificity is 0 by construction).

    Args:
        scores: per-lesion probabilities (any sequence, array or tensor; at least one value).
        threshold: decision threshold (probability units; 0.5 for softmax outputs).
        min_span: the span at or below which scores count as constant (>= 0).

    Returns:
        ``{"collapsed": bool, "reason": str ("" when not collapsed), "span": float,
        "n": int, "n_predicted_positive": int}``.

    Raises:
        ValueError: no scores, NaN/Inf scores, a negative or non-finite ``min_span``, or a
            non-finite ``threshold``.

    Example:
        >>> score_collapse([0.5001, 0.5004, 0.5002])["reason"]
        'near-constant scores (span 3e-04 <= 1e-03)'
        >>> score_collapse([0.1, 0.3, 0.2])["reason"]
        'one predicted class (all 3 scores < 0.5)'
        >>> score_collapse([0.1, 0.9])["collapsed"]
        False
    """
    if not (isinstance(min_span, (int, float)) and math.isfinite(min_span) and min_span >= 0):
        raise ValueError(f"min_span must be a finite number >= 0, got {min_span!r}.")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError("scores are empty: nothing to check for collapse.")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores contain NaN/Inf at positions {np.flatnonzero(~np.isfinite(s))[:5].tolist()}.")
    span = float(s.max() - s.min())
    n_pos = int((s >= threshold).sum())
    reason = ""
    if span <= min_span:
        reason = f"near-constant scores (span {span:.0e} <= {min_span:.0e})"
    elif n_pos in (0, s.size):
        side = ">=" if n_pos else "<"
        reason = f"one predicted class (all {s.size} scores {side} {threshold:g})"
    return {"collapsed": bool(reason), "reason": reason, "span": span, "n": int(s.size), "n_predicted_positive": n_pos}
