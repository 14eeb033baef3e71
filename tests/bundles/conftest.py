"""Shared fixtures for the MONAI bundle tests (``tests/bundles``).

``bundle_cohort`` builds, once per test session, a tiny phantom cohort
(``generate_cohort(tmp, n_patients=6, seed=3, size="tiny")``) and a 2-fold
patient-wise folds file next to it, so every bundle test can run a bundle with
``--manifest``/``--folds``/``--fold`` overrides without building its own data.

Example:
    >>> def test_x(bundle_cohort):  # doctest: +SKIP
    ...     manifest, folds = bundle_cohort["manifest"], bundle_cohort["folds"]
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundle_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny 6-patient phantom cohort plus a 2-fold folds file.

    Returns:
        ``{"root": cohort folder, "manifest": manifest.json path, "folds": folds.json path}``.
        Fold 0 and fold 1 each hold patients of both classes when the cohort allows it
        (stratified by the per-patient maximum ``malignant`` label).
    """
    from dce_monai.data.folds import patient_folds, write_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.phantom import generate_cohort

    root = tmp_path_factory.mktemp("bundle_cohort")
    manifest = generate_cohort(root, n_patients=6, seed=3, size="tiny", progress=False)
    datalist = load_manifest(manifest).to_datalist(level="lesion")
    folds = patient_folds(datalist, k=2, seed=0)
    folds_path = write_folds(folds, root / "folds.json", seed=0, k_requested=2)
    return {"root": root, "manifest": Path(manifest), "folds": folds_path}
