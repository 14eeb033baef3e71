from __future__ import annotations

import numpy as np
import pytest
import torch

from dce_monai.metrics import aggregate_by_lesion


def test_max_and_mean():
    ids, s, y = aggregate_by_lesion([0.1, 0.9, 0.3, 0.2], ["A", "A", "B", "B"], [1, 1, 0, 0])
    assert ids == ["A", "B"] and np.allclose(s, [0.9, 0.3]) and y.tolist() == [1, 0]
    _, s, _ = aggregate_by_lesion([0.1, 0.9, 0.3, 0.2], ["A", "A", "B", "B"], reduction="mean")
    assert np.allclose(s, [0.5, 0.25])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([0.1, 0.2], ["A", "A"], [0, 1]), {}, r"lesion 'A': its patches carry different labels \[0, 1\]"),
        (([0.1], ["A", "B"]), {}, r"must have the same length"),
        (([0.1], ["A"]), {"reduction": "median"}, r"median"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        aggregate_by_lesion(*args, **kwargs)


def test_lesion_ids_are_kept_as_given():
    # 1 and "1" are two lesions (no str() merge); ids come back with their type
    ids, s, y = aggregate_by_lesion([0.2, 0.7, 0.4, 0.1], [1, "1", 1, "1"], [0, 1, 0, 1])
    assert ids == [1, "1"] and np.allclose(s, [0.4, 0.7]) and y.tolist() == [0, 1]
    ids, s, _ = aggregate_by_lesion(np.array([0.2, 0.7, 0.4]), torch.tensor([5, 6, 5]))
    assert ids == [5, 6] and all(type(i) is int for i in ids) and np.allclose(s, [0.4, 0.7])
    ids, _, _ = aggregate_by_lesion([0.2, 0.7], np.array(["L1", "L2"]))
    assert ids == ["L1", "L2"]


@pytest.mark.parametrize("bad", [None, float("nan"), ""])
def test_missing_lesion_id_is_refused(bad):
    with pytest.raises(ValueError, match=r"lesion_ids missing \(None, NaN or empty\) at positions \[1\] \(1 of 3\)"):
        aggregate_by_lesion([0.1, 0.2, 0.3], ["A", bad, "B"])
