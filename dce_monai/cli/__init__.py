"""``dce-monai`` console entry point.

Every subcommand is a module exposing ``add_cli_arguments(parser)`` and
``cli_main(args) -> int``. The data commands (``phantom``, ``validate``, ``ingest``,
``import``, ``folds``) are modules of this package, ``dce_monai/cli/<command>.py``, so the
data layer holds no command-line code; the experiment commands still live in their
workflow modules (``dce_monai/workflows/*.py``). This file only maps names to modules, so
importing the CLI stays cheap (torch/ITK load only for the command run).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("dce_monai.cli.phantom", "generate a synthetic breast DCE-MRI cohort (NIfTI + manifest)"),
    "validate": ("dce_monai.cli.validate", "check a manifest and the files it names; list every problem"),
    "ingest": ("dce_monai.cli.ingest", "convert a DICOM folder (DCE phases, T2) into de-identified NIfTI per sequence + manifest"),
    "import": ("dce_monai.cli.importers", "convert a real dataset layout (MAMA-MIA, mapping CSV, BreastDCEDL) into a manifest"),
    "folds": ("dce_monai.cli.folds", "write patient-wise stratified k-fold splits for a manifest"),
    "search-channels": ("dce_monai.workflows.search_channels", "seed 1's channel-triplet search: all triplets x k patient-wise folds, resumable, shardable, ranked table"),
    "compare-masking": ("dce_monai.workflows.compare_masking", "seed 2's experiment: no_mask / mask_only / mask_guided x k patient-wise folds through the maskguided_vgg3d bundle, resumable, ACC/AUC + attention-in-mask table"),
    "baseline-kinetics": ("dce_monai.workflows.baseline_kinetics", "kinetic-feature baseline (logistic regression, gradient boosting) on the deep models' patient-wise folds"),
    "report": ("dce_monai.workflows.report", "Markdown + HTML report of every experiment found in a run folder"),
    "validation": ("dce_monai.workflows.validation", "planted-truth experiments: does each method find the signal a phantom cohort hides? Writes docs/validation.md"),
    "demo": ("dce_monai.workflows.demo", "run the demo: phantom cohort, validation and the available experiments"),
}


def build_parser() -> argparse.ArgumentParser:
    from dce_monai import __version__

    parser = argparse.ArgumentParser(
        prog="dce-monai", description="MONAI-based toolkit for breast DCE-MRI."
    )
    parser.add_argument("--version", action="version", version=f"dce_monai {__version__}")
    parser.add_argument(
        "--threads", dest="process_threads", type=int, default=None, metavar="N",
        help="torch/BLAS/OpenMP threads for the whole command, given before it (default: OMP_NUM_THREADS "
        "where set, else the CPUs this process may run on, os.sched_getaffinity; a command's own --threads "
        "applies inside it)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module)
        mod.add_cli_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    mod = importlib.import_module(args._module)
    try:
        from dce_monai.workflows.threads import set_process_threads

        set_process_threads(args.process_threads)
        return int(mod.cli_main(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as e:  # user errors: message, no traceback
        print(f"dce-monai {args.command}: error: {e}", file=sys.stderr)
        return 2
