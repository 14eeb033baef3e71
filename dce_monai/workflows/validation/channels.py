"""Experiment "The channel search finds planted truth": seed 1's search on cohorts whose class signal lives in known channels.

Cohorts made with ``PhantomConfig(signal="washout")``: benign and malignant lesions are drawn
from one distribution, and only malignant lesions wash out after T1post2, so the class signal
lives in T1post3 and T1post4 (read against an early phase) and T2, T1pre, T1post1, T1post2 and
``sub`` carry none (docs/phantom.md, measured from the written NIfTIs). A triplet is
*informative* when it holds a channel the cohort's manifest lists in
``dataset.generator.informative_channels``. Over several cohort seeds the search (seed 1
bundle, same settings for every triplet, common random numbers) should rank the informative
triplets on top, and the best informative triplet should beat every uninformative one in
DeLong's paired test (p < ``alpha``).

Work is cached under ``out/seed<s>/`` (cohort, search cells); ``ranking.png`` is the figure.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import Section
from .common import DEV_TRIED, fmt, lesion_scores, phantom_cohort, say

__all__ = ["ChannelsSettings", "QUICK", "plot_rankings", "run"]

NAME = "channels"

#: Informative (hold T1post3/T1post4, the washout phases, plus an early reference) and
#: uninformative triplets (no late phase); the rationale of each is in :data:`RATIONALE`.
TRIPLETS: tuple[tuple[str, str, str], ...] = (
    ("T1pre", "T1post1", "T1post4"),
    ("T1pre", "T1post3", "sub"),
    ("T1post1", "T1post2", "T1post4"),
    ("T1pre", "T1post1", "T1post2"),
    ("T2", "T1pre", "sub"),
    ("T2", "T1post1", "sub"),
)

RATIONALE = {
    "T1pre+T1post1+T1post4": "informative: the washout read as a radiologist does, first against last post phase",
    "T1pre+T1post3+sub": "informative: seed 1's best triplet; T1post3 with an early reference (sub = T1post1 - T1pre)",
    "T1post1+T1post2+T1post4": "informative: early post phases and the last one, no pre-contrast image",
    "T1pre+T1post1+T1post2": "uninformative, the hard negative: enhancement (wash-in) without the washout phases",
    "T2+T1pre+sub": "uninformative: T2 and the early subtraction",
    "T2+T1post1+sub": "uninformative: T2 and early enhancement",
}


@dataclass(frozen=True)
class ChannelsSettings:
    """Settings of the experiment (defaults: the full run, sized for 2 CPU cores).

    Attributes:
        cohort_seeds: phantom seeds, one cohort and one search each (>= 3 for the full run).
        patients: patients per cohort (``tiny`` grid).
        k: patient-wise folds.
        seed: fold, weight, batch-order and augmentation seed (the same for every cohort).
        triplets: the triplets searched (both kinds needed).
        max_epochs, learning_rate, lr_step_size, lr_gamma, batch_size, image_size,
        patch_size: the seed 1 bundle's settings.
        group_size: triplets per lock-step group.
        workers: CPU processes (each one torch thread).
        n_boot: bootstrap resamples of the CIs.
        alpha: significance level of the DeLong tests.
    """

    cohort_seeds: tuple[int, ...] = (1, 2, 3)
    patients: int = 30
    k: int = 2
    seed: int = 0
    triplets: tuple[tuple[str, str, str], ...] = TRIPLETS
    max_epochs: int = 4
    learning_rate: float = 3e-3
    lr_step_size: int = 3
    lr_gamma: float = 0.1
    batch_size: int = 16
    image_size: int = 32
    patch_size: int = 16
    group_size: int = 3
    workers: int = 2
    n_boot: int = 300
    alpha: float = 0.05
    tried: tuple[str, ...] = field(default=(DEV_TRIED,), compare=False)

    def __post_init__(self) -> None:
        if not self.cohort_seeds or len(set(self.cohort_seeds)) != len(self.cohort_seeds):
            raise ValueError(f"ChannelsSettings.cohort_seeds must be distinct seeds, at least one, got {self.cohort_seeds!r}.")
        if len(self.triplets) < 2:
            raise ValueError(f"ChannelsSettings.triplets needs at least 2 triplets, got {len(self.triplets)}.")
        if not 0 < self.alpha < 1:
            raise ValueError(f"ChannelsSettings.alpha must be in (0, 1), got {self.alpha!r}.")


#: Test-sized settings (not evidence).
QUICK = ChannelsSettings(cohort_seeds=(1,), patients=10, k=2, triplets=(TRIPLETS[0], TRIPLETS[3], TRIPLETS[4]), max_epochs=1,
                         lr_step_size=1, group_size=3, workers=1, n_boot=50, tried=())


def plot_rankings(per_seed: dict[int, list[dict[str, Any]]], path: Path) -> Path:
    """One panel per cohort seed: AUC with 95 % CI per triplet, best on top, informative triplets orange.

    Raises:
        ValueError: no seeds or an empty ranking.
    """
    from dce_monai.workflows.plots import _pyplot, _save

    if not per_seed or not all(per_seed.values()):
        raise ValueError("plot_rankings: every seed needs a ranking.")
    plt = _pyplot()
    n = len(per_seed)
    n_rows = max(len(v) for v in per_seed.values())
    fig, axes = plt.subplots(n, 1, figsize=(6.8, 0.6 + n * (0.5 + 0.27 * n_rows)), squeeze=False)
    for ax, (s, rows) in zip(axes[:, 0], per_seed.items()):
        items = rows[::-1]  # best on top
        ypos = np.arange(len(items))
        aucs = np.array([r["auc"] for r in items])
        lo = np.array([r["auc_ci"][0] for r in items])
        hi = np.array([r["auc_ci"][1] for r in items])
        err = np.vstack([np.nan_to_num(aucs - lo), np.nan_to_num(hi - aucs)])
        colors = ["tab:orange" if r["informative"] else "tab:blue" for r in items]
        ax.barh(ypos, aucs, xerr=err, color=colors, alpha=0.85, ecolor="0.25", capsize=2, height=0.7)
        ax.set_yticks(ypos, [r["triplet"].replace("+", ", ") for r in items], fontsize=7.5)
        ax.axvline(0.5, color="0.6", lw=0.8)
        ax.set_xlim(0.0, 1.0)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"cohort seed {s}", fontsize=9)
    axes[-1, 0].set_xlabel("per-lesion AUC (bars: 95 % CI; orange: holds T1post3/T1post4 = informative; blue: uninformative)")
    fig.suptitle("Channel search on washout cohorts (best on top)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, 110)


def _seed_result(search_dir: Path, informative: set[str], triplets: list[str], alpha: float) -> dict[str, Any]:
    from dce_monai.metrics.stats import delong_test

    with open(search_dir / "ranking.csv") as fh:
        table = list(csv.DictReader(fh))
    scores = {t: lesion_scores(search_dir / "predictions.csv", t) for t in triplets}
    ids = sorted(scores[triplets[0]])
    y = np.array([scores[triplets[0]][i][0] for i in ids])
    rows = []
    for r in table:
        t = r["model"]
        rows.append({"triplet": t, "rank": int(r["rank"]), "auc": float(r["auc"]), "auc_ci": [float(r["auc_ci_low"]), float(r["auc_ci_high"])],
                     "informative": bool(set(t.split("+")) & informative), "collapsed_folds": int(r["collapsed_folds"])})
    inf = [r for r in rows if r["informative"]]
    uninf = [r for r in rows if not r["informative"]]
    if not inf or not uninf:
        raise ValueError(f"{search_dir}: the triplets need both kinds (informative: holding one of {sorted(informative)}); got "
                         f"{len(inf)} informative and {len(uninf)} uninformative.")
    best = inf[0]  # rows are sorted by AUC
    pb = np.array([scores[best["triplet"]][i][1] for i in ids])
    tests = {}
    for r in uninf:
        d = delong_test(y, pb, np.array([scores[r["triplet"]][i][1] for i in ids]))
        tests[r["triplet"]] = {"p": d["p"], "z": d["z"], "reason": d["reason"]}
    max_p = max((t["p"] for t in tests.values()), default=math.nan)
    on_top = max(r["rank"] for r in inf) < min(r["rank"] for r in uninf)
    return {"ranking": rows, "top": rows[0]["triplet"], "top_informative": rows[0]["informative"], "informative_on_top": on_top,
            "best_informative": best["triplet"], "best_informative_auc": best["auc"], "best_uninformative": uninf[0]["triplet"],
            "best_uninformative_auc": uninf[0]["auc"], "delong_vs_uninformative": tests, "max_p": max_p,
            "success": bool(on_top and not math.isnan(max_p) and max_p < alpha), "n_lesions": int(y.size), "n_malignant": int(y.sum())}


def run(out: Path, quick: bool = False, progress: bool = True, settings: ChannelsSettings | None = None) -> Section:
    """Run the experiment under ``out`` (resumable) and return its page section.

    Args:
        out: experiment folder.
        quick: :data:`QUICK` settings (tests; not evidence).
        progress: print progress lines.
        settings: explicit settings (default: :class:`ChannelsSettings` or :data:`QUICK`).

    Raises:
        ValueError: settings whose triplets are all informative or all uninformative, or an
            ``out`` holding cohorts/searches of other settings.
    """
    import torch

    from dce_monai.data.phantom import PhantomConfig
    from dce_monai.workflows.search_channels import merge, run_search, triplet_name

    st = settings or (QUICK if quick else ChannelsSettings())
    cfg = PhantomConfig.tiny(signal="washout")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    names = [triplet_name(t) for t in st.triplets]
    per_seed: dict[int, dict[str, Any]] = {}
    times: dict[int, float] = {}
    timing_path = out / "timing.json"
    kept = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    for s in st.cohort_seeds:
        ts = time.perf_counter()
        manifest = phantom_cohort(out / f"seed{s}" / "cohort", st.patients, s, cfg, workers=st.workers, progress=progress, name=NAME)
        informative = set(json.loads(manifest.read_text())["dataset"]["generator"]["informative_channels"])
        kinds = [bool(set(t) & informative) for t in st.triplets]
        if all(kinds) or not any(kinds):
            raise ValueError(f"ChannelsSettings.triplets must hold informative (with one of {sorted(informative)}) and uninformative triplets; "
                             f"got {sum(kinds)} informative of {len(kinds)}.")
        say(progress, NAME, f"seed {s}: search over {len(names)} triplets x {st.k} folds, {st.max_epochs} epochs")
        summary = run_search(manifest, out / f"seed{s}" / "search", k=st.k, max_epochs=st.max_epochs, triplets=[tuple(t) for t in st.triplets],
                             seed=st.seed, batch_size=st.batch_size, image_size=st.image_size, patch_size=st.patch_size, workers=st.workers,
                             group_size=st.group_size, progress=progress, learning_rate=st.learning_rate, lr_step_size=st.lr_step_size,
                             lr_gamma=st.lr_gamma, curves=True)
        merge(out / f"seed{s}" / "search", n_boot=st.n_boot, seed=st.seed, tensorboard=False)
        per_seed[s] = _seed_result(out / f"seed{s}" / "search", informative, names, st.alpha)
        losses = [json.loads(p.read_text())["curves"]["train_loss"][-1] for p in sorted((out / f"seed{s}" / "search" / "cells").glob("*.json"))]
        per_seed[s]["last_epoch_loss"] = [float(min(losses)), float(np.mean(losses)), float(max(losses))]
        per_seed[s]["sgd_steps"] = int(st.max_epochs * (json.loads(next((out / f"seed{s}" / "search" / "cells").glob("*.json")).read_text())["n_train_patches"] // st.batch_size))
        times[s] = time.perf_counter() - ts
        if summary["cells_run"] == 0 and str(s) in kept:
            times[s] = float(kept[str(s)])  # the run that trained this seed's cells
        kept[str(s)] = times[s]
        timing_path.write_text(json.dumps(kept, indent=1))
        r = per_seed[s]
        say(progress, NAME, f"seed {s}: top {r['top']}, informative on top: {r['informative_on_top']}, max DeLong p {fmt(r['max_p'], 4)} "
                            f"({summary['cells_run']} cells trained, {summary['cells_skipped']} cached, {times[s]:.0f} s)")
    fig = plot_rankings({s: r["ranking"] for s, r in per_seed.items()}, out / "ranking.png")
    n_ok = sum(r["success"] for r in per_seed.values())
    verdict = "works" if n_ok == len(per_seed) else ("partly" if n_ok else "does not")
    lines = ["| cohort seed | lesions (malignant) | top triplet | informative on top | AUC best informative | AUC best uninformative | max DeLong p (best informative vs each uninformative) | last-epoch training loss, min / mean / max over cells | found |",
             "|---:|---|---|---|---|---|---:|---|---|"]
    for s, r in per_seed.items():
        lines.append(f"| {s} | {r['n_lesions']} ({r['n_malignant']}) | {r['top'].replace('+', ', ')} | {'yes' if r['informative_on_top'] else 'no'} | "
                     f"{fmt(r['best_informative_auc'])} ({r['best_informative'].replace('+', ', ')}) | {fmt(r['best_uninformative_auc'])} "
                     f"({r['best_uninformative'].replace('+', ', ')}) | {fmt(r['max_p'], 4)} | {' / '.join(fmt(v) for v in r['last_epoch_loss'])} | {'yes' if r['success'] else 'no'} |")
    lines += ["", "Per seed, rank: triplet AUC [95 % CI] (I = informative), DeLong p of the best informative triplet against it:", "",
              "| triplet | kind | " + " | ".join(f"seed {s}" for s in per_seed) + " |", "|---|---|" + "---|" * len(per_seed)]
    for t in names:
        cells = []
        for r in per_seed.values():
            row = next(x for x in r["ranking"] if x["triplet"] == t)
            p = r["delong_vs_uninformative"].get(t, {}).get("p")
            cells.append(f"#{row['rank']}: {fmt(row['auc'])} [{fmt(row['auc_ci'][0])}, {fmt(row['auc_ci'][1])}]" + ("" if p is None else f", p = {fmt(p, 4)}")
                         + (f", {row['collapsed_folds']} collapsed fold(s)" if row["collapsed_folds"] else ""))
        lines.append(f"| {t.replace('+', ', ')} | {'I' if set(t.split('+')) & informative else 'U'} | " + " | ".join(cells) + " |")
    this_run = time.perf_counter() - t0
    seconds = float(sum(times.values()))
    body = ("\n".join(lines) + "\n\nTimes per seed (cohort, search, scoring; of the run that trained its cells): "
            + ", ".join(f"seed {s}: {v:.0f} s" for s, v in times.items()) + f"; in all {seconds:.0f} s; this run: {this_run:.0f} s.")
    settings_md = (
        f"Phantom `--signal washout`, `tiny` grid, {st.patients} patients per cohort, cohort seeds {', '.join(map(str, st.cohort_seeds))}. "
        f"Informative channels (from the manifest): {', '.join(sorted(informative))}; a triplet holding one is informative. Triplets and why: "
        + "; ".join(f"{t.replace('+', ', ')} ({RATIONALE.get(t, 'informative' if set(t.split('+')) & informative else 'uninformative')})" for t in names)
        + f". Search: seed 1 bundle, random initialisation, {st.k} patient-wise folds (seed {st.seed}), patch {st.patch_size}x{st.patch_size} resized to "
        f"{st.image_size}x{st.image_size}, batch {st.batch_size}, lr {st.learning_rate:g} x {st.lr_gamma:g} every {st.lr_step_size} epochs, {st.max_epochs} epochs, "
        f"last epoch kept; {st.n_boot} patient-resampled bootstraps. Found = every informative triplet ranked above every uninformative one and "
        f"the best informative beats each uninformative in DeLong's paired test at p < {st.alpha:g}."
        + (" Settings tried before: " + "; ".join(st.tried) + "." if st.tried else ""))
    reading = _reading(per_seed, verdict, st)
    extra = {"settings": {k: v for k, v in asdict(st).items() if k != "tried"}, "tried": list(st.tried), "per_seed": {str(s): r for s, r in per_seed.items()},
             "seconds": {**{str(s): v for s, v in times.items()}, "this_run": this_run},
             "informative_channels": sorted(informative), "quick": quick}
    return Section(name=NAME, title="The channel search finds planted truth", question=(
        "When the class signal lives only in known channels (washout after T1post2: T1post3, T1post4), does seed 1's channel search rank "
        "the triplets holding them on top, significantly above those lacking them, on every cohort seed?"),
        settings=settings_md, body=body, reading=reading, verdict=verdict,
        figures=[(str(fig), "Channel ranking per cohort seed: per-lesion AUC with patient-bootstrap 95 % CI; orange = informative triplet.")],
        seconds=seconds, extra=extra)


def _reading(per_seed: dict[int, dict[str, Any]], verdict: str, st: ChannelsSettings) -> str:
    n = len(per_seed)
    ok = [s for s, r in per_seed.items() if r["success"]]
    txt = {"works": f"The search finds the planted channels on all {n} cohort seeds: ",
           "partly": f"The search finds the planted channels on {len(ok)} of {n} cohort seeds: ",
           "does not": f"The search does not find the planted channels on any of the {n} cohort seeds: "}[verdict]
    parts = []
    for s, r in per_seed.items():
        why = []
        if not r["informative_on_top"]:
            why.append("an uninformative triplet ranks above an informative one")
        if math.isnan(r["max_p"]) or r["max_p"] >= st.alpha:
            why.append(f"DeLong p up to {fmt(r['max_p'], 4)}")
        parts.append(f"seed {s}: best informative {fmt(r['best_informative_auc'])} vs best uninformative {fmt(r['best_uninformative_auc'])}"
                     + ("" if r["success"] else " (" + "; ".join(why) + ")"))
    text = txt + "; ".join(parts) + "."
    stuck = [s for s, r in per_seed.items() if not r["success"] and r["last_epoch_loss"][1] > 0.6]
    if stuck:
        steps = max(r["sgd_steps"] for r in per_seed.values())
        text += (f" Why: each model had about {steps} SGD steps (what {st.max_epochs} epochs of these cohorts give within the time budget on 2 CPU cores), "
                 f"and the last-epoch training loss stays near chance (ln 2 = 0.693; mean over cells up to {fmt(max(per_seed[s]['last_epoch_loss'][1] for s in stuck))}): "
                 "the ResNet34 from random weights has not started to learn, so its ranking is noise. On the development cohort (settings above) "
                 "learning started after about 150 steps and one model of 420 steps reached held-out AUC 0.83 in 460 s; the search here "
                 f"({len(per_seed)} seeds x {len(st.triplets)} triplets x {st.k} folds = {len(per_seed) * len(st.triplets) * st.k} models) at that length "
                 f"projects to about {len(per_seed) * len(st.triplets) * st.k * 460 / 2 / 3600:.1f} h on this machine with 2 workers.")
    return text
