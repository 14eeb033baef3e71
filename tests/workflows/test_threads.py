from __future__ import annotations

import os

import pytest
import torch

from dce_monai.workflows import threads as th


def test_available_cpus_follows_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert th.available_cpus() == 3


def test_available_cpus_without_affinity_api(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert th.available_cpus() == 6


@pytest.mark.parametrize(("threads", "workers", "cpus", "expected"), [(None, 1, 4, 4), (None, 3, 4, 1), (None, 8, 4, 1), (2, 1, 4, 2), (7, 2, 4, 7)])
def test_resolve_threads(monkeypatch, threads, workers, cpus, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(th, "available_cpus", lambda: cpus)
    assert th.resolve_threads(threads, workers) == expected


@pytest.mark.parametrize(("omp", "workers", "expected"), [("1", 1, 1), ("3", 1, 3), (" 4 ", 2, 2), ("4,2", 1, 4), ("", 1, 16)])
def test_omp_num_threads_is_the_budget_when_set(monkeypatch, omp, workers, expected):
    """A user's or scheduler's OMP_NUM_THREADS wins over the CPU count (torch honours it too)."""
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(th, "available_cpus", lambda: 16)
    assert th.resolve_threads(None, workers) == expected
    assert th.resolve_threads(5, workers) == 5  # an explicit count wins over both


@pytest.mark.parametrize("omp", ["0", "two", "-1", ",2"])
def test_bad_omp_num_threads_is_named(monkeypatch, omp):
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    with pytest.raises(ValueError, match=rf"OMP_NUM_THREADS must be a positive integer, got '{omp}'"):
        th.resolve_threads(None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, r"threads must be an integer >= 1, got 0"),
        ({"threads": 1.5}, r"threads must be an integer >= 1, got 1.5"),
        ({"threads": True}, r"threads must be an integer >= 1, got True"),
        ({"workers": 0}, r"workers must be an integer >= 1, got 0"),
    ],
)
def test_resolve_threads_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        th.resolve_threads(**kwargs)


def test_set_process_threads_sets_torch_and_blas():
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores the BLAS/OpenMP pools afterwards
        try:
            assert th.set_process_threads(1) == 1
            assert torch.get_num_threads() == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info())
        finally:
            torch.set_num_threads(before)


def test_set_process_threads_reaches_itk_loaded_later():
    """ITK's pool follows the count although ITK is imported after the call (it stays lazily loaded)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dce_monai.workflows.threads import set_process_threads\n"
        "set_process_threads(1)\n"
        "assert 'itk.ITKCommonBasePython' not in sys.modules\n"
        "import itk\n"
        "print(itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, timeout=300)
    assert out.stdout.split()[-1] == "1"
