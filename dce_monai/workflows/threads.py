"""Thread counts chosen from the CPUs this process may run on.

``os.cpu_count()`` counts the machine's CPUs, not the ones a container, ``taskset`` or a job
scheduler lets the process use; torch and OpenMP size their pools from the machine, so a
process limited to 2 of 64 CPUs runs 64 threads on 2 cores. :func:`available_cpus` reads the
affinity mask (``os.sched_getaffinity``) instead, and :func:`set_process_threads` applies one
count to torch's intra-op pool, to the BLAS/OpenMP pools (``threadpoolctl``) and to ITK's pool
(N4, registration: ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, read when ITK is first loaded, so
ITK stays unloaded until a transform needs it; set directly when it is loaded already). The
``dce-monai --threads N`` option (before the command name) uses them for the whole command.
Without ``--threads`` the count is ``OMP_NUM_THREADS`` where the user (or a job scheduler)
set it, the same variable torch reads at start-up, else the available CPUs.

Oversubscribed cores make thread pools slow and erratic, so on a machine shared with other
jobs pass a count below the CPUs available.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus", "cpu_budget", "resolve_threads", "set_process_threads"]


def available_cpus() -> int:
    """Number of CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count()`` where absent)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS / Windows: no affinity API
        return max(1, os.cpu_count() or 1)


def cpu_budget() -> int:
    """Threads this process may run: ``OMP_NUM_THREADS`` when set, else :func:`available_cpus`.

    ``OMP_NUM_THREADS`` is how a user, ``pytest-xdist`` worker or job scheduler asks a process
    for fewer threads than the machine has; torch honours it at start-up, and a thread count
    chosen from the CPUs alone would override that request. A nested-level list (``"4,2"``)
    gives its first level.

    Raises:
        ValueError: ``OMP_NUM_THREADS`` is set but is not a positive integer (its value named).
    """
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not raw:
        return available_cpus()
    first = raw.split(",")[0].strip()
    if not first.isdigit() or int(first) < 1:
        raise ValueError(f"environment variable OMP_NUM_THREADS must be a positive integer, got {raw!r}.")
    return int(first)


def resolve_threads(threads: int | None = None, workers: int = 1) -> int:
    """Threads per worker: ``threads`` if given, else :func:`cpu_budget` shared among ``workers``.

    Args:
        threads: explicit count (>= 1), or ``None`` for ``max(1, cpu_budget() // workers)``.
        workers: processes that will share the CPUs (>= 1).

    Returns:
        The thread count (>= 1).

    Raises:
        ValueError: ``threads`` or ``workers`` is not an integer >= 1, or a bad ``OMP_NUM_THREADS``.

    Example:
        >>> resolve_threads(3)
        3
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}.")
    if threads is None:
        return max(1, cpu_budget() // workers)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}.")
    return threads


def set_process_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads, the BLAS/OpenMP pools and ITK's to :func:`resolve_threads` ``(threads)``.

    Applies to the rest of the process (a CLI command); for a block that restores the previous
    counts, see ``limit_threads`` in :mod:`dce_monai.workflows.baseline_kinetics`.

    Args:
        threads: explicit count (>= 1) or ``None`` for :func:`cpu_budget`.

    Returns:
        The count applied.

    Raises:
        ValueError: ``threads`` is not an integer >= 1.
    """
    import sys

    import torch
    from threadpoolctl import threadpool_limits

    n = resolve_threads(threads)
    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(n)
    itk = sys.modules.get("itk")
    if itk is not None and "itk.ITKCommonBasePython" in sys.modules:  # ITK already loaded: set its pool too
        itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(n)
    return n
