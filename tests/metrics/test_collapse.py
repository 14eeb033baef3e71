"""Tests of dce_monai.metrics.collapse.score_collapse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dce_monai.metrics import COLLAPSE_SPAN, score_collapse


@pytest.mark.parametrize("kind", [list, np.asarray, lambda s: torch.tensor(s, dtype=torch.float64)], ids=["list", "numpy", "torch"])
@pytest.mark.parametrize(
    "scores, collapsed, reason",
    [
        ([0.5001, 0.5009, 0.5003], True, "near-constant scores (span 8e-04 <= 1e-03)"),
        ([0.2, 0.2, 0.2, 0.2], True, "near-constant scores (span 0e+00 <= 1e-03)"),
        ([0.1, 0.3, 0.45], True, "one predicted class (all 3 scores < 0.5)"),
        ([0.5, 0.7, 0.99], True, "one predicted class (all 3 scores >= 0.5)"),
        ([0.1, 0.9], False, ""),
        ([0.499, 0.501], False, ""),  # span 2e-3, both classes predicted
    ],
)
def test_score_collapse(kind, scores, collapsed, reason):
    c = score_collapse(kind(scores))
    assert c["collapsed"] is collapsed and c["reason"] == reason
    assert c["n"] == len(scores) and c["span"] == pytest.approx(max(scores) - min(scores), abs=1e-6)
    assert c["n_predicted_positive"] == sum(s >= 0.5 for s in scores)


def test_threshold_and_span_arguments():
    assert not score_collapse([0.1, 0.3], threshold=0.2)["collapsed"]
    assert score_collapse([0.1, 0.3], min_span=0.5)["reason"].startswith("near-constant")
    assert COLLAPSE_SPAN == 1e-3


@pytest.mark.parametrize(
    "args, match",
    [
        (([],), "scores are empty"),
        (([0.1, float("nan")],), r"NaN/Inf at positions \[1\]"),
        (([0.1], 0.5, -1.0), "min_span must be a finite number >= 0, got -1.0"),
        (([0.1], float("inf")), "threshold must be a finite number, got inf"),
    ],
)
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        score_collapse(*args)
