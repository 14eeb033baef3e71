"""Datalists of one fold of a manifest (``dce_monai.data.datalist.fold_datalist``): patient-wise
splits, the inner validation split, argument errors."""

from __future__ import annotations

import pytest

from dce_monai.data import datalist as dl


def test_fold_datalist_splits(bundle_cohort):
    m, f = bundle_cohort["manifest"], bundle_cohort["folds"]
    train = dl.fold_datalist(m, f, 0, "train")
    test = dl.fold_datalist(m, f, 0, "test")
    assert {d["patient_id"] for d in train}.isdisjoint({d["patient_id"] for d in test})
    assert len(dl.fold_datalist(m, None, split="all")) == len(train) + len(test)
    assert dl.fold_datalist(m, f, 0, "val") == []  # no inner validation split without val_fraction


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"split": "nope"}, ValueError, "nope"),
        ({"fold": 5, "split": "test"}, ValueError, r"fold must be in \[0, 2\)"),
        ({"folds": None, "split": "train"}, ValueError, "folds is required for split='train'"),
    ],
)
def test_fold_datalist_errors(bundle_cohort, kwargs, exc, match):
    args = {"manifest": bundle_cohort["manifest"], "folds": bundle_cohort["folds"], "fold": 0, **kwargs}
    with pytest.raises(exc, match=match):
        dl.fold_datalist(**args)

