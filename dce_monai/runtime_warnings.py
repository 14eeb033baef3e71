"""Known third-party warnings that repeat on every call: shown once per process.

MONAI builds an ``NvImgCodecPydicomReader`` each time a ``LoadImage``/``LoadImaged`` is
constructed, and on a machine without nvImageCodec every construction logs
``nvImageCodec is not available; skipping pydicom decoder plugin registration.`` and warns
``NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully``.
Workflows that build a loader per patient (the kinetic baseline) printed them once per
patient. MONAI's bundle runner warns that parsing a config can run code
(``parsing config_file …``). Each message is useful once; :func:`install` (run when
``dce_monai`` is imported) keeps the first and drops the repeats, and nothing else.

Example:
    >>> import dce_monai.runtime_warnings as rw
    >>> rw.install()  # idempotent
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence

__all__ = ["ONCE_LOG_MESSAGES", "ONCE_WARNINGS", "OncePerProcess", "install"]

#: logger name -> message beginnings shown once per process.
ONCE_LOG_MESSAGES: dict[str, tuple[str, ...]] = {
    "monai.data.nvimgcodec_pydicom_plugin": ("nvImageCodec is not available",),
}

#: regular expressions (``warnings.filterwarnings`` ``message``) of warnings shown once per process
#: (per distinct text: MONAI's config warning names the config files, so once per bundle).
ONCE_WARNINGS: tuple[str, ...] = (
    r"NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register",
    r"parsing config_file .*Only proceed if this config is from a source you trust",
)


class OncePerProcess(logging.Filter):
    """Logging filter that lets through the first record starting with each prefix, drops the rest.

    Args:
        prefixes: message beginnings to deduplicate; other messages always pass.

    Example:
        >>> logging.getLogger("noisy").addFilter(OncePerProcess(["cannot find plugin"]))
    """

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for p in self.prefixes:
            if msg.startswith(p):
                with self._lock:
                    if p in self._seen:
                        return False
                    self._seen.add(p)
        return True


def install() -> None:
    """Show each message of :data:`ONCE_LOG_MESSAGES` and :data:`ONCE_WARNINGS` once per process.

    Idempotent. A later ``warnings.simplefilter`` by the user takes precedence (filters added
    later are checked first).
    """
    for name, prefixes in ONCE_LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerProcess) for f in logger.filters):
            logger.addFilter(OncePerProcess(prefixes))
    for pattern in ONCE_WARNINGS:
        warnings.filterwarnings("once", message=pattern)
