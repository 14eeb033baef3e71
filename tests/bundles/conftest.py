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


@pytest.fixture(scope="session")
def run_multi_gpu_train():
    """``run(configs_dir, overrides, timeout)``: see :func:`_run_multi_gpu_train`."""
    return _run_multi_gpu_train


def _run_multi_gpu_train(configs: Path, overrides: dict[str, object], timeout: int = 240) -> None:
    """Run ``train.json`` + ``multi_gpu_train.json`` of a bundle under ``torchrun`` with 2 gloo
    processes on CPU, the way the bundle docs show, and fail with the processes' output tail."""
    import os
    import subprocess
    import sys

    files = f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
            "-m", "monai.bundle", "run", "--config_file", files, "--logging_file", str(configs / "logging.conf"),
            "--dist_backend", "gloo"]
    for k, v in overrides.items():
        args += [f"--{k}", str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
