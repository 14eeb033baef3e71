from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from dce_monai import runtime_warnings as rw

ROOT = Path(__file__).resolve().parents[1]


def test_once_filter_keeps_the_first_of_each_prefix():
    log = logging.getLogger("dce_monai.tests.noisy")
    records: list[logging.LogRecord] = []
    h = logging.Handler()
    h.emit = records.append  # type: ignore[method-assign]
    log.addHandler(h)
    log.addFilter(rw.OncePerProcess(["plugin missing", "no codec"]))
    try:
        for _ in range(3):
            log.warning("plugin missing; skipping %s", "x")
            log.warning("no codec for %s", "y")
            log.warning("another message")
    finally:
        log.removeHandler(h)
    assert [r.getMessage() for r in records] == [
        "plugin missing; skipping x", "no codec for y", "another message", "another message", "another message"]


def test_install_is_idempotent_and_targets_monai_loggers():
    rw.install()
    rw.install()
    for name in rw.ONCE_LOG_MESSAGES:
        assert sum(isinstance(f, rw.OncePerProcess) for f in logging.getLogger(name).filters) == 1
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()
        rw.install()
        for _ in range(3):
            warnings.warn("NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully (test)", UserWarning, stacklevel=1)
    assert len(seen) == 1


def test_loaders_built_per_patient_warn_once_per_process():
    """What the kinetic baseline does (a LoadImaged per patient), in a fresh process."""
    code = ("import dce_monai\nfrom monai.transforms import LoadImaged\n"
            "for _ in range(4):\n    LoadImaged(['a'], image_only=True)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    for text in ("nvImageCodec is not available", "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register"):
        assert out.count(text) <= 1, out
