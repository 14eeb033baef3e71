"""Seed 1's channel-triplet search: every triplet of the DCE channels, patient-wise k-fold CV.

The search is a driver of the seed 1 bundle (``bundles/breast_dce_transfer_resnet34``), as
``compare-masking`` is of the seed 2 bundle: each group of cells runs the bundle's own
``train.json`` through ``monai.bundle.ConfigWorkflow`` with the overlay ``configs/search.json``
and overrides (``fold``, ``triplets``, the training settings). The bundle is the one
definition of the model, its preprocessing, augmentation, optimiser, schedule, BatchNorm
recompute and model kept (the last epoch); a search cell and a bundle run with the same
settings give the same predictions (tested). What the overlay changes is only how the work
is shared, the sources of the search's speed:

- the patches are cut once per cohort by the bundle's ``preprocessing`` with all searched
  channels (:mod:`dce_monai.data.patch_cache`); a triplet is an index into the channel axis;
- the cache sits on the training device; augmentation (random rotation + flips) and the
  resize to ``image_size`` are one batched ``grid_sample`` there (the bundle's
  ``prepare_batch``, :class:`~dce_monai.engines.prepare_batch.PatchBatch`);
- ``group_size`` triplets of one fold (default 4) train in lock-step on the same batches
  (:class:`~dce_monai.networks.nets.Lockstep` + :class:`~dce_monai.losses.LockstepLoss`:
  every member gets exactly the gradient it would get alone);
- on CUDA, ``amp`` runs bfloat16 autocast.

Every model of a fold sees the same batch order and augmentation draws (seeded by (seed,
fold)) and starts from the same initial weights (``init_seed``), so triplets are compared
under common random numbers and results do not depend on grouping or sharding.

No model is chosen on the fold it is scored on: the model kept is the last epoch's, and the
held-out fold is predicted once, after training.

Outputs under ``out_dir``: ``cells/<triplet>__fold<k>.json`` (one per finished cell, written
atomically), ``folds.json``, ``run.json``, TensorBoard training curves per group under
``runs/``; :func:`merge` adds ``predictions.csv``, ``ranking.csv``, ``ranking.md`` and
TensorBoard HParams under ``tensorboard/``.

Reference: Haarburger et al., BVM 2018, seed 1: SGD momentum 0.9, lr 1e-3 x 0.05 every 7
epochs, cross-entropy, random rotation + flip, 50x50 patches resized to 224, per-lesion
score = max over slices, 10-fold patient-wise CV over all 35 triplets (best: T1pre, T1post3,
sub, AUC 0.839).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.networks import eval_mode
from monai.utils import look_up_option

from dce_monai.data.folds import check_fold_classes, patient_folds, read_folds, write_folds
from dce_monai.data.manifest import Manifest, load_manifest
from dce_monai.data.patch_cache import (
    PatchCache,
    get_patch_cache,
    load_patch_cache,
)
from dce_monai.data.validate import require_valid
from dce_monai.metrics.aggregation import aggregate_by_lesion
from dce_monai.sequences import PRE, SEQUENCES, SUB, post_name, sort_sequences, validate_sequence_names
from dce_monai.sequences import triplets as all_triplets
from dce_monai.workflows.cells import fingerprint as cell_fingerprint
from dce_monai.workflows.cells import read_cell, run_lock, settings_diff, write_json_atomic

__all__ = [
    "SearchSettings",
    "add_cli_arguments",
    "cell_name",
    "cli_main",
    "exam_channels",
    "plan_channels",
    "merge",
    "parse_shard",
    "parse_triplets",
    "predict_group",
    "run_cells",
    "run_search",
    "search_patch_cache",
    "search_workflow",
    "triplet_name",
]

logger = logging.getLogger(__name__)
EXPERIMENT = "channel_search"


# ----------------------------------------------------------------------------- settings and names


#: The seed 1 bundle the search drives.
BUNDLE = "breast_dce_transfer_resnet34"


@dataclass(frozen=True)
class SearchSettings:
    """Training settings of one search cell: the seed 1 bundle's config keys, same names, same defaults.

    Every field is passed to ``train.json`` as the override of the same name, so a cell
    trains exactly what ``python -m monai.bundle run`` with these overrides trains (the
    defaults equal ``train.json``'s; a test checks it).

    Attributes:
        max_epochs: training epochs per cell. Seed 1 does not state it; 15 epochs of ~1700
            patches is what its 180 s per fold on a GTX 1070 allows.
        batch_size: training (and prediction) batch size.
        image_size: network input size in pixels (seed 1: 224).
        learning_rate: initial SGD learning rate (seed 1: 1e-3).
        momentum: SGD momentum (seed 1: 0.9).
        lr_step_size: epochs between learning-rate decays (seed 1: 7).
        lr_gamma: decay factor (seed 1: 0.05).
        rotate_deg: rotations drawn uniformly in [-rotate_deg, rotate_deg] degrees.
        flip: random horizontal and vertical flips (each with probability 0.5).
        input_range: (lo, hi) mapped to [0, 1] before the ImageNet mean/std, in the network.
        seed: seed of the initial weights, the batch order and the augmentation (and of the folds).
        pretrained_weights: local torchvision-layout ResNet34 ``.pth`` (None: random init).
        bias_correction: N4 of every T1- and T2-weighted image in the bundle's preprocessing
            (seed 1's recipe); it changes the patches, so the patch cache is keyed by it.
    """

    max_epochs: int = 15
    batch_size: int = 32
    image_size: int = 224
    learning_rate: float = 1e-3
    momentum: float = 0.9
    lr_step_size: int = 7
    lr_gamma: float = 0.05
    rotate_deg: float = 180.0
    flip: bool = True
    input_range: tuple[float, float] = (0.0, 2.0)
    seed: int = 0
    pretrained_weights: str | None = None
    bias_correction: bool = True

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "image_size", "lr_step_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels (ResNet34 downsamples 32x), got {self.image_size!r}.")
        if not self.learning_rate > 0 or not 0 <= self.momentum < 1 or not 0 < self.lr_gamma <= 1:
            raise ValueError(f"need learning_rate > 0, 0 <= momentum < 1, 0 < lr_gamma <= 1; got learning_rate={self.learning_rate!r}, momentum={self.momentum!r}, lr_gamma={self.lr_gamma!r}.")
        if not 0 <= self.rotate_deg <= 180:
            raise ValueError(f"rotate_deg must be in [0, 180] degrees, got {self.rotate_deg!r}.")
        lo, hi = self.input_range
        if not lo < hi:
            raise ValueError(f"input_range must be (lo, hi) with lo < hi, got {self.input_range!r}.")
        if not isinstance(self.bias_correction, bool):
            raise ValueError(f"bias_correction must be true or false, got {self.bias_correction!r}.")
        if self.pretrained_weights is not None and not Path(self.pretrained_weights).is_file():
            raise FileNotFoundError(f"pretrained_weights not found: {self.pretrained_weights} (weights are never downloaded).")

    def overrides(self) -> dict[str, Any]:
        """The bundle overrides these settings are (``input_range`` as a list)."""
        d = asdict(self)
        d["input_range"] = [float(v) for v in self.input_range]
        return d

    def fingerprint_dict(self) -> dict[str, Any]:
        """Settings that change results (the weights file by name, size and mtime)."""
        d = self.overrides()
        if self.pretrained_weights is not None:
            st = Path(self.pretrained_weights).stat()
            d["pretrained_weights"] = [str(Path(self.pretrained_weights).resolve()), st.st_size, st.st_mtime_ns]
        return d


def triplet_name(triplet: Sequence[str]) -> str:
    """``("T1pre", "T1post3", "sub")`` -> ``"T1pre+T1post3+sub"`` (the ``model`` column)."""
    return "+".join(triplet)


def cell_name(triplet: Sequence[str], fold: int) -> str:
    """File stem of a cell: ``"T1pre+T1post3+sub__fold3"``."""
    return f"{triplet_name(triplet)}__fold{fold}"


def parse_triplets(text: str | None, channels: Sequence[str] = SEQUENCES) -> list[tuple[str, str, str]]:
    """Parse ``"T1pre,T1post3,sub;T2,T1pre,sub"`` (None or ``"all"``: all triplets of ``channels``).

    Raises:
        ValueError: a group that is not 3 distinct canonical names, a name not in ``channels``,
            or a repeated triplet.

    Example:
        >>> parse_triplets("T1pre,T1post3,sub")
        [('T1pre', 'T1post3', 'sub')]
    """
    if text is None or text.strip().lower() == "all":
        return list(all_triplets(channels))
    out: list[tuple[str, str, str]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        names = tuple(n.strip() for n in part.split(","))
        validate_sequence_names(names, f"triplet {part.strip()!r}")
        if len(names) != 3:
            raise ValueError(f"a triplet needs exactly 3 channel names, got {len(names)} in {part.strip()!r}.")
        missing = [n for n in names if n not in channels]
        if missing:
            raise ValueError(f"triplet {part.strip()!r}: channel(s) {missing} not available; channels: {list(channels)}.")
        if names in out:
            raise ValueError(f"triplet {part.strip()!r} is given twice.")
        out.append(names)  # type: ignore[arg-type]
    if not out:
        raise ValueError(f"no triplet in {text!r}; expected e.g. 'T1pre,T1post3,sub;T2,T1pre,sub'.")
    return out


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"0/4"`` -> ``(0, 4)``; run every 4th cell starting at cell 0.

    Raises:
        ValueError: not ``i/n`` with 0 <= i < n.
    """
    if text is None:
        return None
    try:
        i, n = (int(v) for v in (text.split("/") if isinstance(text, str) else text))
    except (ValueError, TypeError):
        raise ValueError(f"shard must be 'i/n' (e.g. '0/4'), got {text!r}.") from None
    if not 0 <= i < n:
        raise ValueError(f"shard i/n needs 0 <= i < n, got {i}/{n}.")
    return i, n


# ----------------------------------------------------------------------------- one group of cells = one bundle run


def bundle_configs_hash() -> str:
    """SHA-256 (16 hex digits) of the seed 1 bundle's ``train.json`` and ``search.json``: part of every fingerprint."""
    from dce_monai.workflows.bundle_utils import BUNDLES_DIR

    h = hashlib.sha256()
    for name in ("train.json", "search.json"):
        h.update((BUNDLES_DIR / BUNDLE / "configs" / name).read_bytes())
    return h.hexdigest()[:16]


def bundle_preprocessing(manifest: str | Path, channels: Sequence[str], patch_size: Sequence[int], **overrides: Any) -> tuple[Any, str]:
    """The seed 1 bundle's per-lesion ``preprocessing`` for ``channels``, and a key of its settings.

    Returns:
        ``(transform, key)``: the bundle's ``preprocessing`` (load, register, subtract, scale,
        select ``channels``, cut ``patch_size`` patches) parsed with these overrides, and a
        string that changes when the bundle configs or these settings change (the patch
        cache's ``transform_key``).
    """
    from monai.bundle import ConfigParser

    from dce_monai.workflows.bundle_utils import BUNDLES_DIR

    bdir = BUNDLES_DIR / BUNDLE
    parser = ConfigParser()
    parser.read_config(str(bdir / "configs" / "train.json"))
    over = {"bundle_root": str(bdir), "manifest": str(manifest), "channels": list(channels), "patch_size": [int(v) for v in patch_size], **overrides}
    parser.update(over)
    key = cell_fingerprint({"bundle": bundle_configs_hash(), "channels": list(channels), "patch_size": over["patch_size"],
                       "register_phases": parser.get("register_phases"), **{k: v for k, v in overrides.items() if k != "device"}})
    return parser.get_parsed_content("preprocessing"), key


def search_patch_cache(manifest: str | Path | Manifest, cache_dir: str | Path, channels: Sequence[str], patch_size: int | Sequence[int] = 50,
                       dtype: str = "float32", progress: bool = True, bias_correction: bool = True) -> PatchCache:
    """The search's patch cache: the seed 1 bundle's ``preprocessing`` run once over the cohort with ``channels``.

    ``bias_correction`` is the bundle's setting of that name (N4 on, as in seed 1, by default).

    Example:
        >>> cache = search_patch_cache("cohort/manifest.json", "out/cache", ["T1pre", "T1post3", "sub"])  # doctest: +SKIP
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    ps = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    pre, key = bundle_preprocessing(m.path, channels, ps, bias_correction=bias_correction)
    return get_patch_cache(m, cache_dir, pre, key, sequences=channels, dtype=dtype, progress=progress)


def search_workflow(cache: PatchCache, group: Sequence[Sequence[str]], fold: int, folds_file: str | Path, st: SearchSettings,
                    device: str | torch.device = "cpu", amp: bool = False, output_dir: str | Path | None = None, manifest: str | Path = "",
                    network_factory: Any = None) -> Any:
    """The seed 1 bundle's training workflow for one group of cells (``train.json`` + ``search.json``), initialised.

    Args:
        cache: the patch cache (built by the bundle's preprocessing; its channels are the network input).
        group: the triplets trained in lock-step.
        fold: held-out fold.
        folds_file: the folds JSON.
        st: training settings (bundle overrides).
        device: ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast (CUDA).
        output_dir: where the bundle writes TensorBoard curves (default: a temporary folder).
        manifest: the cohort manifest (recorded in the config; the data come from the cache).
        network_factory: ``f(channels, triplets, seed) -> nn.Module`` returning a group with
            outputs ``(B, K, 2)`` that replaces the bundle's ``network_def`` (e.g. a cheaper
            network to test the search machinery); None: the bundle's ResNet34 group.

    Returns:
        An initialised ``monai.bundle.ConfigWorkflow``; ``run()`` trains the group.
    """
    import tempfile

    from dce_monai.workflows.bundle_utils import bundle_workflow

    out = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="search_cell_"))
    extra = {} if network_factory is None else {"network_def": network_factory(list(cache.channel_names), [list(t) for t in group], st.seed)}
    return bundle_workflow(
        BUNDLE, ["train.json", "search.json"], "train",
        cache=cache, triplets=[list(t) for t in group], channels=list(cache.channel_names), fold=int(fold), folds=str(folds_file),
        manifest=str(manifest), validate_data=False,
        device=torch.device(device), amp=bool(amp) and torch.device(device).type == "cuda", output_dir=str(out),
        ckpt_dir=str(out / "models"), train_state_dir=str(out / "train_state"), resume=False, **st.overrides(), **extra,
    )


def predict_group(wf: Any, split: str) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Positive-class probabilities of every patch of ``split`` (``"train"`` or ``"test"``) for each member.

    Runs the trained group in eval mode without gradients (MONAI ``eval_mode``) with the
    bundle's evaluation ``prepare_batch`` (resize only) and batch size, as the bundle's
    evaluator does.

    Returns:
        ``(probs (N, K), lesion ids, patient ids, labels (N,))``.
    """
    from monai.data import DataLoader

    net = wf.parser.get_parsed_content("network")
    prep = wf.parser.get_parsed_content("prepare_batch")
    ds = wf.parser.get_parsed_content("train#dataset" if split == "train" else "test_dataset")
    amp = bool(wf.parser.get_parsed_content("amp"))
    device = next(net.parameters()).device
    loader = DataLoader(ds, batch_size=int(wf.parser.get_parsed_content("batch_size")), shuffle=False, num_workers=0)
    probs, lids, pids, ys = [], [], [], []
    with eval_mode(net):
        for batch in loader:
            x, y = prep(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                logits = net(x)
            probs.append(torch.softmax(logits.float(), dim=-1)[..., 1].cpu())
            lids += [str(v) for v in batch["lesion_id"]]
            pids += [str(v) for v in batch["patient_id"]]
            ys.append(y.cpu())
    return torch.cat(probs).numpy().astype(np.float64), lids, pids, torch.cat(ys).numpy()


def _lesion_scores(probs: np.ndarray, lesion_ids: Sequence[str], patient_ids: Sequence[str], labels: np.ndarray) -> list[dict[str, Any]]:
    ids, agg, ys = aggregate_by_lesion(probs, list(lesion_ids), labels, reduction="max")
    pid = dict(zip(lesion_ids, patient_ids))
    return [{"patient_id": pid[lid], "lesion_id": lid, "label": int(y), "prob": float(p)} for lid, p, y in zip(ids, agg, ys)]  # type: ignore[arg-type]


def run_cells(
    cache: PatchCache,
    group: Sequence[Sequence[str]],
    fold: int,
    folds_file: str | Path,
    st: SearchSettings,
    device: str | torch.device = "cpu",
    amp: bool = True,
    output_dir: str | Path | None = None,
    manifest: str | Path = "",
    network_factory: Any = None,
    curves: bool = False,
) -> list[dict[str, Any]]:
    """Train (one bundle run) and evaluate the cells ``(triplet, fold)`` for every triplet of ``group``.

    Args:
        cache: the patch cache (all searched channels).
        group: triplets trained in lock-step on the same batches.
        fold: held-out fold.
        folds_file: the folds JSON (patient ids per fold).
        st: training settings.
        device: ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast on CUDA.
        output_dir: the run's TensorBoard folder (default: temporary).
        manifest: the cohort manifest path (recorded in the bundle config).
        network_factory: see :func:`search_workflow`.
        curves: record learning curves (:class:`~dce_monai.handlers.epoch_curves.EpochCurves`):
            per-epoch mean training loss and, as a diagnostic only, the held-out per-lesion AUC
            after each epoch (evaluation mode, BatchNorm running averages, random state
            restored: the trained model and the predictions are the same as without curves,
            tested). The model kept is still the last epoch's.

    Returns:
        One result dict per triplet: held-out per-lesion probabilities (max over patches),
        metrics at 0.5 and at the training-fold Youden threshold, losses, timings; with
        ``curves``, ``"curves": {"train_loss": [...], "held_out_auc": [...]}`` (one value per epoch).

    Raises:
        ValueError: an empty training/held-out fold, a training fold with one class, or a
            diverged training (NaN/Inf probabilities).
    """
    from dce_monai.metrics.stats import binary_metrics, youden_threshold

    folds = read_folds(folds_file)
    if not 0 <= int(fold) < len(folds):
        raise ValueError(f"fold must be in [0, {len(folds)}), got {fold!r}.")
    held = set(folds[fold])
    is_test = np.array([p in held for p in cache.patient_ids])
    n_test, n_train = int(is_test.sum()), int((~is_test).sum())
    if n_test == 0 or n_train == 0:
        raise ValueError(f"fold {fold}: {n_test} held-out and {n_train} training patches; every fold needs both.")
    train_classes = sorted(set(cache.labels.numpy()[~is_test].tolist()))
    if len(train_classes) < 2:
        raise ValueError(f"fold {fold}: the training patients hold one class only ({train_classes}); use a smaller k.")
    wf = search_workflow(cache, group, fold, folds_file, st, device, amp, output_dir, manifest, network_factory)
    recorder = None
    if curves:
        from dce_monai.handlers.epoch_curves import EpochCurves

        dev = torch.device(device)
        recorder = EpochCurves(wf.parser.get_parsed_content("network"), wf.parser.get_parsed_content("loss"),
                               score=lambda: _held_out_aucs(wf, len(group)),
                               devices=[dev.index or 0] if dev.type == "cuda" else [])
        recorder.attach(wf.parser.get_parsed_content("train#trainer"))
    t0 = time.perf_counter()
    wf.run()
    t_train = time.perf_counter() - t0
    loss_fn = wf.parser.get_parsed_content("loss")
    t0 = time.perf_counter()
    p_test, lid_te, pid_te, y_te = predict_group(wf, "test")
    p_train, lid_tr, pid_tr, y_tr = predict_group(wf, "train")
    t_pred = time.perf_counter() - t0
    wf.finalize()
    results = []
    for j, t in enumerate(group):
        if not (np.all(np.isfinite(p_test[:, j])) and np.all(np.isfinite(p_train[:, j]))):
            raise ValueError(f"cell {cell_name(t, fold)}: the trained network gives NaN/Inf probabilities (training diverged); lower learning_rate or check the patches.")
        test_rows = _lesion_scores(p_test[:, j], lid_te, pid_te, y_te)
        train_rows = _lesion_scores(p_train[:, j], lid_tr, pid_tr, y_tr)
        ytr = [r["label"] for r in train_rows]
        thr = youden_threshold(ytr, [r["prob"] for r in train_rows])
        yte, pte = [r["label"] for r in test_rows], [r["prob"] for r in test_rows]
        results.append({
            "triplet": list(t), "model": triplet_name(t), "fold": fold, "lesions": test_rows,
            "train_threshold": thr, "metrics": binary_metrics(yte, pte, 0.5), "metrics_tuned": binary_metrics(yte, pte, thr),
            "train_metrics": binary_metrics(ytr, [r["prob"] for r in train_rows], 0.5),
            "final_loss": loss_fn.last[j] if j < len(loss_fn.last) else None, "n_train_patches": n_train, "n_test_patches": n_test,
            "seconds": {"train_group": t_train, "train_per_epoch_group": t_train / st.max_epochs, "group_size": len(group), "predict": t_pred},
            "device": str(device),
        })
        if recorder is not None:
            results[-1]["curves"] = {"train_loss": [e[j] if j < len(e) else math.nan for e in recorder.train_loss],
                                     "held_out_auc": [e[j] for e in recorder.held_out]}
    return results


def _held_out_aucs(wf: Any, n_members: int) -> list[float]:
    """Per-lesion (max) AUC of the held-out fold for each member, NaN where the scores are not finite."""
    from dce_monai.metrics.stats import roc_auc

    probs, lids, pids, labels = predict_group(wf, "test")
    out = []
    for j in range(n_members):
        if not np.all(np.isfinite(probs[:, j])):
            out.append(math.nan)
            continue
        rows = _lesion_scores(probs[:, j], lids, pids, labels)
        out.append(roc_auc([r["label"] for r in rows], [r["prob"] for r in rows]))
    return out


# ----------------------------------------------------------------------------- cells on disk


def _read_cell(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """A finished cell, or None when absent or half-written (it is then recomputed; the file is named in a log line).

    Raises:
        ValueError: a finished cell computed with other settings.
    """
    return read_cell(path, fingerprint, remedy="Use another --out folder or delete the cells folder.")


_WORKER: dict[str, Any] = {}


def _worker_init(cache_path: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["cache"] = load_patch_cache(cache_path)


def _worker_task(args: tuple[Any, ...]) -> list[str]:
    group, fold, folds_file, st, cells_dir, fingerprint, runs_dir, manifest, curves = args
    return _run_and_write(_WORKER["cache"], group, fold, folds_file, st, "cpu", False, Path(cells_dir), fingerprint, runs_dir, manifest, curves=curves)


def _run_and_write(cache: PatchCache, group: Sequence[Sequence[str]], fold: int, folds_file: str | Path, st: SearchSettings, device: str, amp: bool,
                   cells_dir: Path, fingerprint: str, runs_dir: str | Path | None = None, manifest: str | Path = "",
                   network_factory: Any = None, curves: bool = False) -> list[str]:
    tb = None if runs_dir is None else Path(runs_dir) / f"fold{fold}__{'__'.join(triplet_name(t) for t in group)}"
    results = run_cells(cache, group, fold, folds_file, st, device, amp, tb, manifest, network_factory, curves)
    names = []
    for r in results:
        name = cell_name(r["triplet"], fold)
        write_json_atomic(cells_dir / f"{name}.json", {**r, "fingerprint": fingerprint, "seed": st.seed, "max_epochs": st.max_epochs, "complete": True})
        names.append(name)
    return names


def _progress(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="cell")
    except ImportError:  # pragma: no cover - tqdm is a dependency of monai's extras
        class _Print:
            def __init__(self) -> None:
                self.n = 0

            def update(self, k: int = 1) -> None:
                self.n += k
                print(f"{desc}: {self.n}/{total} cells", flush=True)

            def close(self) -> None:
                pass

        return _Print()


def exam_channels(exam: dict[str, Any]) -> set[str]:
    """Channels an exam can give: its sequences, plus ``sub`` when it has T1pre and T1post1."""
    have = set(exam["sequences"])
    return have | ({SUB} if {PRE, post_name(1)} <= have else set())


def plan_channels(
    manifest: Manifest, triplets: Sequence[Sequence[str]] | None = None
) -> tuple[Manifest, list[tuple[str, ...]], list[tuple[str, str]]]:
    """Candidate triplets from the channels the exams have, and the patients a request leaves out.

    Policy (the same for every cohort, stated in docs/channel_search.md):

    - Without ``triplets``, the candidates are seed 1's channels (:data:`SEQUENCES`) that
      *every* exam has (``sub`` when every exam has T1pre and T1post1), and the search
      compares all their triplets: a cohort without T2 gives the 20 triplets of T1pre,
      T1post1..4 and sub; one whose shortest exam has 3 post phases drops T1post4. No
      patient is left out.
    - With ``triplets``, a post phase is taken by its index (``T1post3`` = the third
      post-contrast acquisition, whatever its time); exams lacking a requested channel are
      listed and left out, never silently.

    Args:
        manifest: the validated cohort.
        triplets: requested triplets, or None for all candidates.

    Returns:
        ``(manifest with the patients kept, triplets, [(patient_id, reason), ...] left out)``.

    Raises:
        ValueError: fewer than 3 channels common to every exam, or no patient having every
            requested channel (the channels each exam lacks are named).

    Example:
        >>> m2, trips, left = plan_channels(load_manifest("mama_mia/manifest.json"))  # doctest: +SKIP
        >>> len(trips)  # no T2: C(6, 3)                                              # doctest: +SKIP
        20
    """
    have = {p["patient_id"]: exam_channels(p["exam"]) for p in manifest.patients}
    if triplets is None:
        common = set.intersection(*have.values()) if have else set()
        candidates = [c for c in SEQUENCES if c in common]
        if len(candidates) < 3:
            raise ValueError(f"{manifest.path}: the exams share only {candidates} of the channels {list(SEQUENCES)}; a search needs 3.")
        return manifest, list(all_triplets(candidates)), []
    trips = [tuple(t) for t in triplets]
    need = set().union(*map(set, trips))
    left = [(pid, f"lacks {sort_sequences(sorted(need - chans))}") for pid, chans in have.items() if not need <= chans]
    if len(left) == len(have):
        raise ValueError(f"{manifest.path}: no exam has every requested channel {sort_sequences(sorted(need))}; e.g. patient {left[0][0]} {left[0][1]}.")
    kept = [pid for pid in have if need <= have[pid]]
    return (manifest.select(kept) if left else manifest), trips, left


def run_search(
    manifest: str | Path | Manifest,
    out_dir: str | Path,
    k: int = 10,
    max_epochs: int = 15,
    triplets: Sequence[Sequence[str]] | None = None,
    seed: int = 0,
    batch_size: int = 32,
    image_size: int = 224,
    patch_size: int | Sequence[int] = 50,
    workers: int = 1,
    shard: tuple[int, int] | str | None = None,
    device: str = "cpu",
    amp: bool = True,
    pretrained_weights: str | Path | None = None,
    group_size: int = 4,
    cache_dtype: str = "float32",
    progress: bool = True,
    skip_invalid: bool = False,
    network_factory: Any = None,
    curves: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Run (this shard of) the channel search; finished cells are skipped, half-written ones redone.

    Args:
        manifest: cohort manifest (path or loaded).
        out_dir: output folder (``cells/``, ``cache/``, ``folds.json``, ``run.json``).
        k: number of patient-wise folds (seed 1: 10).
        max_epochs: epochs per cell.
        triplets: triplets to compare (default: all 35).
        seed: seed of folds, initial weights, batch order and augmentation.
        batch_size: training batch size.
        image_size: network input size (seed 1: 224).
        patch_size: lesion patch size in voxels (seed 1: 50).
        workers: CPU processes running cells in parallel (CPU only).
        shard: ``(i, n)`` or ``"i/n"``: run cells ``i, i+n, i+2n, ...`` of the cell list.
        device: ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast on CUDA (the bundle's amp; ignored on CPU).
        pretrained_weights: local torchvision ResNet34 weights.
        group_size: triplets of one fold trained in lock-step on shared batches (default 4:
            ~10 % faster than 1 on an H100 and on CPU, identical results on CPU).
        cache_dtype: ``"float32"`` (the values the bundle trains on; default) or ``"float16"`` patch cache.
        progress: progress bars.
        network_factory: replaces the bundle's network (see :func:`search_workflow`; its
            qualified name is part of the cells' fingerprint); CPU serial runs only.
        curves: keep per-epoch training loss and the diagnostic held-out AUC in every cell
            (see :func:`run_cells`; results unchanged); finished cells without curves are rerun.
        **settings: further :class:`SearchSettings` fields (``learning_rate``, ``rotate_deg`` ...).

    Returns:
        ``{"cells_total", "cells_in_shard", "cells_run", "cells_skipped", "seconds", "out_dir"}``.

    Raises:
        ValueError: bad arguments, cells from another configuration in ``out_dir``, or
            folds that cannot be built (see :func:`~dce_monai.data.folds.patient_folds`).

    Example:
        >>> run_search("cohort/manifest.json", "search", k=10, device="cuda")  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    dev = look_up_option(device, ("cpu", "cuda"))
    for name, v in (("workers", workers), ("group_size", group_size), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
    if workers > 1 and network_factory is not None:
        raise ValueError("network_factory runs in this process only; use workers=1.")
    if workers > 1 and dev == "cuda":
        raise ValueError(f"workers={workers} runs CPU processes; on CUDA use workers=1 (and shards for several GPUs).")
    if dev == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but torch sees no CUDA device.")
    sh = parse_shard(shard)
    ps = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    st = SearchSettings(max_epochs=max_epochs, batch_size=batch_size, image_size=image_size, seed=seed,
                        pretrained_weights=None if pretrained_weights is None else str(pretrained_weights), **settings)
    for t in triplets or ():
        validate_sequence_names(t, f"triplet {t!r}")
        if len(t) != 3:
            raise ValueError(f"a triplet needs exactly 3 channel names, got {list(t)}.")
    out = Path(out_dir)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out, "search-channels", "all" if sh is None else f"shard-{sh[0]}-of-{sh[1]}"):
        m = require_valid(manifest, skip_invalid=skip_invalid)  # every problem listed before any work
        m, trips, left_out = plan_channels(m, triplets)
        for pid, why in left_out:
            logger.warning("channel search: patient %s left out: %s", pid, why)
        channels = sort_sequences(sorted({c for t in trips for c in t}))
        run_path = out / "run.json"
        prev = None
        if run_path.is_file():
            try:
                prev = json.loads(run_path.read_text())
            except json.JSONDecodeError:
                prev = None
        if prev and prev.get("triplets") != [list(t) for t in trips]:
            raise ValueError(f"{run_path} lists other triplets ({len(prev.get('triplets', []))}) than this run ({len(trips)}); use the same --triplets for every shard.")
        diff = settings_diff({**(prev.get("settings") or {}), "k": prev.get("k")}, {**st.fingerprint_dict(), "k": k}) if prev else []
        if diff:  # refused before any preprocessing or training
            raise ValueError(f"{run_path} belongs to a run with other data or settings ({'; '.join(diff)}); use another --out folder.")
        cache = search_patch_cache(m, out / "cache", channels, ps, dtype=cache_dtype, progress=progress, bias_correction=st.bias_correction)
        lesions = cache.lesion_table()
        folds_path = out / "folds.json"
        folds = patient_folds(lesions, k=k, seed=seed)
        check_fold_classes(lesions, folds, source=str(folds_path))
        if folds_path.is_file():
            if read_folds(folds_path) != folds:
                raise ValueError(f"{folds_path} holds other folds than this cohort/k/seed gives; use another --out folder.")
        else:
            write_folds(folds, folds_path, k=k, seed=seed, manifest=str(m.path))
        net_name = None if network_factory is None else f"{network_factory.__module__}.{network_factory.__qualname__}"
        fingerprint = cell_fingerprint({"cache": cache.key, "folds": folds, "settings": st.fingerprint_dict(), "bundle": bundle_configs_hash(),
                                        **({} if net_name is None else {"network": net_name})})
        run_info = {"manifest": str(m.path), "k": k, "triplets": [list(t) for t in trips], "settings": st.fingerprint_dict(),
                    "fingerprint": fingerprint, "cache": str(cache.path), "n_patches": len(cache), "n_lesions": len(lesions),
                    "skipped_lesions": cache.skipped_lesions, "target": m.target, "channels": channels,
                    "left_out_patients": [list(x) for x in left_out]}
        if prev and prev.get("fingerprint") != fingerprint:  # same settings, other data: the cohort's files or the bundle changed
            raise ValueError(f"{run_path} belongs to a run with other data or settings (the patch cache (cohort files, channels, patch size "
                             f"or preprocessing) differs); use another --out folder.")
        write_json_atomic(run_path, run_info)
        cells = [(t, f) for t in trips for f in range(k)]
        mine = cells[sh[0] :: sh[1]] if sh else cells
        def _done(t: Sequence[str], f: int) -> bool:
            c = _read_cell(cells_dir / f"{cell_name(t, f)}.json", fingerprint)
            return c is not None and (not curves or "curves" in c)

        pending = [(t, f) for t, f in mine if not _done(t, f)]
        groups: list[tuple[list[tuple[str, ...]], int]] = []
        for f in range(k):
            tf = [t for t, ff in pending if ff == f]
            groups += [(tf[i : i + group_size], f) for i in range(0, len(tf), group_size)]
        bar = _progress(len(pending), f"channel search{'' if not sh else f' shard {sh[0]}/{sh[1]}'}") if progress else None
        runs_dir = out / "runs"
        if workers == 1:
            for g, f in groups:
                _run_and_write(cache, g, f, folds_path, st, dev, amp, cells_dir, fingerprint, runs_dir, m.path, network_factory, curves)
                if bar:
                    bar.update(len(g))
        else:
            import multiprocessing as mp

            from .threads import resolve_threads

            threads = resolve_threads(None, workers)  # the CPUs this process may use, shared among the workers
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(str(cache.path), threads)) as ex:
                futs = [ex.submit(_worker_task, (g, f, str(folds_path), st, str(cells_dir), fingerprint, str(runs_dir), str(m.path), curves)) for g, f in groups]
                for fu in futs:
                    done = fu.result()
                    if bar:
                        bar.update(len(done))
        if bar:
            bar.close()
        return {"cells_total": len(cells), "cells_in_shard": len(mine), "cells_run": len(pending), "cells_skipped": len(mine) - len(pending),
                "seconds": time.perf_counter() - t0, "out_dir": str(out), "channels": channels, "left_out": left_out}


# ----------------------------------------------------------------------------- merge


def merge(out_dir: str | Path, n_boot: int = 1000, seed: int = 0, tensorboard: bool = True) -> dict[str, Path]:
    """Combine the cells of all shards into predictions, a ranked table and TensorBoard HParams.

    Per triplet, the held-out lesion probabilities of all folds are pooled and scored:
    AUC with a patient-resampled bootstrap 95 % CI; sensitivity, specificity and accuracy at
    0.5 and at each fold's training-set Youden threshold; mean +- SD of the per-fold AUCs;
    DeLong's paired test against the best triplet (same lesions). Rows are sorted by AUC.

    Args:
        out_dir: the search folder (with ``run.json`` and ``cells/``).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        tensorboard: write ``tensorboard/`` HParams (one run per triplet).

    Returns:
        ``{"predictions": ..., "ranking_csv": ..., "ranking_md": ...}`` (+ ``"tensorboard"``).

    Raises:
        FileNotFoundError: no ``run.json`` in ``out_dir``.
        ValueError: cells missing or half-written (how many, which, which shard to re-run).

    Example:
        >>> merge("search")["ranking_md"].read_text()  # doctest: +SKIP
    """
    from dce_monai.metrics.collapse import score_collapse
    from dce_monai.metrics.results import write_predictions
    from dce_monai.metrics.stats import binary_metrics, bootstrap_ci, delong_test

    out = Path(out_dir)
    run_path = out / "run.json"
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_path} not found: run the search (all shards) into {out} first.")
    run = json.loads(run_path.read_text())
    trips = [tuple(t) for t in run["triplets"]]
    k = int(run["k"])
    cells: dict[tuple[tuple[str, ...], int], dict[str, Any]] = {}
    missing = []
    all_cells = [(t, f) for t in trips for f in range(k)]
    for i, (t, f) in enumerate(all_cells):
        c = _read_cell(out / "cells" / f"{cell_name(t, f)}.json", run["fingerprint"])
        if c is None:
            missing.append((i, cell_name(t, f)))
        else:
            cells[(t, f)] = c
    if missing:
        raise ValueError(f"{len(missing)} of {len(all_cells)} cells are missing or half-written in {out / 'cells'}, e.g. "
                         f"{[n for _, n in missing[:5]]}; re-run the search (cell i belongs to shard i % n) before merging.")
    rows: list[dict[str, Any]] = []
    per: dict[tuple[str, ...], dict[str, Any]] = {}
    for t in trips:
        les, tuned_pred, fold_auc, collapsed = [], [], [], []
        for f in range(k):
            c = cells[(t, f)]
            cc = score_collapse([r["prob"] for r in c["lesions"]])
            if cc["collapsed"]:
                collapsed.append(f"fold {f}: {cc['reason']}")
            for r in c["lesions"]:
                les.append(r)
                tuned_pred.append(int(r["prob"] >= c["train_threshold"]))
                rows.append({"experiment": EXPERIMENT, "model": triplet_name(t), "fold": f, "split": "test", "patient_id": r["patient_id"],
                             "lesion_id": r["lesion_id"], "label": r["label"], "prob": r["prob"]})
            if not math.isnan(c["metrics"]["auc"]):
                fold_auc.append(c["metrics"]["auc"])
        order = sorted(range(len(les)), key=lambda i: les[i]["lesion_id"])
        per[t] = {"lesions": [les[i] for i in order], "tuned": [tuned_pred[i] for i in order], "fold_auc": fold_auc, "collapsed": collapsed}
    table: list[dict[str, Any]] = []
    for t in trips:
        d = per[t]
        y = np.array([r["label"] for r in d["lesions"]])
        p = np.array([r["prob"] for r in d["lesions"]])
        g = [r["patient_id"] for r in d["lesions"]]
        m05 = binary_metrics(y, p, 0.5)
        tp = np.array(d["tuned"])
        n1, n0 = int(y.sum()), int((1 - y).sum())
        lo, hi = bootstrap_ci(y, p, "auc", n_boot=n_boot, seed=seed, groups=g) if n1 and n0 else (math.nan, math.nan)
        table.append({
            "model": triplet_name(t), "auc": m05["auc"], "auc_ci_low": lo, "auc_ci_high": hi,
            "sensitivity": m05["sensitivity"], "specificity": m05["specificity"], "accuracy": m05["accuracy"],
            "sensitivity_tuned": float(np.sum((tp == 1) & (y == 1)) / n1) if n1 else math.nan,
            "specificity_tuned": float(np.sum((tp == 0) & (y == 0)) / n0) if n0 else math.nan,
            "accuracy_tuned": float(np.mean(tp == y)),
            "fold_auc_mean": float(np.mean(d["fold_auc"])) if d["fold_auc"] else math.nan,
            "fold_auc_sd": float(np.std(d["fold_auc"], ddof=1)) if len(d["fold_auc"]) > 1 else math.nan,
            "n_lesions": int(y.size), "n_malignant": n1, "_t": t,
            "collapsed_folds": len(d["collapsed"]), "collapse": "; ".join(d["collapsed"]),
        })
    table.sort(key=lambda r: (-(r["auc"] if not math.isnan(r["auc"]) else -1.0), r["model"]))
    best = table[0]["_t"]
    yb = np.array([r["label"] for r in per[best]["lesions"]])
    pb = np.array([r["prob"] for r in per[best]["lesions"]])
    for rank, r in enumerate(table, 1):
        r["rank"] = rank
        pt = np.array([x["prob"] for x in per[r["_t"]]["lesions"]])
        if r["_t"] == best:
            r["delong_p_vs_best"], r["_delong_why"] = 1.0, ""
        elif yb.min() == yb.max():
            r["delong_p_vs_best"], r["_delong_why"] = math.nan, "one class only"
        else:  # NaN with a reason when a class holds one lesion
            t = delong_test(yb, pb, pt)
            r["delong_p_vs_best"], r["_delong_why"] = t["p"], t["reason"]
    pred_path = out / "predictions.csv"
    write_predictions(pred_path, rows)
    cols = ["rank", "model", "auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "accuracy", "sensitivity_tuned",
            "specificity_tuned", "accuracy_tuned", "fold_auc_mean", "fold_auc_sd", "delong_p_vs_best", "n_lesions", "n_malignant",
            "collapsed_folds", "collapse"]
    csv_path = out / "ranking.csv"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(table)
    os.replace(tmp, csv_path)
    md_path = out / "ranking.md"
    lines = [
        (f"Channel-triplet search: {len(trips)} triplets, {k}-fold patient-wise CV, {table[0]['n_lesions']} lesions "
         f"({table[0]['n_malignant']} malignant); per-lesion score = max over patches. AUC: pooled over all folds' held-out "
         "lesions; fold AUC: mean ± SD of the per-fold AUCs; collapsed: folds whose scores are near-constant or one class at 0.5."),
        "",
        "| rank | channels | AUC (95 % CI) | Sens@0.5 | Spec@0.5 | Acc@0.5 | Sens@Youden | Spec@Youden | Acc@Youden | fold AUC mean ± SD | DeLong p vs best | collapsed folds |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in table:
        lines.append(
            f"| {r['rank']} | {', '.join(r['_t'])} | {r['auc']:.3f} ({r['auc_ci_low']:.3f}–{r['auc_ci_high']:.3f}) | {r['sensitivity']:.3f} | "
            f"{r['specificity']:.3f} | {r['accuracy']:.3f} | {r['sensitivity_tuned']:.3f} | {r['specificity_tuned']:.3f} | {r['accuracy_tuned']:.3f} | "
            f"{r['fold_auc_mean']:.3f} ± {r['fold_auc_sd']:.3f} | {_p_text(r['delong_p_vs_best'], r['_delong_why'])} | {r['collapsed_folds']} |"
        )
    bad = [r for r in table if r["collapsed_folds"]]
    if bad:
        lines += ["", "Collapsed scores (their AUC is not a finding):", ""] + [f"- {r['model']}: {r['collapse']}" for r in bad]
    md_path.write_text("\n".join(lines) + "\n")
    result = {"predictions": pred_path, "ranking_csv": csv_path, "ranking_md": md_path}
    if tensorboard:
        result["tensorboard"] = _write_hparams(out / "tensorboard", table, run)
    return result


def _p_text(p: float, why: str) -> str:
    """A p-value for a table: ``0.0123``, or ``n/a (only one positive lesion)`` when undefined."""
    return f"n/a ({why})" if math.isnan(p) else f"{p:.3g}"


def _write_hparams(log_dir: Path, table: Sequence[dict[str, Any]], run: dict[str, Any]) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    st = run["settings"]
    with SummaryWriter(str(log_dir)) as w:
        for r in table:
            t = r["_t"]
            hp = {"triplet": r["model"], "c1": t[0], "c2": t[1], "c3": t[2], "max_epochs": st["max_epochs"], "learning_rate": st["learning_rate"],
                  "batch_size": st["batch_size"], "image_size": st["image_size"], "k": run["k"]}
            metrics = {f"hparam/{m}": (float(r[m]) if not math.isnan(r[m]) else 0.0) for m in
                       ("auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "accuracy", "fold_auc_mean", "delong_p_vs_best")}
            w.add_hparams(hp, metrics, run_name=r["model"])
    return log_dir


# ----------------------------------------------------------------------------- CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai search-channels``."""
    parser.add_argument("manifest", help="cohort manifest JSON")
    parser.add_argument("--out", required=True, help="output folder (cells/, cache/, predictions.csv, ranking.md)")
    parser.add_argument("--k", type=int, default=10, help="patient-wise folds (seed 1: 10)")
    parser.add_argument("--max-epochs", type=int, default=15, help="epochs per cell (the bundle's max_epochs)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="initial SGD learning rate (the bundle's learning_rate)")
    parser.add_argument("--triplets", default=None, help='e.g. "T1pre,T1post3,sub;T2,T1pre,sub" (default: every triplet of the channels all exams have: 35 with T2, 20 without); exams lacking a requested channel are listed and left out')
    parser.add_argument("--shard", default=None, help="i/n: run every n-th cell starting at i (e.g. 0/4)")
    parser.add_argument("--merge", action="store_true", help="combine finished cells into predictions.csv and ranking.{csv,md}")
    parser.add_argument("--workers", type=int, default=1, help="CPU processes running cells in parallel")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-amp", action="store_true", help="disable bfloat16 autocast on CUDA")
    parser.add_argument("--group-size", type=int, default=4, help="triplets trained in lock-step on shared batches")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224, help="network input size in pixels (the bundle's image_size)")
    parser.add_argument("--patch-size", type=int, default=50, help="lesion patch size in voxels (the bundle's patch_size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrained-weights", default=None, help="local torchvision ResNet34 .pth (never downloaded)")
    parser.add_argument("--no-bias-correction", action="store_true", help="no N4 in the preprocessing (the bundle's --bias_correction false)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (merge)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--skip-invalid", action="store_true", help="continue with the valid patients when validation finds problems")


def cli_main(args: argparse.Namespace) -> int:
    """Run the search (or this shard of it); with ``--merge`` only combine the finished cells.

    Without ``--shard`` and without ``--merge`` the run is complete, so it is merged at once.
    """
    if not args.merge:
        summary = run_search(
            args.manifest, args.out, k=args.k, max_epochs=args.max_epochs, learning_rate=args.learning_rate, seed=args.seed,
            triplets=None if args.triplets is None or args.triplets.strip().lower() == "all" else parse_triplets(args.triplets),
            batch_size=args.batch_size, image_size=args.image_size, patch_size=args.patch_size, workers=args.workers,
            shard=args.shard, device=args.device, amp=not args.no_amp, pretrained_weights=args.pretrained_weights,
            group_size=args.group_size, progress=not args.no_progress, skip_invalid=args.skip_invalid,
            bias_correction=not args.no_bias_correction,
        )
        for pid, why in summary["left_out"]:
            print(f"  patient {pid} left out: {why}")
        print(f"channels {summary['channels']}: {summary['cells_run']} cell(s) run, {summary['cells_skipped']} already finished, "
              f"in {summary['seconds']:.1f} s -> {args.out}")
        if args.shard is not None:
            return 0
    paths = merge(args.out, n_boot=args.n_boot, seed=args.seed)
    print(Path(paths["ranking_md"]).read_text())
    for name, p in paths.items():
        print(f"{name}: {p}")
    return 0
