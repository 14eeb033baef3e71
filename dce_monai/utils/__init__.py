"""Base utilities any layer may import (no dce_monai imports of their own)."""

from .distributed import destroy_distributed, init_distributed, is_rank0

__all__ = ["destroy_distributed", "init_distributed", "is_rank0"]
