"""Resident memory of the benchmark process, shared by the scripts in ``benchmarks/``.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and they
import it as ``from rss import PeakRSS, rss_mib``.
"""

from __future__ import annotations

import resource
import threading
import time


def rss_mib() -> float:
    """Resident memory of this process now, MiB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Resident memory of this process sampled every 5 ms in a thread; ``reset`` starts a new peak."""

    def __init__(self) -> None:
        self.peak = rss_mib()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.005)

    def reset(self) -> float:
        self.peak = rss_mib()
        return self.peak

    def read(self) -> float:
        time.sleep(0.01)
        return max(self.peak, rss_mib())
