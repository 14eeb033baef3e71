"""Importers that turn real dataset layouts into dce_monai manifests (``dce-monai import``)."""

from __future__ import annotations

from dce_monai.data.manifest import rebase

from .breastdcedl import breastdcedl_manifest, read_breastdcedl
from .clinical import apply_target, column_key, read_table, rows_by_id, target_values
from .generic import generic_manifest
from .mama_mia import mama_mia_manifest

__all__ = [
    "apply_target", "breastdcedl_manifest", "column_key", "generic_manifest", "mama_mia_manifest",
    "read_breastdcedl", "read_table", "rebase", "rows_by_id", "target_values",
]
