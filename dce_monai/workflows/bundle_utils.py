"""Run the bundles in ``bundles/`` from Python, as ``python -m monai.bundle run`` would.

The pieces the bundle configs instantiate live in the layer each belongs to:
:func:`dce_monai.data.datalist.fold_datalist`, :class:`dce_monai.data.patch_cache.PatchDataset`,
:func:`dce_monai.transforms.registration.phase_registration`,
:mod:`dce_monai.handlers.writers` (predictions, metrics, learning rate),
:mod:`dce_monai.handlers.outputs` (output transforms),
:class:`dce_monai.handlers.distributed.RankZeroOnly` and :mod:`dce_monai.utils.distributed`.
What stays here is the workflows' way in: :func:`bundle_workflow`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BUNDLES_DIR", "bundle_workflow"]

#: The bundles shipped with dce_monai (``bundles/`` next to the package).
BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


def bundle_workflow(bundle: str | Path, configs: Sequence[str], workflow_type: str, **overrides: Any) -> Any:
    """A ``monai.bundle.ConfigWorkflow`` of a bundle, initialised and property-checked.

    What the workflows (``compare-masking``, ``demo``) use to run the bundles exactly as
    ``python -m monai.bundle run`` would, with overrides.

    Args:
        bundle: a bundle folder, or the name of one under :data:`BUNDLES_DIR`.
        configs: config file names in ``configs/``, merged left to right.
        workflow_type: ``"train"`` or ``"infer"`` (MONAI's required-property sets).
        overrides: config ids and values (``bundle_root`` defaults to the bundle folder).

    Raises:
        ValueError: the configs lack required properties of ``workflow_type``.
    """
    from monai.bundle import ConfigWorkflow

    bdir = Path(bundle) if Path(bundle).is_dir() else BUNDLES_DIR / str(bundle)
    cdir = bdir / "configs"
    files = [str(cdir / c) for c in configs]
    overrides = {"bundle_root": str(bdir), **overrides}
    wf = ConfigWorkflow(config_file=files if len(files) > 1 else files[0], meta_file=str(cdir / "metadata.json"),
                        logging_file=str(cdir / "logging.conf"), workflow_type=workflow_type, **overrides)
    wf.initialize()
    try:
        missing = wf.check_properties()
    except KeyError as e:  # MONAI raises for a required property missing from the configs
        missing = [str(e).strip("\"'")]
    if missing:
        raise ValueError(f"bundle {str(bdir)!r} lacks properties {missing} for {workflow_type}.")
    return wf
