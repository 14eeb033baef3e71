"""dce_monai: a MONAI-based toolkit for breast DCE-MRI."""

from __future__ import annotations

__version__ = "0.1.0"

from . import runtime_warnings
from .sequences import CHANNEL_NAMES_KEY, SEQUENCES, triplets

runtime_warnings.install()

__all__ = ["CHANNEL_NAMES_KEY", "SEQUENCES", "__version__", "triplets"]
