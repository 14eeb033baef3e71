"""``dce-monai phantom``: generate a synthetic breast DCE-MRI cohort (NIfTI + manifest).

The options map onto :class:`dce_monai.data.phantom.PhantomConfig` (preset, phases, SNR,
motion, bias) and :func:`dce_monai.data.phantom.generate_cohort` (patients, seed,
shortcut artefact, workers, reference CSV).
"""

from __future__ import annotations

import argparse

from dce_monai.data.phantom import DIFFICULTIES, SHORTCUT_SITES, SIGNALS, PhantomConfig, generate_cohort

__all__ = ["add_cli_arguments", "cli_main"]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``dce-monai phantom`` options to ``parser``.

    Args:
        parser: the sub-command parser.

    Example:
        ``dce-monai phantom --out cohort --patients 100 --seed 0 --workers 2``
    """
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--patients", type=int, default=100, help="number of patients (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--size", choices=("tiny", "demo", "full"), default="demo", help="geometry preset")
    parser.add_argument("--n-post", type=int, default=4, help="post-contrast phases (default 4; --size full samples it)")
    parser.add_argument("--post-interval", type=float, default=90.0, help="s between post phases (default 90)")
    parser.add_argument("--snr", type=float, default=30.0, help="SNR of fibroglandular tissue (default 30)")
    parser.add_argument("--motion-mm", type=float, default=0.0, help="rigid motion between phases, SD in mm")
    parser.add_argument("--bias-strength", type=float, default=0.3, help="peak log amplitude of the bias field")
    parser.add_argument("--shortcut-train", type=float, default=None, help="artefact strength in the train cohort")
    parser.add_argument("--shortcut-test", type=float, default=None, help="artefact strength in the test cohort")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="test cohort fraction with a shortcut")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--difficulty", choices=DIFFICULTIES, default="easy",
        help="easy (default: well separated classes, for smoke tests) or realistic (clinical overlap of kinetics and shape)",
    )
    parser.add_argument(
        "--signal", choices=SIGNALS, default=None,
        help="plant the class signal in known channels only: washout (T1post3.. only) or t2 (T2 only)",
    )
    parser.add_argument(
        "--shortcut-site", choices=SHORTCUT_SITES, default="lung",
        help="where the shortcut artefact goes: lung (default) or near_lesion (skin next to each malignant lesion)",
    )
    parser.add_argument(
        "--reference-csv", default=None, help="cohort CSV (BreastDCEDL layout) to sample geometry and HER2 rate from"
    )


def cli_main(args: argparse.Namespace) -> int:
    """Generate the cohort described by parsed ``args``; print the manifest path.

    Args:
        args: namespace from a parser set up by :func:`add_cli_arguments`.

    Returns:
        0 on success (bad values raise ValueError/FileNotFoundError, which the CLI reports).
    """
    overrides = {"n_post": args.n_post, "post_interval_s": args.post_interval, "snr": args.snr}
    overrides.update(motion_mm=args.motion_mm, bias_strength=args.bias_strength)
    overrides.update(difficulty=args.difficulty, signal=args.signal, shortcut_site=args.shortcut_site)
    cfg = getattr(PhantomConfig, args.size)(**overrides)
    path = generate_cohort(
        args.out,
        args.patients,
        seed=args.seed,
        shortcut_train=args.shortcut_train,
        shortcut_test=args.shortcut_test,
        test_fraction=args.test_fraction,
        workers=args.workers,
        reference_csv=args.reference_csv,
        config=cfg,
    )
    print(f"manifest: {path}")
    return 0
