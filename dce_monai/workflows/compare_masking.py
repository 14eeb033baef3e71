"""``dce-monai compare-masking``: seed 2's experiment, three inputs x k patient-wise folds.

Every (variant, fold) cell trains the ``breast_dce_maskguided_vgg3d`` bundle through
``monai.bundle.ConfigWorkflow`` with overrides (``--variant``, ``--fold``, epochs, size), then runs
the bundle's inference config on the training and the held-out fold to write per-lesion
predictions (``dce_monai.metrics.results`` format, split ``train``/``test``), and measures the
fraction of CAM mass inside the tumour mask on the held-out fold (and on the independent cohort,
when there is one: ``external_attention_in_mask``). Finished cells
(``cells/<variant>_fold<k>/cell.json``, written atomically) are skipped on a re-run when their
fingerprint (:func:`cell_settings`: variant, fold, epochs, sizes, learning rate, widths, field of
view, seed, the folds, the manifest's content hash and the bundle configs' hashes) equals this
run's; a cell computed with any other setting makes the run stop before any training, naming
the cell and the settings that differ (use another ``--out``, or delete ``cells/``); a cell of an
older cell format (:data:`CELL_FORMAT`: older versions named the held-out fold ``val`` and the
independent cohort ``test``) is refused likewise. A cell file that cannot be read is named in a
log line and recomputed. The summary table mirrors the seed paper's Tables 2/3: ACC and AUC on
the training patients (``train_*``) and on the held-out fold (``test_*``), mean +- SD over
folds, and the attention-inside-mask fraction, as CSV and Markdown. When the manifest has
patients with ``cohort: test`` (e.g. a phantom cohort generated with a shortcut present only in
training), the folds are drawn from the ``train`` cohort and every cell also predicts that
independent cohort (split ``external``, columns ``external_acc``/``external_auc``): whether
mask guidance generalises better.

Reference: seed 2 (mask-guided 3D VGG), ``/work/shared/seeds/004_*``.

Example:
    dce-monai compare-masking cohort/manifest.json --out runs/cmp --k 5 --max-epochs 50
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["BUNDLE", "CELL_FORMAT", "VARIANTS", "add_cli_arguments", "cell_settings", "cli_main", "run_cell", "run_compare_masking", "summarize_cells"]

VARIANTS = ("no_mask", "mask_only", "mask_guided")
BUNDLE = "breast_dce_maskguided_vgg3d"  # under dce_monai.workflows.bundle_utils.BUNDLES_DIR (the bundle folder)
#: Version of a cell's files (``cell.json`` keys, ``predictions_<split>.csv`` names and split values), part of
#: its settings. 2: ``train``/``test`` (held-out fold)/``external`` (independent cohort); 1 (no ``cell_format``
#: key): the held-out fold was ``val`` and the independent cohort ``test``. Format-2 cells written before
#: ``external_attention_in_mask`` was recorded lack that key and are still reused (every other figure is the
#: same): :func:`summarize_cells` then leaves that column out, and readers take it with ``.get``.
CELL_FORMAT = 2
#: Prediction splits of a cell and the bundle ``split`` each is inferred on (``external``: the
#: independent cohort's records, passed as the datalist).
CELL_SPLITS = (("train", "train"), ("test", "test"), ("external", "all"))


def _workflow(configs: list[str], root: Path, workflow_type: str, overrides: dict[str, Any]) -> Any:
    from dce_monai.workflows.bundle_utils import bundle_workflow

    return bundle_workflow(BUNDLE, configs, workflow_type, **{"bundle_root": str(root), **overrides})


def _attention_fraction(wf: Any, cam_dir: Path | None = None, n_png: int = 2, title: str = "") -> float:
    """Mean CAM fraction inside ``mask`` over the workflow's validation dataset (target class CAM).

    The first ``n_png`` lesions' CAM overlays (central axial slice, mask outlined) are saved
    as ``cam_dir/cam_<lesion_id>.png`` when ``cam_dir`` is given; the report shows them.
    """
    from monai.networks import eval_mode

    from dce_monai.handlers.cam_images import save_cam_overlay_png
    from dce_monai.metrics.attention import attention_fraction

    net = wf.parser.get_parsed_content("network")
    net = getattr(net, "module", net)
    ds = wf.parser.get_parsed_content("validate#dataset")
    device = next(net.parameters()).device
    vals: list[float] = []
    with eval_mode(net):  # eval + no_grad, the network's mode restored afterwards
        for item in ds:
            x = torch.as_tensor(item["image"])[None].to(device)
            m = torch.as_tensor(item["mask"])[None].to(device)
            cam = net.cam(x, class_idx=torch.as_tensor([int(item["label"])]))
            vals.append(float(attention_fraction(cam, m).mean()))
            if cam_dir is not None and len(vals) <= n_png:
                lid = str(item.get("lesion_id", len(vals)))
                save_cam_overlay_png(cam_dir / f"cam_{lid}.png", x[0, 0].cpu(), cam[0, 0].cpu(), m[0, 0].cpu(),
                                     title=f"{title} {lid} (label {int(item['label'])}, in mask {vals[-1]:.2f})")
    return float(np.mean(vals)) if vals else float("nan")


#: Remedy named when a cell of other settings is found in ``--out``.
_REMEDY = "Use another --out folder, or delete its cells/ folder to recompute every cell."


def cell_settings(
    manifest: str | Path, folds: str | Path, variant: str, fold: int, overrides: dict[str, Any] | None, has_external: bool,
) -> dict[str, Any]:
    """Every setting that changes a cell's result: what its fingerprint is computed from.

    The manifest and folds enter by content (SHA-256 of the manifest's canonical JSON, so
    re-indenting it changes nothing; the folds' patient lists), the bundle by the hashes of its
    ``train.json`` and ``inference.json``; image files are not hashed (replacing an image under
    an unchanged manifest is not detected).

    Args:
        manifest: the manifest file the bundle reads.
        folds: folds JSON.
        variant: one of :data:`VARIANTS`.
        fold: held-out fold index.
        overrides: the bundle overrides of the run (epochs, sizes, learning rate, widths,
            field of view, seed ...).
        has_external: whether the cohort has an independent cohort (manifest ``cohort: test``),
            scored as split ``external``.

    Returns:
        A JSON-serialisable dict (stored in ``cell.json`` as ``settings``).
    """
    from dce_monai.data.folds import read_folds
    from dce_monai.workflows.bundle_utils import BUNDLES_DIR
    from dce_monai.workflows.cells import file_sha256, fingerprint

    cfg = BUNDLES_DIR / BUNDLE / "configs"
    return {
        "cell_format": CELL_FORMAT, "variant": variant, "fold": int(fold), **json.loads(json.dumps(overrides or {}, default=str)),
        "manifest_sha256": fingerprint(json.loads(Path(manifest).read_text())), "folds": read_folds(folds), "external_cohort": bool(has_external),
        "bundle_configs_sha256": {n: file_sha256(cfg / n) for n in ("train.json", "inference.json")},
    }


def run_cell(
    manifest: str | Path, folds: str | Path, variant: str, fold: int, out: str | Path,
    overrides: dict[str, Any] | None = None, external_records: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None, cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train one (variant, fold) cell and write its predictions and ``cell.json``.

    Args:
        manifest: cohort manifest JSON.
        folds: folds JSON (``dce_monai.data.folds.write_folds``).
        variant: one of :data:`VARIANTS`.
        fold: held-out fold index.
        out: cell folder (bundle_root of the run).
        overrides: extra bundle overrides (``max_epochs``, ``spatial_size``, ``batch_size``, ...).
        external_records: lesion records of an independent cohort (manifest ``cohort: test``),
            predicted with split ``external`` when given.
        settings: the cell's :func:`cell_settings` (default: computed here); ``cell.json``
            records them with their fingerprint.
        cache_dir: the bundle's ``cache_dir``: folder of the preprocessed lesions shared by every
            cell and run (:mod:`dce_monai.data.preprocess_cache`); ``None``: in memory only.
            Not part of the settings (it changes where results are kept, not what they are).

    Returns:
        The cell record (variant, fold, ``train_*``/``test_*`` (and ``external_*``) metrics, attention
        fraction on the held-out fold (``attention_in_mask``) and, with ``external_records``, on the
        independent cohort (``external_attention_in_mask``), seconds).

    Raises:
        ValueError: unknown variant.
    """
    from dce_monai.metrics.collapse import score_collapse
    from dce_monai.metrics.results import read_predictions
    from dce_monai.metrics.stats import binary_metrics
    from dce_monai.workflows.cells import fingerprint, write_json_atomic

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    if settings is None:
        settings = cell_settings(manifest, folds, variant, fold, {**(overrides or {})}, bool(external_records))
    fp = fingerprint(settings)
    # recorded before training: the bundle resumes from checkpoints in this folder, which must
    # belong to these settings (run_compare_masking refuses a folder started with other ones)
    write_json_atomic(root / "started.json", {"fingerprint": fp, "settings": settings})
    t0 = time.time()
    # validate_data off: run_compare_masking validated the cohort once before the first cell
    base = {"manifest": str(manifest), "folds": str(folds), "fold": int(fold), "variant": variant, "validate_data": False,
            "cache_dir": None if cache_dir is None else str(cache_dir), **(overrides or {})}
    split_lists: dict[str, Any] = {}
    if external_records:
        # the bundle's fold_datalist puts every patient outside the held-out fold into train;
        # with an independent cohort the train/test lists come from the train cohort only
        from dce_monai.data.folds import fold_split, read_folds
        from dce_monai.data.manifest import load_manifest

        recs = load_manifest(manifest).to_datalist(level="lesion", cohort="train")
        parts = fold_split(recs, read_folds(folds), int(fold))
        split_lists = {"train": parts["train"], "test": parts["test"]}
        base = {**base, "train#datalist": split_lists["train"], "validate#datalist": split_lists["test"]}
    wf = _workflow(["train.json"], root, "train", base)
    wf.run()
    wf.finalize()
    record: dict[str, Any] = {"variant": variant, "fold": int(fold)}
    splits = [s for s in CELL_SPLITS if s[0] != "external" or external_records]
    for split, bundle_split in splits:
        pred = root / f"predictions_{split}.csv"
        # inference.json stands alone (its own `datalist`); `validate#datalist` (split `val_split`)
        # feeds train.json's validation dataset, which _attention_fraction reads: the same records
        records = (external_records if split == "external" else split_lists.get(bundle_split)) if external_records else None
        extra = {"datalist": records, "validate#datalist": records} if external_records else {}
        inf = _workflow(["train.json", "inference.json"], root, "infer",
                        {**base, "split": bundle_split, "val_split": bundle_split, "predictions_split": split, "predictions_fold": int(fold),
                         "predictions_file": str(pred), "experiment": "compare_masking", **extra})
        inf.run()
        if split == "test":
            record["attention_in_mask"] = _attention_fraction(inf, root / "cam", title=variant)
        elif split == "external":  # the same measure on the independent cohort (no CAM images)
            record["external_attention_in_mask"] = _attention_fraction(inf)
        inf.finalize()
        rows = read_predictions(pred)
        m = binary_metrics([int(r["label"]) for r in rows], [float(r["prob"]) for r in rows])
        record[f"{split}_auc"], record[f"{split}_acc"], record[f"n_{split}"] = m["auc"], m["accuracy"], m["n"]
        c = score_collapse([float(r["prob"]) for r in rows])
        record[f"{split}_collapse"], record[f"{split}_span"] = c["reason"], c["span"]
    record["seconds"] = round(time.time() - t0, 2)
    record.update({"cell_format": CELL_FORMAT, "fingerprint": fp, "settings": settings, "complete": True})
    write_json_atomic(root / "cell.json", record)
    return record


def _finished_cell(cell_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The finished cell in ``cell_dir`` when it has these settings; None when it must be computed.

    Raises:
        ValueError: the cell (finished, or started and holding checkpoints) has other settings,
            a cell of an older :data:`CELL_FORMAT` (other split names), or a cell folder without a
            settings record (written before cells had fingerprints).
    """
    from dce_monai.workflows.cells import fingerprint, read_cell, read_json, settings_diff

    fp = fingerprint(settings)
    for name in ("cell.json", "started.json"):
        old = read_json(cell_dir / name)
        old_settings = old.get("settings") if isinstance(old, dict) else None
        if isinstance(old_settings, dict) and old_settings.get("cell_format", 1) != CELL_FORMAT:
            raise ValueError(
                f"{cell_dir / name} was written by an older dce_monai version (cell format {old_settings.get('cell_format', 1)}, "
                f"this version {CELL_FORMAT}): it names the held-out fold `val` and the independent cohort `test`, which are "
                f"now `test` and `external`, so its results and predictions files are not reused. {_REMEDY}")
    rec = read_cell(cell_dir / "cell.json", fp, settings, remedy=_REMEDY)
    if rec is None:
        started = read_json(cell_dir / "started.json")
        if isinstance(started, dict) and started.get("fingerprint") != fp:
            diff = settings_diff(started.get("settings") if isinstance(started.get("settings"), dict) else {}, settings)
            raise ValueError(f"{cell_dir} holds an unfinished cell (checkpoints) started with other settings: "
                             f"{'; '.join(diff) or 'fingerprint differs'}. {_REMEDY}")
        if started is None and ((cell_dir / "cell.json").is_file() or any((cell_dir / "models").glob("*"))):
            raise ValueError(f"{cell_dir} holds a cell without a settings record (written by an older version): its results and "
                             f"checkpoints cannot be checked against this run's settings. {_REMEDY}")
    return rec


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summarize_cells(cells: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per variant: mean and SD over folds of ACC and AUC and of the attention fraction(s).

    ``train_*``: the fold's training patients; ``test_*``: its held-out fold; ``external_*``: the
    independent cohort, when the cohort has one. ``test_collapsed_folds`` (and
    ``external_collapsed_folds``) count the folds whose scores collapse
    (:func:`dce_monai.metrics.collapse.score_collapse`: near-constant or one predicted class);
    their AUC is no finding. With ``predictions`` (the merged per-lesion rows), ``test_auc_pooled``
    (and ``external_auc_pooled``) is the AUC of all folds' held-out lesions pooled (of all folds'
    predictions of the independent cohort), the figure ``dce-monai report`` shows.
    """
    from dce_monai.metrics.results import HELD_OUT_SPLITS
    from dce_monai.metrics.stats import binary_metrics

    rows = []
    for variant in VARIANTS:
        sel = [c for c in cells if c["variant"] == variant]
        if not sel:
            continue
        row: dict[str, Any] = {"variant": variant, "folds": len(sel)}
        keys = ["train_acc", "train_auc", "test_acc", "test_auc", "attention_in_mask"]
        keys += ["external_acc", "external_auc"] if all("external_auc" in c for c in sel) else []
        # absent from format-2 cells written before it was recorded: the column is then left out
        keys += ["external_attention_in_mask"] if all("external_attention_in_mask" in c for c in sel) else []
        for key in keys:
            m, s = _mean_sd([float(c[key]) for c in sel])
            row[f"{key}_mean"], row[f"{key}_sd"] = m, s
        for split in HELD_OUT_SPLITS if predictions is not None else ():
            pv = [r for r in predictions if r["model"] == variant and r["split"] == split]  # type: ignore[union-attr]
            if pv or split == "test":
                row[f"{split}_auc_pooled"] = binary_metrics([int(r["label"]) for r in pv], [float(r["prob"]) for r in pv])["auc"] if pv else float("nan")
        for split in HELD_OUT_SPLITS:
            if any(f"{split}_auc" in c for c in sel):
                row[f"{split}_collapsed_folds"] = sum(bool(c.get(f"{split}_collapse")) for c in sel)
        rows.append(row)
    return rows


def _table_text(summary: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]], table: str) -> str:
    """comparison.md: what each column is, the table, and every collapsed cell by name."""
    k = max((int(r["folds"]) for r in summary), default=0)
    lines = [f"Masking comparison, {k} patient-wise folds. `*_mean`/`*_sd`: mean and SD over the folds of each fold's "
             "AUC/accuracy (seed 2's Tables 2/3); `train_*`: the fold's training patients, `test_*`: its held-out fold, "
             "`external_*`: the independent cohort (when there is one). `test_auc_pooled`/`external_auc_pooled`: one AUC over "
             "all folds' held-out lesions (all folds' predictions of the independent cohort) pooled (the report's pooled AUC). "
             "`*_collapsed_folds`: folds whose scores collapse (near-constant, or one predicted class at 0.5); their AUC is "
             "not a finding.", "", table.rstrip()]
    bad = [(c, split) for c in cells for split in ("test", "external") if c.get(f"{split}_collapse")]
    if bad:
        lines += ["", "Collapsed cells (AUC from these scores is not a finding):", ""]
        lines += [f"- {c['variant']} fold {c['fold']} ({split}): {c[f'{split}_collapse']}, AUC {float(c[f'{split}_auc']):.3f}" for c, split in bad]
    return "\n".join(lines) + "\n"


def run_compare_masking(
    manifest: str | Path, out: str | Path, k: int = 5, folds: str | Path | None = None,
    variants: Sequence[str] = VARIANTS, overrides: dict[str, Any] | None = None, seed: int = 0,
    progress: bool = True, skip_invalid: bool = False, cache_dir: str | Path | None = "default",
) -> tuple[list[dict[str, Any]], Path]:
    """Run every (variant, fold) cell that is not finished yet, then write the summary table.

    Every lesion is preprocessed (load, masks, crop) once per distinct pipeline and kept in
    ``cache_dir`` (``"default"``: ``<out>/preprocess_cache``; ``None``: in memory per dataset,
    as the bundle alone does): the training, validation and inference passes of every cell, every
    fold, and the variants with the same crop (``no_mask`` and ``mask_guided``) load it, and so
    does a re-run with the same ``--out``. The key covers the transforms' settings and the
    image files' size and mtime (:mod:`dce_monai.data.preprocess_cache`).

    Returns:
        ``(summary rows, path of comparison.md)``; ``comparison.csv`` lies next to it and all
        per-lesion predictions are merged into ``predictions.csv``.
    """
    from dce_monai.data.folds import check_fold_classes, patient_folds, read_folds, write_folds
    from dce_monai.data.manifest import load_manifest, rebase, save_manifest
    from dce_monai.data.validate import require_valid
    from dce_monai.metrics.results import (
        read_predictions,
        write_predictions,
        write_table,
    )

    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"variants must be among {VARIANTS}, got {bad}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cache_dir == "default":
        cache_dir = out / "preprocess_cache"
    full = load_manifest(manifest)
    man = require_valid(full, skip_invalid=skip_invalid)  # every problem listed before any training
    if len(man.patients) < len(full.patients):  # the bundle reads a manifest file: write the valid part
        manifest = save_manifest(rebase(man.to_dict(), full.root), out / "manifest_valid.json")
    # the manifest's cohort "test" (e.g. the shortcut phantom's) is scored as split "external"
    has_external = any(p.get("cohort") == "test" for p in man.patients)
    external_records = man.to_datalist(level="lesion", cohort="test") if has_external else None
    if folds is None:
        folds = out / "folds.json"
        datalist = man.to_datalist(level="lesion", cohort="train") if has_external else man.to_datalist(level="lesion")
        expected = patient_folds(datalist, k=k, seed=seed)
        if not folds.exists():
            write_folds(expected, folds, seed=seed, k_requested=k)
        elif read_folds(folds) != expected:
            raise ValueError(f"{folds} holds other folds than this cohort with --k {k} and --seed {seed} gives; "
                             f"use another --out folder (or pass --folds {folds}).")
    check_fold_classes(man.to_datalist(level="lesion"), read_folds(folds), source=str(folds))  # before any cell trains
    n_folds = len(read_folds(folds))
    cells, all_rows = [], []
    total, i = len(variants) * n_folds, 0
    cell_overrides = {**(overrides or {}), "seed": seed}
    plan = []  # every finished cell is checked against this run's settings before any training
    for variant in variants:
        for fold in range(n_folds):
            cell_dir = out / "cells" / f"{variant}_fold{fold}"
            st = cell_settings(manifest, folds, variant, fold, cell_overrides, has_external)
            plan.append((variant, fold, cell_dir, st, _finished_cell(cell_dir, st)))
    for variant, fold, cell_dir, st, rec in plan:
        i += 1
        if rec is not None:
            if progress:
                print(f"[{i}/{total}] {variant} fold {fold}: done before with the same settings, skipped", flush=True)
        else:
            if progress:
                print(f"[{i}/{total}] {variant} fold {fold}: training", flush=True)
            rec = run_cell(manifest, folds, variant, fold, cell_dir, cell_overrides, external_records, settings=st, cache_dir=cache_dir)
            if progress:
                print(f"[{i}/{total}] {variant} fold {fold}: test AUC {rec['test_auc']:.3f}"
                      + (f" (collapsed: {rec['test_collapse']})" if rec.get("test_collapse") else "")
                      + f", attention {rec['attention_in_mask']:.3f}, {rec['seconds']:.1f} s", flush=True)
        cells.append(rec)
        for split, _ in CELL_SPLITS:
            if (cell_dir / f"predictions_{split}.csv").exists():
                all_rows += read_predictions(cell_dir / f"predictions_{split}.csv")
    write_predictions(out / "predictions.csv", all_rows)
    summary = summarize_cells(cells, all_rows)
    _, md = write_table(summary, out / "comparison")
    md.write_text(_table_text(summary, cells, md.read_text()))
    return summary, md


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai compare-masking``."""
    parser.add_argument("manifest", help="cohort manifest JSON")
    parser.add_argument("--out", required=True, help="output folder (cells/, predictions.csv, comparison.csv/.md)")
    parser.add_argument("--k", type=int, default=5, help="patient-wise folds when --folds is not given")
    parser.add_argument("--folds", default=None, help="folds JSON (default: made with --k and --seed)")
    parser.add_argument("--max-epochs", type=int, default=100, help="epochs per cell (the bundle's max_epochs)")
    parser.add_argument("--spatial-size", type=int, nargs=3, default=[64, 64, 32], help="input volume size X Y Z")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=2.5e-5, help="Adam learning rate (seed 2: 2.5e-5)")
    parser.add_argument("--vgg-channels", type=int, nargs="+", default=None, help="VGG block widths (default bundle's)")
    parser.add_argument("--field-of-view", choices=("lesion", "volume"), default="lesion",
                        help="input of no_mask and mask_guided: a window centred on the lesion, or the whole volume resized (seed 2)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-invalid", action="store_true", help="continue with the valid patients when validation finds problems")
    parser.add_argument("--cache-dir", default="default",
                        help="folder of the preprocessed lesions shared by every cell and re-run (default OUT/preprocess_cache; 'none': in memory only)")


def cli_main(args: argparse.Namespace) -> int:
    """Run the comparison; print the Markdown table. Returns 0."""
    if args.max_epochs < 1 or args.k < 2:
        raise ValueError(f"--max-epochs must be >= 1 and --k >= 2, got {args.max_epochs} and {args.k}.")
    overrides: dict[str, Any] = {"max_epochs": args.max_epochs, "spatial_size": list(args.spatial_size), "batch_size": args.batch_size,
                                 "field_of_view": args.field_of_view, "learning_rate": args.learning_rate}
    if args.vgg_channels:
        overrides["vgg_channels"] = list(args.vgg_channels)
    cache_dir = None if str(args.cache_dir).lower() == "none" else args.cache_dir
    _, md = run_compare_masking(args.manifest, args.out, k=args.k, folds=args.folds, variants=args.variants,
                                overrides=overrides, seed=args.seed, skip_invalid=args.skip_invalid, cache_dir=cache_dir)
    print(md.read_text())
    return 0
