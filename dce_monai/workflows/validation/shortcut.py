"""Validation experiment ``shortcut``: seed 2's mask guidance with a shortcut the network sees.

Phantom cohorts (``shortcut_site="near_lesion"``: a bright ball on the skin nearest each
malignant lesion, inside the bundle's lesion field of view) with the shortcut present with
every malignant lesion of the training cohort (``shortcut_train=1.0``) and absent from the
external cohort (``shortcut_test=0.0``), one cohort per seed. The training cohort is split
patient-wise into a fitting part and a held-out part (which still has the shortcut); the
external cohort never trains anything.

Every lesion goes through the ``breast_dce_maskguided_vgg3d`` bundle's own ``preprocessing``
(subtraction, 70 % enhancement threshold, fuzzy C-means tumour mask, crop): the lesion window
for no_mask and mask_guided, the mask's bounding box for mask_only. The models are the bundle's
``VGG3DCAM`` trained with :class:`dce_monai.losses.MaskGuidedLoss` (``lambda_dice = 0`` is plain
cross-entropy) in a plain PyTorch loop on the preprocessed tensors: a ``compare-masking`` cell
(bundle training with the 34-variant augmentation, checkpoints and three inference passes)
took 433 s for 30 epochs at these sizes on the 2 shared cores, so 15 cells would not fit the
page's ~20 minutes. The loop has no augmentation; the last step's model is scored (no
selection on any evaluation split).

Rows: ``no_mask``, ``mask_only``, ``mask_guided`` (the paper's loss: CAM of the true class,
trilinear upsampling to the input, per-sample min-max, soft Dice with the mask, lambda 10),
and the same two CAM models with one pooling stage fewer (``*_3blocks``: CAM grid 8x8x4
instead of 4x4x2 at a 32x32x16 input), because the CAM grid's cell against the mask's size is
what the probe below found to limit the paper's loss. A probe on the first seed varies the
loss-side factors (Dice at CAM resolution, max instead of min-max normalisation, lambda, lr,
steps) one at a time.

Measured per (seed, row): attention inside the tumour mask (fraction of the min-max CAM's mass
of the true class inside the mask, as ``compare-masking`` measures it) on the external cohort,
and the AUC on the held-out part (shortcut present) and on the external cohort (absent), each
with a 95 % bootstrap CI over patients; over seeds mean +- SD and range.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dce_monai.workflows.validation import Section

__all__ = ["ROWS", "run", "settings_for"]

#: row -> (crop variant of the bundle, lambda_dice, number of VGG blocks)
ROWS: dict[str, tuple[str, float, int]] = {
    "no_mask": ("mask_guided", 0.0, 4),
    "mask_only": ("mask_only", 0.0, 4),
    "mask_guided": ("mask_guided", 10.0, 4),
    "no_mask_3blocks": ("mask_guided", 0.0, 3),
    "mask_guided_3blocks": ("mask_guided", 10.0, 3),
}

#: probe runs on the first seed: name -> changes against the paper's mask_guided row
PROBES: dict[str, dict[str, Any]] = {
    "paper (mask_guided row)": {},
    "Dice at CAM resolution (mask area-downsampled)": {"dice_resolution": "cam"},
    "max normalisation (ReLU / max) instead of min-max": {"cam_normalization": "relu_max"},
    "lambda 100": {"lambda_dice": 100.0},
    "lr 2.5e-5 (seed 2's)": {"learning_rate": 2.5e-5},
    "2x steps": {"steps_factor": 2},
}


def settings_for(quick: bool) -> dict[str, Any]:
    """The experiment's settings (``quick``: a test run in seconds, not evidence)."""
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


def _split(manifest: Path, seed: int, heldout_fraction: float) -> dict[str, str]:
    """patient_id -> ``fit`` / ``heldout`` (training cohort, shortcut present) / ``external`` (no shortcut)."""
    from dce_monai.data.folds import patient_folds
    from dce_monai.data.manifest import load_manifest

    man = load_manifest(manifest)
    train = man.to_datalist(level="lesion", cohort="train")
    k = max(2, round(1 / heldout_fraction))
    held = set(patient_folds(train, k=k, seed=seed)[0])
    split = {r["patient_id"]: ("heldout" if r["patient_id"] in held else "fit") for r in train}
    split.update({r["patient_id"]: "external" for r in man.to_datalist(level="lesion", cohort="test")})
    return split


def _preprocess(out: Path, manifest: Path, crop: str, s: dict[str, Any]) -> dict[str, Any]:
    """Every lesion through the bundle's ``preprocessing`` (variant ``crop``), cached in ``data_<crop>.pt``."""
    path = out / f"data_{crop}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    from dce_monai.data.folds import patient_folds, write_folds
    from dce_monai.data.manifest import load_manifest
    from dce_monai.workflows.bundle_utils import bundle_workflow

    recs = load_manifest(manifest).to_datalist(level="lesion")
    folds = out / "folds_unused.json"  # the bundle's train datalist needs one; these tensors ignore it
    write_folds(patient_folds(recs, k=2, seed=0), folds, seed=0, k_requested=2)
    wf = bundle_workflow("breast_dce_maskguided_vgg3d", ["train.json"], "train", bundle_root=str(out / "bundle_root"),
                         manifest=str(manifest), folds=str(folds), variant=crop, validate_data=False, spatial_size=list(s["spatial_size"]))
    pre = wf.parser.get_parsed_content("preprocessing")
    xs, ms, ys, pids, lids = [], [], [], [], []
    for r in recs:
        d = pre(dict(r))
        xs.append(torch.as_tensor(d["image"]).as_tensor().float())
        ms.append(torch.as_tensor(d["mask"]).as_tensor().float())
        ys.append(int(d["label"]))
        pids.append(str(r["patient_id"]))
        lids.append(str(r.get("lesion_id", len(lids))))
    data = {"x": torch.stack(xs), "m": torch.stack(ms), "y": torch.tensor(ys), "patient_id": pids, "lesion_id": lids}
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)
    return data


def _cam_for_loss(raw: torch.Tensor, size: Sequence[int], dice_resolution: str, cam_normalization: str) -> torch.Tensor:
    if dice_resolution == "input":
        raw = F.interpolate(raw, size=tuple(size), mode="trilinear", align_corners=False)
    if cam_normalization == "minmax":
        from dce_monai.networks.nets.vgg3d_cam import normalize_cam

        return normalize_cam(raw)
    r = raw.clamp_min(0)
    return r / (r.flatten(1).max(1).values.view(-1, *([1] * (r.ndim - 1))) + 1e-6)


def _train_eval(data: dict[str, Any], split: dict[str, str], seed: int, s: dict[str, Any], lambda_dice: float, blocks: int,
                dice_resolution: str = "input", cam_normalization: str = "minmax", learning_rate: float | None = None,
                steps_factor: int = 1) -> tuple[dict[str, Any], Any]:
    """Train one model on the ``fit`` lesions; (per-lesion scores and attention on every lesion, the network)."""
    from dce_monai.losses import MaskGuidedLoss
    from dce_monai.metrics.attention import attention_fraction
    from dce_monai.networks import VGG3DCAM

    t0 = time.perf_counter()
    x, m, y = data["x"], data["m"], data["y"]
    parts = [split[p] for p in data["patient_id"]]
    fit = torch.tensor([i for i, p in enumerate(parts) if p == "fit"])
    torch.manual_seed(seed)
    net = VGG3DCAM(in_channels=x.shape[1], channels=list(s["widths"])[:blocks])
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate or s["learning_rate"])
    loss_fn = MaskGuidedLoss(lambda_dice=lambda_dice)
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    dice_log: list[float] = []
    net.train()
    for _ in range(int(s["steps"]) * steps_factor):
        if len(order) < s["batch_size"]:
            order += fit[torch.randperm(len(fit), generator=g)].tolist()
        b, order = order[: s["batch_size"]], order[s["batch_size"]:]
        xb, yb, mb = x[b], y[b], m[b]
        feats = net.forward_features(xb)
        logits = net.fc(net.dropout(net.norm(torch.flatten(net.gap(feats), 1))))
        cam = _cam_for_loss(net.cam_from_features(feats, xb, yb, normalize=False, upsample=False), xb.shape[2:], dice_resolution, cam_normalization)
        parts_ = loss_fn.compute(logits, yb, cam, mb)
        opt.zero_grad()
        parts_["loss"].backward()
        opt.step()
        dice_log.append(float(parts_["dice"].detach()))
    net.eval()
    probs, att = [], []
    with torch.no_grad():
        for i in range(0, len(y), 16):
            xb = x[i : i + 16]
            probs += torch.softmax(net(xb), 1)[:, 1].tolist()
            att += attention_fraction(net.cam(xb, class_idx=y[i : i + 16]), m[i : i + 16]).tolist()
    tail = dice_log[-max(1, len(dice_log) // 10):]
    rec = {"prob": probs, "attention": att, "train_dice_last10pct": float(np.mean(tail)), "seconds": round(time.perf_counter() - t0, 1)}
    return rec, net


def _boot_mean_ci(values: np.ndarray, groups: list[str], n_boot: int, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap CI of a per-lesion mean, whole patients resampled."""
    ids = sorted(set(groups))
    members = [np.array([i for i, g in enumerate(groups) if g == p]) for p in ids]
    rng = np.random.default_rng(seed)
    vals = [float(values[np.concatenate([members[k] for k in rng.integers(0, len(ids), len(ids))])].mean()) for _ in range(n_boot)]
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


def _score(rec: dict[str, Any], data: dict[str, Any], split: dict[str, str], n_boot: int) -> dict[str, Any]:
    from dce_monai.metrics.stats import bootstrap_ci, roc_auc

    y = data["y"].numpy()
    p, a = np.asarray(rec["prob"]), np.asarray(rec["attention"])
    out: dict[str, Any] = {}
    for part in ("fit", "heldout", "external"):
        idx = [i for i, pid in enumerate(data["patient_id"]) if split[pid] == part]
        grp = [data["patient_id"][i] for i in idx]
        if len(set(y[idx].tolist())) == 2:
            ci = bootstrap_ci(y[idx], p[idx], n_boot=n_boot, groups=grp, seed=0)
            out[f"auc_{part}"], out[f"auc_{part}_ci"] = round(roc_auc(y[idx], p[idx]), 3), [round(float(ci[0]), 3), round(float(ci[1]), 3)]
        else:
            out[f"auc_{part}"], out[f"auc_{part}_ci"] = float("nan"), [float("nan"), float("nan")]
        out[f"attention_{part}"] = round(float(a[idx].mean()), 4)
        out[f"attention_{part}_ci"] = [round(v, 4) for v in _boot_mean_ci(a[idx], grp, n_boot)]
        out[f"n_{part}"] = len(idx)
    out["mask_share_external"] = round(float(data["m"][[i for i, pid in enumerate(data["patient_id"]) if split[pid] == "external"]].mean()), 4)
    return out


def _cached(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    if path.is_file():
        rec = json.loads(path.read_text())
        if rec.get("settings") == settings:
            return rec
    return None


def _write(path: Path, rec: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    tmp.replace(path)


def _panel(path: Path, models: dict[str, tuple[dict[str, Any], dict[str, Any]]], split: dict[str, str], seed: int) -> tuple[Path, str]:
    """Per row: one held-out malignant lesion (shortcut present), image MIP with the CAM's max projection, mask outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dce_monai.handlers.cam_images import cam_overlay

    ref = models["no_mask"][1]
    cand = [i for i, (pid, yy) in enumerate(zip(ref["patient_id"], ref["y"].tolist())) if split[pid] == "heldout" and yy == 1]
    lid = ref["lesion_id"][cand[0]] if cand else ref["lesion_id"][0]
    fig, ax = plt.subplots(1, len(models), figsize=(2.6 * len(models), 3.1))
    for a, (row, (net_state, data)) in zip(np.atleast_1d(ax), models.items()):
        i = data["lesion_id"].index(lid)
        net = net_state["net"]
        with torch.no_grad():
            cam = net.cam(data["x"][i : i + 1], class_idx=data["y"][i : i + 1])[0, 0]
        frac = float((cam * data["m"][i, 0]).sum() / cam.sum())
        img = data["x"][i, 0].amax(-1)
        a.imshow(cam_overlay(img.T, cam.amax(-1).T, (data["m"][i, 0].amax(-1) > 0).float().T))
        a.set_title(f"{row}\nin mask {frac:.2f}", fontsize=8)
        a.axis("off")
    fig.suptitle(f"seed {seed}, held-out malignant lesion {lid} (shortcut present): MIP, CAM max projection, mask in green", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path, (f"CAM of the true class (max projection over z, on the image's MIP) of each row's model for one held-out malignant "
                  f"lesion ({lid}, seed {seed}) whose window holds the near-lesion shortcut (bright spot on the skin); green: tumour mask. "
                  "mask_only sees only the mask's bounding box.")


def _fmt_ci(v: float, ci: Sequence[float], nd: int = 3) -> str:
    return f"{v:.{nd}f} [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def _summary(per_seed: dict[str, dict[str, dict[str, Any]]], key: str) -> dict[str, float]:
    v = np.array([per_seed[s][key] for s in per_seed], dtype=float)
    return {"mean": round(float(np.nanmean(v)), 3), "sd": round(float(np.nanstd(v, ddof=1)) if v.size > 1 else 0.0, 3),
            "min": round(float(np.nanmin(v)), 3), "max": round(float(np.nanmax(v)), 3)}


def run(out: Path, quick: bool = False, progress: bool = True) -> Section:
    """Run (resumably) and return the page section. See the module docstring."""
    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = settings_for(quick)
    results: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in ROWS}  # row -> seed -> scores
    seconds = 0.0
    panel_models: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    probe: dict[str, dict[str, Any]] = {}
    first_split: dict[str, str] = {}
    for seed in s["seeds"]:
        sd = out / f"seed{seed}"
        manifest = _cohort(sd, seed, s, progress)
        split = _split(manifest, seed, s["heldout_fraction"])
        data = {crop: _preprocess(sd, manifest, crop, s) for crop in ("mask_guided", "mask_only")}
        for row, (crop, lam, blocks) in ROWS.items():
            settings = {**s, "seed": seed, "row": row, "lambda_dice": lam, "blocks": blocks, "crop": crop}
            path = sd / f"{row}.json"
            rec = _cached(path, settings)
            if rec is None or not (sd / f"{row}.pt").is_file():
                _log(progress, f"seed {seed}: training {row} ({s['steps']} steps)")
                rec, net = _train_eval(data[crop], split, seed, s, lam, blocks)
                torch.save(net.state_dict(), sd / f"{row}.pt")  # the CAM panel's model
                rec.update({"settings": settings, "scores": _score(rec, data[crop], split, s["n_boot"])})
                _write(path, rec)
            else:
                _log(progress, f"seed {seed}: {row} done before with the same settings, skipped")
            seconds += rec["seconds"]  # cached models count the time they took
            results[row][str(seed)] = {**rec["scores"], "train_dice_last10pct": round(rec["train_dice_last10pct"], 4), "seconds": rec["seconds"]}
            sc = rec["scores"]
            _log(progress, f"seed {seed}: {row}: attention (external) {sc['attention_external']:.3f}, AUC held-out {sc['auc_heldout']:.3f}, "
                           f"external {sc['auc_external']:.3f}, train Dice {rec['train_dice_last10pct']:.3f}, {rec['seconds']:.0f} s")
        if seed == s["seeds"][0]:
            first_split = split
            for name in s["probe"]:
                change = PROBES[name]
                settings = {**s, "seed": seed, "probe": name, **change}
                path = sd / ("probe_" + "".join(c if c.isalnum() else "_" for c in name)[:40] + ".json")
                rec = _cached(path, settings)
                if rec is None:
                    if not change:
                        rec = json.loads((sd / "mask_guided.json").read_text())
                        rec["settings"] = settings
                    else:
                        _log(progress, f"seed {seed}: probe '{name}'")
                        rec, _ = _train_eval(data["mask_guided"], split, seed, {**s}, change.get("lambda_dice", 10.0), 4,
                                          change.get("dice_resolution", "input"), change.get("cam_normalization", "minmax"),
                                          change.get("learning_rate"), change.get("steps_factor", 1))
                        rec.update({"settings": settings, "scores": _score(rec, data["mask_guided"], split, s["n_boot"])})
                    _write(path, rec)
                if change:  # the paper probe is the mask_guided row, counted there
                    seconds += rec["seconds"]
                probe[name] = {"attention_external": rec["scores"]["attention_external"], "auc_external": rec["scores"]["auc_external"],
                               "train_dice_last10pct": round(rec["train_dice_last10pct"], 4)}
            from dce_monai.networks import VGG3DCAM

            for row, (crop, _, blocks) in ROWS.items():
                net = VGG3DCAM(in_channels=data[crop]["x"].shape[1], channels=list(s["widths"])[:blocks])
                net.load_state_dict(torch.load(sd / f"{row}.pt", weights_only=True))
                panel_models[row] = ({"net": net.eval()}, data[crop])
    fig = _panel(out / "cam_panel.png", panel_models, first_split, s["seeds"][0])
    # seconds: the training time of every model on the page (cached ones included; cohort generation and preprocessing not counted)
    return _section(out, s, results, probe, [(str(fig[0]), fig[1])], seconds, quick)


def _section(out: Path, s: dict[str, Any], results: dict[str, dict[str, dict[str, Any]]], probe: dict[str, dict[str, Any]],
             figures: list[tuple[str, str]], seconds: float, quick: bool) -> Section:
    keys = ("attention_external", "auc_heldout", "auc_external", "train_dice_last10pct")
    summary = {row: {k: _summary(per, k) for k in keys} for row, per in results.items()}
    seeds = list(results["no_mask"])
    share = float(np.mean([results["no_mask"][sd]["mask_share_external"] for sd in seeds]))
    lines = ["Over seeds (mean ± SD, range in brackets); attention: share of the CAM's mass inside the tumour mask, external cohort; "
             f"a uniform CAM would give the mask's share of the window, {share:.4f}.", "",
             "| row | CAM grid | λ | attention in mask (external) | AUC held-out (shortcut present) | AUC external (no shortcut) | train Dice (last 10 % of steps) |",
             "|---|---|---:|---|---|---|---|"]
    for row, (_crop, lam, blocks) in ROWS.items():
        grid = "x".join(str(-(-int(v) // 2 ** (blocks - 1))) for v in s["spatial_size"])
        cells = []
        for k in keys:
            m = summary[row][k]
            cells.append(f"{m['mean']:.3f} ± {m['sd']:.3f} [{m['min']:.3f}, {m['max']:.3f}]")
        lines.append(f"| {row} | {grid} | {lam:g} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed, with 95 % bootstrap CIs over patients (" + str(s["n_boot"]) + " resamples):", "",
              "| seed | row | attention in mask (external) | AUC held-out | AUC external |", "|---|---|---|---|---|"]
    for sd in seeds:
        for row in ROWS:
            r = results[row][sd]
            lines.append(f"| {sd} | {row} | {_fmt_ci(r['attention_external'], r['attention_external_ci'])} | "
                         f"{_fmt_ci(r['auc_heldout'], r['auc_heldout_ci'])} | {_fmt_ci(r['auc_external'], r['auc_external_ci'])} |")
    lines += ["", f"Probe (seed {seeds[0]}, the mask_guided row's settings with one change each):", "",
              "| change | attention in mask (external) | AUC external | train Dice (last 10 %) |", "|---|---|---|---|"]
    lines += [f"| {name} | {p['attention_external']:.3f} | {p['auc_external']:.3f} | {p['train_dice_last10pct']:.3f} |" for name, p in probe.items()]
    body = "\n".join(lines) + "\n"

    def moved(row: str) -> bool:  # attention at least doubled against no_mask of the same depth, in every seed
        base = "no_mask_3blocks" if row.endswith("_3blocks") else "no_mask"
        return all(results[row][sd]["attention_external"] >= 2 * results[base][sd]["attention_external"] for sd in seeds)

    def better(row: str) -> bool:  # external AUC above no_mask's in every seed and by >= 0.05 on average
        base = "no_mask_3blocks" if row.endswith("_3blocks") else "no_mask"
        d = [results[row][sd]["auc_external"] - results[base][sd]["auc_external"] for sd in seeds]
        return all(x > 0 for x in d) and float(np.mean(d)) >= 0.05

    paper, deep = (moved("mask_guided"), better("mask_guided")), (moved("mask_guided_3blocks"), better("mask_guided_3blocks"))
    verdict = "works" if all(paper) else ("partly" if any(paper) or any(deep) else "does not")
    sm = summary
    f = lambda row, k: f"{sm[row][k]['mean']:.3f}"  # noqa: E731
    learnt = sm["no_mask"]["auc_heldout"]["mean"] - sm["no_mask"]["auc_external"]["mean"] >= 0.1
    reading = (
        ("With the shortcut in view, no_mask learns it" if learnt else "no_mask's AUC barely drops without the shortcut (it did not lean on it much)")
        + f": AUC {f('no_mask', 'auc_heldout')} on held-out patients that still carry it, "
        f"{f('no_mask', 'auc_external')} on the external cohort without it, with {f('no_mask', 'attention_external')} of its CAM inside the mask "
        f"(uniform: {share:.4f}). The paper's loss (mask_guided) "
        + ("moves attention into the mask (at least twice no_mask's in every seed: "
           if paper[0] else "does not move attention enough to matter (not twice no_mask's in every seed: ")
        + f"{f('mask_guided', 'attention_external')}) and "
        + ("improves" if paper[1] else "does not improve")
        + f" the external AUC ({f('mask_guided', 'auc_external')} vs {f('no_mask', 'auc_external')}); its Dice with the mask stays at "
        f"{f('mask_guided', 'train_dice_last10pct')}. One pooling stage fewer (CAM grid 8x8x4 instead of 4x4x2, a CAM cell then about the "
        f"lesion's size) gives attention {f('mask_guided_3blocks', 'attention_external')} vs {f('no_mask_3blocks', 'attention_external')} "
        f"for its unguided twin and external AUC {f('mask_guided_3blocks', 'auc_external')} vs {f('no_mask_3blocks', 'auc_external')}"
        + (" (attention moved in every seed" if deep[0] else " (attention not doubled in every seed")
        + ("; AUC better)." if deep[1] else "; AUC not better).")
        + " The probe changes one loss-side factor at a time (Dice at CAM resolution, max instead of min-max normalisation, λ, lr, steps); "
        "compare its attention column with the paper row's. mask_only, cropped to the mask's box, is the reference of a model that cannot "
        f"see the shortcut: external AUC {f('mask_only', 'auc_external')}."
        + (" Attention pulled toward the mask did not stop the class score from using the shortcut: the Dice term constrains where the "
           "min-max normalised CAM peaks, not what the spatially averaged logit sums, so a network can keep the shortcut's contribution to "
           "the logit while raising the CAM's peak inside the mask." if learnt and (paper[0] or deep[0]) and not (paper[1] or deep[1]) else "")
        + ("" if learnt else " This cohort therefore does not test whether guidance protects against the shortcut: at these settings the "
           "unguided model learnt little from the lesion window at all, while mask_only, which sees the lesion up close, did.")
    )
    settings = (
        f"{len(seeds)} cohort seeds ({', '.join(seeds)}); per seed {s['n_patients']} `{s['size']}` phantom patients "
        "(`--shortcut-site near_lesion`, shortcut 1.0 in the training cohort, 0.0 in the external 30 %); "
        f"training cohort split patient-wise into fit / held-out ({s['heldout_fraction']:.0%}). Input T1post1 through the seed 2 bundle's "
        f"preprocessing, window {'x'.join(map(str, s['spatial_size']))} (`field_of_view: lesion`; mask_only: the mask's box + 5 mm). "
        f"VGG3DCAM widths {s['widths']} (3-block rows: the first three), dropout 0.5, Adam lr {s['learning_rate']:g}, batch {s['batch_size']}, "
        f"{s['steps']} steps, no augmentation, last step scored; λ = 10, CAM of the true class. Plain PyTorch loop on the bundle's "
        "preprocessed tensors, not `compare-masking` cells (too slow for this page on 2 cores)."
    )
    return Section(name="shortcut", title="Mask guidance with a shortcut in view", question=(
        "With a shortcut next to each malignant lesion in training and absent in an external cohort, does seed 2's mask-guided loss "
        "move the CAM into the tumour mask and keep the external AUC above the unguided model's? If not, what stops it?"),
        settings=settings, body=body, reading=reading, verdict=verdict, figures=figures, seconds=seconds,
        extra={"settings": s, "per_seed": results, "summary": summary, "probe": probe, "mask_share_external": round(share, 4), "quick": quick})
