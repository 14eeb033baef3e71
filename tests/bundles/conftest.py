"""Shared fixtures for the MONAI bundle tests (``tests/bundles``).

``run_multi_gpu_train`` runs a bundle's ``train.json`` + ``multi_gpu_train.json`` under
``torchrun`` with two gloo processes on CPU. The cohort the bundle tests run on,
``bundle_cohort``, is in ``tests/conftest.py``: the library tests of the pieces the bundles
use (datalists, phase registration, ``bundle_workflow``) share it.

Example:
    >>> def test_x(bundle_cohort, run_multi_gpu_train, tmp_path):  # doctest: +SKIP
    ...     run_multi_gpu_train(CONFIGS, {"manifest": bundle_cohort["manifest"], "output_dir": tmp_path})
"""

from __future__ import annotations

from pathlib import Path

import pytest


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
