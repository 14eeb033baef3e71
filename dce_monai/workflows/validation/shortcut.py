"""Validation experiment ``shortcut``: seed 2's mask guidance with a shortcut the network sees.

Phantom cohorts (``shortcut_site="near_lesion"``: a bright ball on the skin nearest each
malignant lesion, inside the bundle's lesion field of view) with the shortcut present with
every malignant lesion of the training cohort (``shortcut_train=1.0``) and absent from the
external cohort (manifest ``cohort: test``, ``shortcut_test=0.0``), one cohort per seed. The
training cohort is split patient-wise into k = round(1 / heldout_fraction) folds; fold 0 is held
out (it still has the shortcut), the other folds train; the external cohort never trains anything.

Every model is a cell of the ``breast_dce_maskguided_vgg3d`` bundle run by
:func:`dce_monai.workflows.compare_masking.run_cell`, the function ``dce-monai compare-masking``
runs: the bundle's own preprocessing (subtraction, 70 % enhancement threshold, fuzzy C-means
tumour mask, crop: the lesion window for no_mask and mask_guided, the mask's bounding box for
mask_only), its 34-variant augmentation, its loss (cross-entropy; mask_guided: plus lambda x the
soft Dice of the true class's min-max CAM with the mask), the last epoch's model scored (no
selection on any evaluation split). ``max_epochs`` is chosen per cohort so that the number of
optimiser steps (epochs x full batches of the fitting lesions; the bundle's loader drops the last
partial batch) is about ``steps``. The cells of one cohort share one preprocessing cache
(``seed<n>/preprocess_cache``), so each lesion is preprocessed once per pipeline; finished cells
(same settings fingerprint as compare-masking's) are skipped on a re-run.

Rows: ``no_mask``, ``mask_only``, ``mask_guided`` (lambda 10), and the same two CAM models with
one pooling stage fewer (``*_3blocks``: the first three widths, CAM grid 8x8x4 instead of 4x4x2 at
a 32x32x16 input), because the CAM grid's cell against the mask's size limits what the Dice term
can ask of the CAM. A probe on the first seed varies one bundle setting of the mask_guided row at
a time (lambda, learning rate, steps).

Measured per (seed, row): attention inside the tumour mask (fraction of the true class's CAM mass
inside the mask, ``run_cell``'s ``attention_in_mask`` on the held-out fold and
``external_attention_in_mask`` on the external cohort), the AUC on the held-out fold (shortcut
present) and on the external cohort (absent), each AUC with a 95 % bootstrap CI over patients,
and for the mask-guided rows the training batches' CAM Dice over the last 10 % of steps (the
bundle's TensorBoard tag ``train_cam_dice``); over seeds mean +- SD and range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dce_monai.workflows.validation import Section

__all__ = ["PROBES", "ROWS", "run", "settings_for", "shortcut_verdict"]

#: row -> (bundle variant, number of VGG blocks: the first widths of ``settings["widths"]``)
ROWS: dict[str, tuple[str, int]] = {
    "no_mask": ("no_mask", 4),
    "mask_only": ("mask_only", 4),
    "mask_guided": ("mask_guided", 4),
    "no_mask_3blocks": ("no_mask", 3),
    "mask_guided_3blocks": ("mask_guided", 3),
}
#: lambda_dice of the mask_guided rows (seed 2's)
LAMBDA = 10.0

#: probe cells on the first seed: name -> bundle overrides changed against the mask_guided row
#: (``max_epochs_factor``: the row's max_epochs times this)
PROBES: dict[str, dict[str, Any]] = {
    "paper (mask_guided row)": {},
    "lambda 100": {"lambda_dice": 100.0},
    "lr 2.5e-5 (seed 2's)": {"learning_rate": 2.5e-5},
    "2x steps": {"max_epochs_factor": 2},
}


def settings_for(quick: bool) -> dict[str, Any]:
    """The experiment's settings (``quick``: a test run in seconds, not evidence); ``steps``: the target optimiser steps."""
    if quick:
        return {"seeds": [0], "n_patients": 14, "size": "tiny", "spatial_size": [32, 32, 16], "steps": 3, "batch_size": 4,
                "learning_rate": 1e-3, "widths": [4, 8, 8, 8], "n_boot": 20, "heldout_fraction": 0.25, "probe": ["paper (mask_guided row)", "lambda 100"]}
    return {"seeds": [0, 1, 2], "n_patients": 48, "size": "tiny", "spatial_size": [32, 32, 16], "steps": 150, "batch_size": 10,
            "learning_rate": 1e-3, "widths": [8, 16, 32, 32], "n_boot": 1000, "heldout_fraction": 0.25, "probe": list(PROBES)}


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[shortcut] {msg}", flush=True)


def _cohort(out: Path, seed: int, s: dict[str, Any], progress: bool) -> Path:
    from dce_monai.data.phantom import generate_cohort
    from dce_monai.data.phantom.config import PhantomConfig

    manifest = out / "cohort" / "manifest.json"
    if not manifest.is_file():
        _log(progress, f"seed {seed}: generating {s['n_patients']} {s['size']} patients (near-lesion shortcut 1.0 train / 0.0 external)")
        generate_cohort(out / "cohort", s["n_patients"], seed=seed, shortcut_train=1.0, shortcut_test=0.0, test_fraction=0.3,
                        config=PhantomConfig(size=s["size"], shortcut_site="near_lesion"), progress=False)
    return manifest


@dataclass
class _Cohort:
    """One cohort seed's inputs of the cells."""

    seed: int
    dir: Path
    manifest: Path
    folds: Path
    external_records: list[dict[str, Any]]
    heldout_records: list[dict[str, Any]]
    n_fit: int
    max_epochs: int
    steps: int

    @property
    def cache_dir(self) -> Path:
        return self.dir / "preprocess_cache"


def _prepare(sd: Path, manifest: Path, seed: int, s: dict[str, Any]) -> _Cohort:
    """Validate the cohort, write its folds (fold 0 held out) and choose max_epochs for about ``s['steps']`` steps.

    The external records are built as ``run_compare_masking`` builds them (lesions of the
    validated manifest's ``cohort: test`` patients).

    Raises:
        ValueError: folds on disk that differ from this cohort's, folds where fold 0 or its training
            part holds one class, or fewer fitting lesions than one batch.
    """
    from dce_monai.data.folds import check_fold_classes, fold_split, patient_folds, read_folds, write_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.data.validate import require_valid

    man = require_valid(load_manifest(manifest))
    train = man.to_datalist(level="lesion", cohort="train")
    k = max(2, round(1 / s["heldout_fraction"]))
    expected = patient_folds(train, k=k, seed=seed)
    folds = sd / "folds.json"
    if not folds.exists():
        write_folds(expected, folds, seed=seed, k_requested=k)
    elif read_folds(folds) != expected:
        raise ValueError(f"{folds} holds other folds than cohort seed {seed} with k {k} gives; delete {sd} to start this seed afresh.")
    folds_ = read_folds(folds)
    # only fold 0 is run: its held-out patients against all the others
    check_fold_classes(train, [folds_[0], [p for f in folds_[1:] for p in f]], source=str(folds))
    parts = fold_split(train, folds_, 0)
    n_fit, batch = len(parts["train"]), int(s["batch_size"])
    if n_fit < batch:
        raise ValueError(f"cohort seed {seed}: {n_fit} fitting lesions, fewer than one batch of {batch}; raise n_patients or lower batch_size.")
    per_epoch = n_fit // batch  # the bundle's train loader drops the last partial batch
    max_epochs = max(1, round(int(s["steps"]) / per_epoch))
    return _Cohort(seed=seed, dir=sd, manifest=manifest, folds=folds, external_records=man.to_datalist(level="lesion", cohort="test"),
                   heldout_records=parts["test"], n_fit=n_fit, max_epochs=max_epochs, steps=max_epochs * per_epoch)


def _overrides(s: dict[str, Any], c: _Cohort, variant: str, blocks: int, change: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bundle overrides of one cell (``change``: a probe's)."""
    change = dict(change or {})
    factor = int(change.pop("max_epochs_factor", 1))
    o: dict[str, Any] = {"max_epochs": c.max_epochs * factor, "spatial_size": list(s["spatial_size"]), "batch_size": int(s["batch_size"]),
                         "field_of_view": "lesion", "learning_rate": float(s["learning_rate"]), "vgg_channels": list(s["widths"])[:blocks],
                         "seed": c.seed}
    if variant == "mask_guided":
        o["lambda_dice"] = LAMBDA
    return {**o, **change}


def _cell_steps(c: _Cohort, overrides: dict[str, Any]) -> int:
    return int(overrides["max_epochs"]) * (c.n_fit // int(overrides["batch_size"]))


def _slug(name: str) -> str:
    return "probe_" + "".join(ch if ch.isalnum() else "_" for ch in name)[:40]


@dataclass
class _Cell:
    """One planned cell: where it lives, what it runs, its finished record (None: to compute)."""

    cohort: _Cohort
    name: str  # row or probe name
    dir: Path
    variant: str
    overrides: dict[str, Any]
    settings: dict[str, Any]
    rec: dict[str, Any] | None


def _plan(c: _Cohort, s: dict[str, Any], first: bool) -> list[_Cell]:
    """Every cell of cohort ``c`` (rows; probes on the first seed), each checked against a finished cell in its folder.

    Raises:
        ValueError: a cell folder holding a cell of other settings (compare-masking's check), or a
            finished cell without ``external_attention_in_mask`` (written before run_cell recorded it).
    """
    from dce_monai.workflows.compare_masking import _finished_cell, cell_settings

    todo = [(row, c.dir / "cells" / row, variant, _overrides(s, c, variant, blocks)) for row, (variant, blocks) in ROWS.items()]
    if first:
        todo += [(name, c.dir / "cells" / _slug(name), "mask_guided", _overrides(s, c, "mask_guided", 4, PROBES[name]))
                 for name in s["probe"] if PROBES[name]]  # the paper probe is the mask_guided row's cell
    cells = []
    for name, cell_dir, variant, o in todo:
        st = cell_settings(c.manifest, c.folds, variant, 0, o, True)
        rec = _finished_cell(cell_dir, st)
        if rec is not None and "external_attention_in_mask" not in rec:
            raise ValueError(f"{cell_dir / 'cell.json'} lacks external_attention_in_mask (written before run_cell recorded it); "
                             f"delete {cell_dir} to recompute that cell.")
        cells.append(_Cell(c, name, cell_dir, variant, o, st, rec))
    return cells


def _train_dice(cell_dir: Path) -> float:
    """Mean ``train_cam_dice`` (the bundle's TensorBoard tag, mask-guided trainer) over the last 10 % of steps; NaN when not logged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(cell_dir / "eval"), size_guidance={"scalars": 0})
    acc.Reload()
    if "train_cam_dice" not in acc.Tags().get("scalars", []):
        return float("nan")
    by_step = {e.step: e.value for e in acc.Scalars("train_cam_dice")}  # a resumed run's later value wins
    vals = [by_step[k] for k in sorted(by_step)]
    return float(np.mean(vals[-max(1, len(vals) // 10):]))


def _score(cell: _Cell, n_boot: int) -> dict[str, Any]:
    """A finished cell's figures: attention in mask and AUC (95 % patient-bootstrap CI) on the held-out fold and the external cohort."""
    from dce_monai.metrics.results import read_predictions
    from dce_monai.metrics.stats import bootstrap_ci, roc_auc

    rec = cell.rec or {}
    out: dict[str, Any] = {}
    for part, split in (("heldout", "test"), ("external", "external")):
        rows = read_predictions(cell.dir / f"predictions_{split}.csv")
        y = np.array([int(r["label"]) for r in rows])
        p = np.array([float(r["prob"]) for r in rows])
        grp = [str(r["patient_id"]) for r in rows]
        if len(set(y.tolist())) == 2:
            ci = bootstrap_ci(y, p, n_boot=n_boot, groups=grp, seed=0)
            out[f"auc_{part}"], out[f"auc_{part}_ci"] = round(roc_auc(y, p), 3), [round(float(ci[0]), 3), round(float(ci[1]), 3)]
        else:
            out[f"auc_{part}"], out[f"auc_{part}_ci"] = float("nan"), [float("nan"), float("nan")]
        out[f"n_{part}"] = len(rows)
    out["attention_heldout"] = round(float(rec["attention_in_mask"]), 4)
    out["attention_external"] = round(float(rec["external_attention_in_mask"]), 4)
    dice = _train_dice(cell.dir) if cell.variant == "mask_guided" else float("nan")
    out["train_dice_last10pct"] = dice if math.isnan(dice) else round(dice, 4)
    out["steps"] = _cell_steps(cell.cohort, cell.overrides)
    out["max_epochs"] = int(cell.overrides["max_epochs"])
    out["seconds"] = float(rec["seconds"])
    return out


def _bundle_model(cell: _Cell, records: list[dict[str, Any]], load: bool = True) -> tuple[Any, Any]:
    """``(network, dataset)`` of a cell through the bundle (train.json + inference.json, as ``_attention_fraction``
    reads them): its network with the cell's ``models/model.pt`` (``load``) and ``records`` preprocessed by its
    pipeline from the cohort's cache."""
    from dce_monai.workflows.compare_masking import _workflow

    c = cell.cohort
    inf = _workflow(["train.json", "inference.json"], cell.dir, "infer",
                    {"manifest": str(c.manifest), "folds": str(c.folds), "fold": 0, "variant": cell.variant, "validate_data": False,
                     "cache_dir": str(c.cache_dir), **cell.overrides, "datalist": records})
    net = inf.parser.get_parsed_content("network")
    if load:
        ckpt = cell.dir / "models" / "model.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{cell.name}: the cell's final model {str(ckpt)!r} does not exist; delete {cell.dir} to recompute the cell.")
        state = torch.load(ckpt, map_location=next(net.parameters()).device, weights_only=True)
        net.load_state_dict(state["model"] if set(state) == {"model"} else state)  # CheckpointSaver stores a lone object's state_dict
    return net.eval(), inf.parser.get_parsed_content("dataset")


def _mask_share(cell: _Cell) -> float:
    """Mean share of the window inside the tumour mask over the external lesions (what a uniform CAM scores)."""
    _, ds = _bundle_model(cell, cell.cohort.external_records, load=False)
    return float(np.mean([float(torch.as_tensor(item["mask"]).float().mean()) for item in ds]))


def _panel(path: Path, cells: dict[str, _Cell]) -> tuple[Path, str]:
    """Per row: one held-out malignant lesion (shortcut present), image MIP with the CAM's max projection, mask outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dce_monai.handlers.cam_images import cam_overlay

    c = next(iter(cells.values())).cohort
    malignant = [r for r in c.heldout_records if int(r["label"]) == 1]
    rec = (malignant or c.heldout_records)[0]
    lid = str(rec.get("lesion_id", ""))
    fig, ax = plt.subplots(1, len(cells), figsize=(2.6 * len(cells), 3.1))
    for a, (row, cell) in zip(np.atleast_1d(ax), cells.items()):
        net, ds = _bundle_model(cell, [rec])
        item = ds[0]
        x = torch.as_tensor(item["image"]).as_tensor()[None].float()
        m = torch.as_tensor(item["mask"]).as_tensor()[0].float()
        with torch.no_grad():
            dev = next(net.parameters()).device
            cam = net.cam(x.to(dev), class_idx=torch.as_tensor([int(item["label"])], device=dev))[0, 0].cpu()
        frac = float((cam * m).sum() / cam.sum())
        a.imshow(cam_overlay(x[0, 0].amax(-1).T, cam.amax(-1).T, (m.amax(-1) > 0).float().T))
        a.set_title(f"{row}\nin mask {frac:.2f}", fontsize=8)
        a.axis("off")
    fig.suptitle(f"seed {c.seed}, held-out malignant lesion {lid} (shortcut present): MIP, CAM max projection, mask in green", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.86))  # room for the suptitle above the panel titles
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path, (f"CAM of the true class (max projection over z, on the image's MIP) of each row's model for one held-out malignant "
                  f"lesion ({lid}, seed {c.seed}) whose window holds the near-lesion shortcut (bright spot on the skin); green: tumour mask. "
                  "mask_only sees only the mask's bounding box.")


def shortcut_verdict(learnt: bool, paper: tuple[bool, bool], deep: tuple[bool, bool]) -> str:
    """The section's verdict from (no_mask learnt the shortcut, (attention moved, external AUC better) of the paper's row and of the 3-block row).

    "works" needs the claim tested: an unguided model that leans on the shortcut, and the paper's loss moving
    attention into the mask and keeping the external AUC above the unguided model's. Without the shortcut learnt,
    moved attention or a higher AUC is at most "partly".
    """
    return "works" if learnt and all(paper) else ("partly" if any(paper) or any(deep) else "does not")


def _fmt_ci(v: float, ci: Sequence[float], nd: int = 3) -> str:
    return f"{v:.{nd}f} [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def _summary(per_seed: dict[str, dict[str, Any]], key: str) -> dict[str, float]:
    v = np.array([per_seed[s][key] for s in per_seed], dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:  # not measured for this row (train Dice of a cross-entropy model)
        return {"mean": float("nan"), "sd": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": round(float(v.mean()), 3), "sd": round(float(v.std(ddof=1)) if v.size > 1 else 0.0, 3),
            "min": round(float(v.min()), 3), "max": round(float(v.max()), 3)}


def _fmt_summary(m: dict[str, float]) -> str:
    """``mean ± SD [min, max]``, or ``–`` when not measured."""
    return "–" if math.isnan(m["mean"]) else f"{m['mean']:.3f} ± {m['sd']:.3f} [{m['min']:.3f}, {m['max']:.3f}]"


def _fmt(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.3f}"


def run(out: Path, quick: bool = False, progress: bool = True) -> Section:
    """Run (resumably) and return the page section. See the module docstring.

    Every cohort is generated and every cell checked against a finished cell in its folder before
    the first cell trains.
    """
    from dce_monai.workflows.compare_masking import run_cell

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = settings_for(quick)
    cohorts = []
    for seed in s["seeds"]:
        sd = out / f"seed{seed}"
        cohorts.append(_prepare(sd, _cohort(sd, seed, s, progress), seed, s))
    plan = [cell for c in cohorts for cell in _plan(c, s, c.seed == s["seeds"][0])]
    for i, cell in enumerate(plan, 1):
        c, tag = cell.cohort, f"[{i}/{len(plan)}] seed {cell.cohort.seed}: {cell.name}"
        if cell.rec is not None:
            _log(progress, f"{tag}: done before with the same settings, skipped")
            continue
        _log(progress, f"{tag}: training, {_cell_steps(c, cell.overrides)} steps ({cell.overrides['max_epochs']} epochs x "
                       f"{c.n_fit // int(cell.overrides['batch_size'])} batches of {c.n_fit} fitting lesions)")
        cell.rec = run_cell(c.manifest, c.folds, cell.variant, 0, cell.dir, cell.overrides, c.external_records,
                            settings=cell.settings, cache_dir=c.cache_dir)
    results: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in ROWS}  # row -> seed -> figures
    probe: dict[str, dict[str, Any]] = {}
    shares: list[float] = []
    seconds = 0.0  # training and inference time of every cell on the page (cached cells count the time they took)
    for cell in plan:
        sc = _score(cell, s["n_boot"])
        seconds += sc["seconds"]
        if cell.name in ROWS:
            results[cell.name][str(cell.cohort.seed)] = sc
            _log(progress, f"seed {cell.cohort.seed}: {cell.name}: attention held-out {sc['attention_heldout']:.3f}, external "
                           f"{sc['attention_external']:.3f}; AUC held-out {sc['auc_heldout']:.3f}, external {sc['auc_external']:.3f}; "
                           f"{sc['steps']} steps, {sc['seconds']:.0f} s")
        else:
            probe[cell.name] = sc
        if cell.name == "no_mask":
            shares.append(_mask_share(cell))
    first = [cell for cell in plan if cell.cohort.seed == s["seeds"][0] and cell.name in ROWS]
    for name in s["probe"]:
        if not PROBES[name]:
            probe[name] = results["mask_guided"][str(s["seeds"][0])]
    probe = {name: probe[name] for name in s["probe"]}  # in the settings' order
    fig = _panel(out / "cam_panel.png", {cell.name: cell for cell in first})
    steps = {str(c.seed): {"fit_lesions": c.n_fit, "max_epochs": c.max_epochs, "steps": c.steps} for c in cohorts}
    return _section(s, results, probe, [(str(fig[0]), fig[1])], seconds, quick, float(np.mean(shares)), steps)


def _section(s: dict[str, Any], results: dict[str, dict[str, dict[str, Any]]], probe: dict[str, dict[str, Any]],
             figures: list[tuple[str, str]], seconds: float, quick: bool, share: float, steps: dict[str, dict[str, int]]) -> Section:
    keys = ("attention_heldout", "attention_external", "auc_heldout", "auc_external", "train_dice_last10pct")
    summary = {row: {k: _summary(per, k) for k in keys} for row, per in results.items()}
    seeds = list(results["no_mask"])
    lines = ["Over seeds (mean ± SD, range in brackets). Attention: share of the true class's CAM mass inside the tumour mask; "
             f"a uniform CAM would give the mask's share of the window, {share:.4f} on the external cohort. "
             "Train Dice: the mask-guided trainer's CAM Dice on its (augmented) training batches, last 10 % of steps.", "",
             "| row | CAM grid | λ | attention in mask (held-out, shortcut present) | attention in mask (external) | "
             "AUC held-out (shortcut present) | AUC external (no shortcut) | train Dice (last 10 % of steps) |",
             "|---|---|---:|---|---|---|---|---|"]
    for row, (variant, blocks) in ROWS.items():
        grid = "x".join(str(-(-int(v) // 2 ** (blocks - 1))) for v in s["spatial_size"])
        lam = f"{LAMBDA:g}" if variant == "mask_guided" else "–"
        lines.append(f"| {row} | {grid} | {lam} | " + " | ".join(_fmt_summary(summary[row][k]) for k in keys) + " |")
    lines += ["", "Per seed, AUC with 95 % bootstrap CIs over patients (" + str(s["n_boot"]) + " resamples):", "",
              "| seed | row | steps | attention in mask (held-out) | attention in mask (external) | AUC held-out | AUC external |",
              "|---|---|---:|---|---|---|---|"]
    for sd in seeds:
        for row in ROWS:
            r = results[row][sd]
            lines.append(f"| {sd} | {row} | {r['steps']} | {r['attention_heldout']:.3f} | {r['attention_external']:.3f} | "
                         f"{_fmt_ci(r['auc_heldout'], r['auc_heldout_ci'])} | {_fmt_ci(r['auc_external'], r['auc_external_ci'])} |")
    lines += ["", f"Probe (seed {seeds[0]}, the mask_guided row's bundle settings with one change each):", "",
              "| change | steps | attention in mask (held-out) | attention in mask (external) | AUC external | train Dice (last 10 %) |",
              "|---|---:|---|---|---|---|"]
    lines += [f"| {name} | {p['steps']} | {p['attention_heldout']:.3f} | {p['attention_external']:.3f} | {p['auc_external']:.3f} | "
              f"{_fmt(p['train_dice_last10pct'])} |" for name, p in probe.items()]
    body = "\n".join(lines) + "\n"

    def moved(row: str) -> bool:  # attention at least doubled against no_mask of the same depth, in every seed
        base = "no_mask_3blocks" if row.endswith("_3blocks") else "no_mask"
        return all(results[row][sd]["attention_external"] >= 2 * results[base][sd]["attention_external"] for sd in seeds)

    def better(row: str) -> bool:  # external AUC above no_mask's in every seed and by >= 0.05 on average
        base = "no_mask_3blocks" if row.endswith("_3blocks") else "no_mask"
        d = [results[row][sd]["auc_external"] - results[base][sd]["auc_external"] for sd in seeds]
        return all(x > 0 for x in d) and float(np.mean(d)) >= 0.05

    paper, deep = (moved("mask_guided"), better("mask_guided")), (moved("mask_guided_3blocks"), better("mask_guided_3blocks"))
    sm = summary
    f = lambda row, k: _fmt(sm[row][k]["mean"])  # noqa: E731
    learnt = sm["no_mask"]["auc_heldout"]["mean"] - sm["no_mask"]["auc_external"]["mean"] >= 0.1
    verdict = shortcut_verdict(learnt, paper, deep)
    reading = (
        ("With the shortcut in view, no_mask learns it" if learnt else "no_mask's AUC barely drops without the shortcut (it did not lean on it much)")
        + f": AUC {f('no_mask', 'auc_heldout')} on held-out patients that still carry it, "
        f"{f('no_mask', 'auc_external')} on the external cohort without it, with {f('no_mask', 'attention_external')} of its CAM inside the mask "
        f"there (uniform: {share:.4f}; held-out: {f('no_mask', 'attention_heldout')}). The paper's loss (mask_guided) "
        + ("moves attention into the mask (at least twice no_mask's in every seed: "
           if paper[0] else "does not move attention enough to matter (not twice no_mask's in every seed: ")
        + f"{f('mask_guided', 'attention_external')} on the external cohort, {f('mask_guided', 'attention_heldout')} held-out) and "
        + ("raises" if paper[1] else "does not raise")
        + f" the external AUC ({f('mask_guided', 'auc_external')} vs {f('no_mask', 'auc_external')}); its CAM Dice with the mask on the "
        f"training batches ends at {f('mask_guided', 'train_dice_last10pct')}. One pooling stage fewer (CAM grid 8x8x4 instead of 4x4x2, "
        f"a CAM cell then about the lesion's size) gives attention {f('mask_guided_3blocks', 'attention_external')} vs "
        f"{f('no_mask_3blocks', 'attention_external')} for its unguided twin and external AUC {f('mask_guided_3blocks', 'auc_external')} vs "
        f"{f('no_mask_3blocks', 'auc_external')}"
        + (" (attention moved in every seed" if deep[0] else " (attention not doubled in every seed")
        + ("; AUC better)." if deep[1] else "; AUC not better).")
        + " The probe changes one bundle setting of the mask_guided row at a time (λ, lr, steps); compare its attention columns with the "
        "paper row's. mask_only, cropped to the mask's box, is the reference of a model that cannot see the shortcut: external AUC "
        f"{f('mask_only', 'auc_external')}."
        + (" Attention pulled toward the mask did not stop the class score from using the shortcut: the Dice term constrains where the "
           "min-max normalised CAM peaks, not what the spatially averaged logit sums, so a network can keep the shortcut's contribution to "
           "the logit while raising the CAM's peak inside the mask." if learnt and (paper[0] or deep[0]) and not (paper[1] or deep[1]) else "")
        + ("" if learnt else " This cohort therefore does not test whether guidance protects against the shortcut: at these settings the "
           "unguided model learnt little from the lesion window at all.")
    )
    per_seed_steps = "; ".join(f"seed {sd}: {v['max_epochs']} epochs x {v['steps'] // v['max_epochs']} batches of the "
                               f"{v['fit_lesions']} fitting lesions = {v['steps']} steps" for sd, v in steps.items())
    settings = (
        f"{len(seeds)} cohort seeds ({', '.join(seeds)}); per seed {s['n_patients']} `{s['size']}` phantom patients "
        "(`--shortcut-site near_lesion`, shortcut 1.0 in the training cohort, 0.0 in the external 30 %); "
        f"training cohort in {max(2, round(1 / s['heldout_fraction']))} patient-wise folds, fold 0 held out "
        f"({s['heldout_fraction']:.0%} of the training patients, shortcut present). Each model is one seed 2 bundle cell "
        "(`breast_dce_maskguided_vgg3d`) trained and scored by `compare-masking`'s `run_cell`: input T1post1 through the bundle's "
        f"preprocessing, window {'x'.join(map(str, s['spatial_size']))} (`field_of_view: lesion`; mask_only: the mask's box + 5 mm), "
        f"the bundle's 34-variant augmentation, VGG3DCAM widths {s['widths']} (3-block rows: the first three), Adam lr "
        f"{s['learning_rate']:g}, batch {s['batch_size']} (last partial batch dropped), λ = {LAMBDA:g} for mask_guided, CAM of the true "
        f"class; max_epochs chosen for about {s['steps']} optimiser steps ({per_seed_steps}; the probe's `2x steps` doubles them); the "
        "last epoch's model is scored. The cells of a cohort share one preprocessing cache; finished cells are reused on a re-run."
    )
    return Section(name="shortcut", title="Mask guidance with a shortcut in view", question=(
        "With a shortcut next to each malignant lesion in training and absent in an external cohort, does seed 2's mask-guided loss "
        "move the CAM into the tumour mask and keep the external AUC above the unguided model's? If not, what stops it?"),
        settings=settings, body=body, reading=reading, verdict=verdict, figures=figures, seconds=seconds,
        extra={"settings": s, "per_seed": results, "summary": summary, "probe": probe, "mask_share_external": round(share, 4),
               "steps": steps, "quick": quick})
