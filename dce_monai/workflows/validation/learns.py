"""Experiment "Seed 1 learns": the seed 1 model against the kinetic-feature baseline on the same folds.

A phantom cohort with realistic difficulty (``PhantomConfig(difficulty="realistic")``: benign
and malignant kinetics and shapes overlap; the kinetic-only logistic regression lands near
per-lesion AUC 0.84, see docs/phantom.md) is split into patient-wise folds once. The seed 1
bundle (ResNet34 on 2D axial lesion patches, 3 of the 7 channels, per-lesion maximum,
random initialisation: no ImageNet file ships) is trained through the channel search driver
on those folds for the chosen triplets, with learning curves; the kinetic baseline
(:func:`~dce_monai.workflows.baseline_kinetics.run_baseline`) is fitted on the very same
folds file. Both are scored on the lesions both have (a lesion without a patch that avoids
other lesions has no seed 1 score), with patient-resampled bootstrap CIs and DeLong's paired
test.

The model of every fold is the last epoch's; the per-epoch held-out AUC is drawn as a
diagnostic curve only and never picks a model.

Work is cached under ``out``: ``cohort/`` (reused while its settings match), ``search/``
(resumable cells), ``baseline/`` (the feature cache), ``curves.png``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import Section
from .common import DEV_TRIED, fmt, lesion_scores, phantom_cohort, say, search_curves

__all__ = ["LearnsSettings", "QUICK", "plot_learning_curves", "run"]

NAME = "learns"
#: The previous full run of this experiment on this cohort, at fewer steps (printed by this command then).
PAGE_TRIED = ("on this page's cohort and folds, 14 epochs with lr x 0.1 after epoch 10 (about 450 SGD steps per fold, on a "
              "machine shared with other jobs: 929 s): seed 1 0.634 [0.531, 0.728] against the baseline's 0.858 [0.799, 0.915], "
              "training loss 0.58-0.69 at the last epoch and the held-out AUC still rising; the same 30-epoch settings as now, "
              "before the seed 1 bundle applied N4 bias field correction (seed 1's recipe, since added): 0.694 [0.593, 0.782], "
              "0.737 fold mean at the last epoch with training's BatchNorm statistics, 0.682 after the recompute")
BASELINE_MODEL = "logreg_kinetic"


@dataclass(frozen=True)
class LearnsSettings:
    """Settings of the experiment (defaults: the full run, sized for 2 CPU cores).

    Attributes:
        patients: phantom patients (``tiny`` grid: 64x64x16 at 3.2x3.2x6 mm).
        cohort_seed: phantom seed.
        size: phantom grid preset (``"tiny"`` or ``"demo"``).
        k: patient-wise folds (shared by both methods).
        seed: fold, initial-weight, batch-order and augmentation seed.
        triplets: seed 1 channel triplets trained (in lock-step on the same batches).
        max_epochs, learning_rate, lr_step_size, lr_gamma, batch_size, image_size,
        patch_size: the seed 1 bundle's settings of the same names.
        group_size: triplets per lock-step group.
        workers: CPU processes for the search (each one torch thread).
        n_boot: bootstrap resamples of the CIs.
        margin: "learns" means per-lesion AUC at least baseline - margin.
    """

    patients: int = 80
    cohort_seed: int = 0
    size: str = "tiny"
    k: int = 4
    seed: int = 0
    triplets: tuple[tuple[str, str, str], ...] = (("T1pre", "T1post3", "sub"),)
    max_epochs: int = 30
    learning_rate: float = 3e-3
    lr_step_size: int = 22
    lr_gamma: float = 0.1
    batch_size: int = 16
    image_size: int = 32
    patch_size: int = 16
    group_size: int = 1
    workers: int = 2
    n_boot: int = 500
    margin: float = 0.05
    tried: tuple[str, ...] = field(default=(DEV_TRIED, PAGE_TRIED), compare=False)

    def __post_init__(self) -> None:
        if self.patients < 6:
            raise ValueError(f"LearnsSettings.patients must be >= 6 (two folds with both classes), got {self.patients!r}.")
        if self.size not in ("tiny", "demo"):
            raise ValueError(f"LearnsSettings.size must be 'tiny' or 'demo', got {self.size!r}.")
        if not self.triplets:
            raise ValueError("LearnsSettings.triplets is empty: name at least one channel triplet.")
        if not 0 < self.margin < 0.5:
            raise ValueError(f"LearnsSettings.margin must be in (0, 0.5), got {self.margin!r}.")


#: Test-sized settings: a handful of tiny patients, 2 folds, 1 epoch (not evidence).
QUICK = LearnsSettings(patients=10, k=2, triplets=(("T1pre", "T1post3", "sub"),), max_epochs=1, lr_step_size=1,
                       batch_size=16, image_size=32, patch_size=16, workers=1, n_boot=50, tried=())


def _paired(base: dict[str, tuple[int, float, str]], model: dict[str, tuple[int, float, str]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    ids = sorted(set(base) & set(model))
    y = np.array([base[i][0] for i in ids])
    if any(model[i][0] != base[i][0] for i in ids):
        bad = next(i for i in ids if model[i][0] != base[i][0])
        raise ValueError(f"lesion {bad}: label {model[bad][0]} in the seed 1 predictions but {base[bad][0]} in the baseline's.")
    return ids, y, np.array([base[i][1] for i in ids]), np.array([model[i][1] for i in ids]), [base[i][2] for i in ids]


def _cell_train_patches(search_dir: Path, st: LearnsSettings) -> list[int]:
    """Training patches of every fold's cell (the SGD steps per epoch are these // batch size, the loader drops the last partial batch)."""
    return [json.loads(p.read_text())["n_train_patches"] for p in sorted((search_dir / "cells").glob("*.json"))]


def plot_learning_curves(curves: dict[str, list[dict[str, Any]]], baseline_auc: float, path: Path, title: str = "") -> Path:
    """Two panels: per-epoch training loss and (diagnostic) held-out per-lesion AUC, one line per (triplet, fold).

    The final model's held-out AUC (after the BatchNorm recompute) is a marker right of the
    last epoch; the baseline's AUC a dashed line.

    Raises:
        ValueError: no curves.
    """
    from dce_monai.workflows.plots import _pyplot, _save

    if not curves or not any(curves.values()):
        raise ValueError("plot_learning_curves: no curves to draw.")
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ci, (trip, folds) in enumerate(curves.items()):
        c = colors[ci % len(colors)]
        for j, fc in enumerate(folds):
            ep = np.arange(1, len(fc["train_loss"]) + 1)
            lab = trip.replace("+", ", ") if j == 0 else None
            a1.plot(ep, fc["train_loss"], color=c, alpha=0.8, lw=1.2, marker=".", label=lab)
            a2.plot(ep, fc["held_out_auc"], color=c, alpha=0.8, lw=1.2, marker=".", label=lab)
            a2.plot([ep[-1] + 0.6], [fc["final_auc"]], color=c, marker="*", ms=9, ls="none")
    a1.axhline(math.log(2), color="0.5", ls=":", lw=1, label="chance (ln 2)")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (epoch mean, cross-entropy)")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=7.5)
    a2.axhline(baseline_auc, color="tab:red", ls="--", lw=1, label=f"kinetic baseline {baseline_auc:.3f}")
    a2.axhline(0.5, color="0.6", lw=0.8)
    a2.set_xlabel("epoch (star: final model after BatchNorm recompute)")
    a2.set_ylabel("held-out per-lesion AUC (diagnostic only)")
    a2.set_ylim(0.0, 1.0)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=7.5, loc="lower right")
    fig.suptitle(title or "Seed 1 learning curves (one line per triplet and fold; last epoch = the model)", fontsize=10)
    return _save(fig, path, 110)


def run(out: Path, quick: bool = False, progress: bool = True, settings: LearnsSettings | None = None) -> Section:
    """Run the experiment under ``out`` (resumable) and return its page section.

    Args:
        out: experiment folder.
        quick: :data:`QUICK` settings (tests; not evidence).
        progress: print progress lines.
        settings: explicit settings (default: :class:`LearnsSettings` or :data:`QUICK`).

    Raises:
        ValueError: ``out`` holds a cohort or search of other settings (named by the search /
            cohort helpers), or a triplet the cohort lacks.
    """
    import torch

    from dce_monai.data.phantom import PhantomConfig
    from dce_monai.metrics.stats import bootstrap_ci, delong_test, roc_auc
    from dce_monai.workflows.baseline_kinetics import run_baseline
    from dce_monai.workflows.search_channels import merge, run_search, triplet_name

    st = settings or (QUICK if quick else LearnsSettings())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    cfg = (PhantomConfig.tiny if st.size == "tiny" else PhantomConfig.demo)(difficulty="realistic")
    manifest = phantom_cohort(out / "cohort", st.patients, st.cohort_seed, cfg, workers=st.workers, progress=progress, name=NAME)
    t_cohort = time.perf_counter() - t0

    t1 = time.perf_counter()
    say(progress, NAME, f"seed 1 bundle: {len(st.triplets)} triplet(s) x {st.k} folds, {st.max_epochs} epochs (cached cells are skipped)")
    summary = run_search(manifest, out / "search", k=st.k, max_epochs=st.max_epochs, triplets=[tuple(t) for t in st.triplets], seed=st.seed,
                         batch_size=st.batch_size, image_size=st.image_size, patch_size=st.patch_size, workers=st.workers,
                         group_size=st.group_size, progress=progress, curves=True, learning_rate=st.learning_rate,
                         lr_step_size=st.lr_step_size, lr_gamma=st.lr_gamma)
    paths = merge(out / "search", n_boot=st.n_boot, seed=st.seed, tensorboard=False)
    t_search = time.perf_counter() - t1
    say(progress, NAME, f"search: {summary['cells_run']} cell(s) trained, {summary['cells_skipped']} cached, {t_search:.0f} s")

    t2 = time.perf_counter()
    base = run_baseline(manifest, out / "baseline", folds_file=out / "search" / "folds.json", seed=st.seed, n_boot=st.n_boot, progress=False)
    t_base = time.perf_counter() - t2
    say(progress, NAME, f"kinetic baseline on the same folds: {t_base:.0f} s")

    run_info = json.loads((out / "search" / "run.json").read_text())
    base_scores = lesion_scores(base["predictions"], BASELINE_MODEL)
    import csv

    with open(paths["ranking_csv"]) as fh:
        ranking = {r["model"]: r for r in csv.DictReader(fh)}
    rows, curves = [], {}
    ids_b, yb, pb, _, gb = _paired(base_scores, base_scores)
    base_all = {"auc": roc_auc(yb, pb), "ci": bootstrap_ci(yb, pb, "auc", n_boot=st.n_boot, seed=st.seed, groups=gb), "n": len(ids_b), "n_pos": int(yb.sum())}
    for t in st.triplets:
        name = triplet_name(t)
        ids, y, p_base, p_model, g = _paired(base_scores, lesion_scores(paths["predictions"], name))
        auc_m, auc_b = roc_auc(y, p_model), roc_auc(y, p_base)
        ci_m = bootstrap_ci(y, p_model, "auc", n_boot=st.n_boot, seed=st.seed, groups=g)
        ci_b = bootstrap_ci(y, p_base, "auc", n_boot=st.n_boot, seed=st.seed, groups=g)
        dl = delong_test(y, p_model, p_base)
        curves[name] = search_curves(out / "search", t, st.k)
        rows.append({"triplet": name, "n_lesions": len(ids), "n_malignant": int(y.sum()), "auc": auc_m, "auc_ci": list(ci_m),
                     "baseline_auc": auc_b, "baseline_ci": list(ci_b), "delta": auc_m - auc_b, "delong_p": dl["p"],
                     "within_margin": bool(auc_m >= auc_b - st.margin),
                     "collapsed_folds": int(ranking[name]["collapsed_folds"]), "collapse": ranking[name]["collapse"],
                     "final_train_loss": [c["train_loss"][-1] for c in curves[name]],
                     "fold_auc": [c["final_auc"] for c in curves[name]],
                     "held_out_auc_mid_last": [float(np.nanmean([c["held_out_auc"][len(c["held_out_auc"]) // 2] for c in curves[name]])),
                                               float(np.nanmean([c["held_out_auc"][-1] for c in curves[name]]))]})
    fig = plot_learning_curves(curves, rows[0]["baseline_auc"], out / "curves.png")

    n_ok = sum(r["within_margin"] for r in rows)
    verdict = "works" if n_ok == len(rows) else ("partly" if n_ok else "does not")
    seconds = time.perf_counter() - t0
    timing = _timing(out / "timing.json", {"cohort": t_cohort, "search": t_search, "baseline": t_base, "total": seconds,
                                            "cells_trained": summary["cells_run"]}, summary["cells_run"] == 0)
    lines = ["| model | lesions (malignant) | per-lesion AUC (95 % CI) | kinetic baseline, same lesions | difference | DeLong p | collapsed folds | last-epoch training loss per fold |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| seed 1, {r['triplet'].replace('+', ', ')} | {r['n_lesions']} ({r['n_malignant']}) | {fmt(r['auc'])} [{fmt(r['auc_ci'][0])}, {fmt(r['auc_ci'][1])}] | "
                     f"{fmt(r['baseline_auc'])} [{fmt(r['baseline_ci'][0])}, {fmt(r['baseline_ci'][1])}] | {r['delta']:+.3f} | {fmt(r['delong_p'], 3)} | "
                     f"{r['collapsed_folds']} | {', '.join(fmt(v) for v in r['final_train_loss'])} |")
    lines.append(f"| kinetic baseline (`{BASELINE_MODEL}`), all its lesions | {base_all['n']} ({base_all['n_pos']}) | {fmt(base_all['auc'])} "
                 f"[{fmt(base_all['ci'][0])}, {fmt(base_all['ci'][1])}] | | | | | |")
    body = "\n".join(lines) + "\n\n" + (
        "Per-fold held-out AUC of the final models: "
        + "; ".join(f"{r['triplet'].replace('+', ', ')}: {', '.join(fmt(v) for v in r['fold_auc'])}" for r in rows)
        + f". Timings of the run that trained the cells ({timing['cells_trained']} cells): cohort {timing['cohort']:.0f} s, seed 1 training and scoring "
        f"{timing['search']:.0f} s, baseline {timing['baseline']:.0f} s, in all {timing['total']:.0f} s; this run: {seconds:.0f} s "
        f"({summary['cells_run']} cells trained, {summary['cells_skipped']} cached).")
    with open(base["table_csv"]) as fh:
        groups = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    body += ("\n\nHow hard the cohort is, by the hand-crafted baseline on each feature group alone (same folds; `baseline_kinetics_table.csv`; "
             "shape alone must not separate the classes, kinetics should land near the 0.80-0.90 reported for DCE-MRI):\n\n"
             "| classifier | features | n features | per-lesion AUC (95 % CI) |\n|---|---|---:|---|\n"
             + "\n".join(f"| `{g['model']}` | {g['features']} | {g['n_features']} | {fmt(float(g['auc']))} "
                         f"[{fmt(float(g['auc_ci_low']))}, {fmt(float(g['auc_ci_high']))}] |" for g in groups))
    if any(r["collapsed_folds"] for r in rows):
        body += "\n\nCollapsed folds (their scores carry no ranking): " + "; ".join(f"{r['triplet']}: {r['collapse']}" for r in rows if r["collapsed_folds"])
    settings_md = (
        f"Phantom `--difficulty realistic`, `{st.size}` grid, {st.patients} patients (seed {st.cohort_seed}; {run_info['n_lesions']} lesions with patches, "
        f"{run_info['n_patches']} patches; lesions without a patch free of other lesions: {len(run_info['skipped_lesions'])}). "
        f"{st.k} patient-wise folds (seed {st.seed}), one folds file for both methods. Seed 1 bundle "
        f"(`breast_dce_transfer_resnet34` through the channel search driver), random initialisation, patch {st.patch_size}x{st.patch_size} voxels "
        f"resized to {st.image_size}x{st.image_size}, batch {st.batch_size}, SGD momentum 0.9, lr {st.learning_rate:g} x {st.lr_gamma:g} every "
        f"{st.lr_step_size} epochs, {st.max_epochs} epochs, rotation ±180° + flips; **the model of each fold is the last epoch's** "
        f"(the held-out AUC per epoch is drawn as a diagnostic only). Baseline: `dce-monai baseline-kinetics --folds` on the same folds, "
        f"logistic regression on kinetic features only. CIs: {st.n_boot} patient-resampled bootstraps. Criterion: AUC >= baseline - {st.margin:g}."
        + (" Settings tried before: " + "; ".join(st.tried) + "." if st.tried else ""))
    steps = st.max_epochs * (min(_cell_train_patches(out / 'search', st)) // st.batch_size)
    reading = _reading(rows, st, verdict, steps) + " " + _difficulty(groups)
    extra = {"settings": {k: v for k, v in asdict(st).items() if k != "tried"}, "tried": list(st.tried), "rows": rows, "baseline_all": {**base_all, "ci": list(base_all["ci"])},
             "baseline_groups": {g["model"]: {"features": g["features"], "auc": float(g["auc"]),
                                              "ci": [float(g["auc_ci_low"]), float(g["auc_ci_high"])]} for g in groups},
             "curves": curves, "seconds": {**timing, "this_run": seconds},
             "n_patches": run_info["n_patches"], "n_lesions": run_info["n_lesions"], "sgd_steps": steps, "quick": quick}
    return Section(name=NAME, title="Seed 1 learns", question=(
        "Does the seed 1 model (ResNet34 on 2D lesion patches, three channels, per-lesion maximum), trained from random weights "
        "with CPU-sized settings, reach the per-lesion AUC of the kinetic-feature baseline (within "
        f"{st.margin:g}) on the same folds of a cohort with realistic difficulty?"),
        settings=settings_md, body=body, reading=reading, verdict=verdict,
        figures=[(str(fig), "Seed 1 learning curves: training loss per epoch (left) and held-out per-lesion AUC per epoch (right, "
                  "diagnostic only: the model is the last epoch's, its AUC after the BatchNorm recompute is the star).")],
        seconds=timing["total"], extra=extra)


def _timing(path: Path, now: dict[str, Any], cached: bool) -> dict[str, Any]:
    """Timings of the run that did the work: ``now`` written to ``path`` when work was done, else the ones kept there (or ``now``)."""
    if cached and path.is_file():
        return json.loads(path.read_text())
    path.write_text(json.dumps(now, indent=1))
    return now


def _difficulty(groups: list[dict[str, Any]]) -> str:
    """One sentence: is the cohort as hard as the realistic preset promises (kinetics 0.80-0.90, shape alone not separating)?"""
    auc = {g["model"]: float(g["auc"]) for g in groups}
    kin, shape = auc.get(BASELINE_MODEL, float("nan")), max((float(g["auc"]) for g in groups if g["features"] == "shape"), default=float("nan"))
    ok = 0.75 <= kin <= 0.92 and shape < 0.75
    return (f"The cohort {'has' if ok else 'does not have'} the intended difficulty: kinetic features alone give {fmt(kin)}, "
            f"shape features alone at most {fmt(shape)}.")


def _reading(rows: list[dict[str, Any]], st: LearnsSettings, verdict: str, steps: int = 0) -> str:
    parts = []
    for r in rows:
        trip = r["triplet"].replace("+", ", ")
        losses = r["final_train_loss"]
        fold_mean = float(np.nanmean(r["fold_auc"]))
        head = (f"{trip}: pooled AUC {fmt(r['auc'])} vs baseline {fmt(r['baseline_auc'])} ({r['delta']:+.3f}); "
                f"per-fold AUCs {', '.join(fmt(v) for v in r['fold_auc'])} (mean {fmt(fold_mean)})")
        if r["within_margin"]:
            parts.append(head + f", within {st.margin:g}.")
            continue
        why = []
        if min(losses) > 0.45:
            mid, last = r["held_out_auc_mid_last"]
            trend = (f"the diagnostic held-out AUC is still rising (fold mean {fmt(mid)} at mid-training, {fmt(last)} at the last epoch)" if last > mid
                     else f"the diagnostic held-out AUC has stopped rising (fold mean {fmt(mid)} at mid-training, {fmt(last)} at the last epoch)")
            why.append(f"it is undertrained: the training loss has only reached {fmt(min(losses))}-{fmt(max(losses))} at the last epoch "
                       f"(chance ln 2 = 0.693) after about {steps} SGD steps from random weights, and {trend}; "
                       "more steps are needed than this time budget gives")
        else:
            mid, last = r["held_out_auc_mid_last"]
            why.append(f"it learns (held-out AUC from about 0.5 to a fold mean of {fmt(fold_mean)}, training loss down to {fmt(min(losses))}) "
                       "but not as far as the kinetic features in this many steps")
            if last > fold_mean + 0.02:
                why.append(f"the BatchNorm recompute before scoring lowers it: the diagnostic held-out AUC of the last epoch, with the "
                           f"running statistics of training, has a fold mean of {fmt(last)} against {fmt(fold_mean)} after the recompute")
        if r["collapsed_folds"]:
            why.append(f"{r['collapsed_folds']} fold(s) predict one class at 0.5 ({r['collapse']}), and scores of differently calibrated "
                       "fold models pooled together rank worse than within each fold (pooled below the per-fold mean)")
        parts.append(head + ", short of the margin: " + "; ".join(why) + ".")
    lead = {"works": "Seed 1 learns at these settings.", "partly": "Seed 1 learns with some triplets only.",
            "does not": "Seed 1 does not reach the baseline at these settings."}[verdict]
    return lead + " " + " ".join(parts)
