"""Small helpers that the MONAI bundles in ``bundles/`` instantiate through ``_target_``.

They keep the bundle configs declarative: the train/validation split comes from a manifest
plus a folds file (:func:`fold_datalist`), per-lesion lists of patches become one flat
dataset (:class:`PatchDataset`), handlers that must run on one process only are wrapped
in :class:`RankZeroOnly`, and evaluation/inference write the project's predictions table
(:class:`PredictionsWriter`) and a metrics JSON (:class:`MetricsJsonWriter`).

Reference: Haarburger et al., "Transfer learning for breast cancer malignancy classification
based on dynamic contrast-enhanced MR images", BVM 2018, seed 1 (patch-level ResNet34,
per-lesion max aggregation).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.data import Dataset
from monai.utils import look_up_option

from dce_monai.data.folds import check_fold_classes, fold_split, read_folds
from dce_monai.data.manifest import load_manifest
from dce_monai.metrics.aggregation import aggregate_by_lesion
from dce_monai.workflows.results import write_predictions

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")
#: Values of the predictions table's ``split`` column (:data:`dce_monai.workflows.results.SPLITS`).
SPLITS_WRITTEN = ("train", "val", "test", "inference")
PATCH_KEYS = ("image", "label", "lesion_id", "patient_id", "label_value", "slice_index")


def is_rank0() -> bool:
    """True unless ``torch.distributed`` is initialised and this process is not rank 0."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def fold_datalist(
    manifest: str | Path,
    folds: str | Path | None,
    fold: int = 0,
    split: str = "train",
    level: str = "lesion",
    label: str | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Datalist of one split of one fold, from a manifest and a folds file.

    Fold ``fold`` is the held-out ``test`` split; the other folds form ``train`` (minus a
    patient-wise ``val`` share, stratified on the target, when ``val_fraction > 0``: the inner
    validation split a bundle may monitor and choose ``model_best.pt`` on, never the held-out fold), as in
    :func:`dce_monai.data.folds.fold_split`. ``split="all"`` returns every record (then
    ``folds`` may be ``None``).

    Args:
        manifest: cohort manifest JSON path.
        folds: folds JSON written by :func:`dce_monai.data.folds.write_folds` (or ``None`` with ``split="all"``).
        fold: index of the held-out fold, in ``[0, k)``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        level: ``"lesion"`` or ``"patient"`` records.
        label: manifest label used as the class target (default: the manifest's target).
        val_fraction: share of training patients moved to ``val``.
        seed: seed of the ``val`` draw.

    Returns:
        List of record dicts (``patient_id``, ``lesion_id``, ``label``, sequence paths, ...).

    Raises:
        ValueError: unknown ``split``, ``fold`` out of range, no folds file for a fold split,
            an empty split (``val`` with ``val_fraction`` 0 is an empty list, not an error), or a fold whose test or training part holds one class only
            (checked for every fold before any training starts).

    Example:
        >>> fold_datalist("cohort/manifest.json", "cohort/folds.json", fold=0, split="test")  # doctest: +SKIP
    """
    split = look_up_option(split, SPLITS)
    records = load_manifest(manifest).to_datalist(level=level, label=label)
    if split == "all":
        return records
    if folds is None:
        raise ValueError(f"folds is required for split={split!r} (got None); pass --folds <folds.json>.")
    fold_lists = read_folds(folds)
    if not 0 <= int(fold) < len(fold_lists):
        raise ValueError(f"fold must be in [0, {len(fold_lists)}) for {str(folds)!r}, got {fold!r}.")
    check_fold_classes(records, fold_lists, source=str(folds))
    if split == "val" and not val_fraction > 0:
        return []  # a run without an inner validation split (val_fraction 0) validates nothing
    parts = fold_split(records, fold_lists, int(fold), val_fraction=val_fraction, seed=seed)
    out = parts.get(split, [])
    if not out:
        raise ValueError(f"split {split!r} of fold {fold} is empty (manifest {str(manifest)!r}, folds {str(folds)!r}).")
    return out


def phase_registration(manifest: str | Path, keys: Sequence[str], enabled: bool | None = None) -> Any:
    """The registration step of a bundle pipeline: :class:`~dce_monai.transforms.RegisterPhasesd` or a no-op.

    Real cohorts are imported with ``dataset.register_phases`` true (their phases are not
    co-registered); phantoms without motion have it false. ``enabled=None`` follows the
    manifest; ``True``/``False`` (the bundle's ``--register_phases``) overrides it.

    Args:
        manifest: cohort manifest path.
        keys: post-contrast phases the pipeline loads (others are skipped); ``T1pre`` and
            non-phase keys in the list are ignored.
        enabled: ``None`` (follow the manifest), ``True`` or ``False``.

    Returns:
        A dictionary transform (an empty ``Compose`` when registration is off).

    Raises:
        ValueError: ``enabled`` is not None/True/False.

    Example:
        >>> phase_registration("cohort/manifest.json", ["T1pre", "T1post1"], enabled=False)  # doctest: +SKIP
        Compose(...)
    """
    from monai.transforms import Compose

    from dce_monai.sequences import is_post
    from dce_monai.transforms import RegisterPhasesd

    if enabled not in (None, True, False):
        raise ValueError(f"register_phases must be null, true or false, got {enabled!r}.")
    on = load_manifest(manifest).register_phases if enabled is None else enabled
    posts = [k for k in keys if is_post(k)]
    if not on or not posts:
        return Compose([])
    return RegisterPhasesd(keys=posts, allow_missing_keys=True)


class PatchDataset(Dataset):
    """Flat dataset of 2D patches made from a dataset of lesions that each yield a list of patches.

    ``lesions[i]`` is a list of patch dicts (output of
    :class:`dce_monai.transforms.LesionPatchesd`, usually through a ``CacheDataset`` so the
    deterministic part runs once); all patches are gathered (order: lesion, then slice), only
    ``keys`` are kept, and ``transform`` (random augmentation, resizing, normalisation) is
    applied per patch on access. MONAI's ``PatchDataset`` samples a fixed number of patches
    per item, which does not fit a per-lesion, variable patch count; hence this class.

    Args:
        lesions: sequence whose items are lists of patch dicts (or single dicts).
        transform: per-patch transform applied in ``__getitem__``.
        keys: patch keys kept (missing ones are skipped).
        allow_empty: accept a dataset without any patch (e.g. the validation set of a run
            that does not validate); otherwise no patch at all is an error.

    Raises:
        TypeError: an item is not a dict or a list of dicts.
        ValueError: no patch at all (unless ``allow_empty``).

    Example:
        >>> ds = PatchDataset(CacheDataset(datalist, preprocessing), transform=augment)  # doctest: +SKIP
    """

    def __init__(self, lesions: Sequence[Any], transform: Callable | None = None, keys: Sequence[str] = PATCH_KEYS, allow_empty: bool = False) -> None:
        patches: list[dict[str, Any]] = []
        for i in range(len(lesions)):
            item = lesions[i]
            items = [item] if isinstance(item, Mapping) else item
            if not isinstance(items, (list, tuple)) or not all(isinstance(p, Mapping) for p in items):
                raise TypeError(f"lesions[{i}] must be a dict or a list of dicts, got {type(item).__name__}.")
            patches.extend({k: p[k] for k in keys if k in p} for p in items)
        if not patches and not allow_empty:
            raise ValueError(f"no patch in {len(lesions)} lesion(s): every lesion yielded an empty list.")
        super().__init__(data=patches, transform=transform)


class RankZeroOnly:
    """Attach a handler on rank 0 only (all processes attach it when not distributed).

    ``handler`` may be built lazily (a ``_mode_: "partial"`` config component, i.e. a
    callable returning the handler), so e.g. a TensorBoard writer is never created on the
    other ranks.

    Args:
        handler: object with ``attach(engine)``, or a class / zero-argument callable returning one.

    Example:
        >>> RankZeroOnly(functools.partial(TensorBoardStatsHandler, log_dir="runs")).attach(trainer)  # doctest: +SKIP
    """

    def __init__(self, handler: Any) -> None:
        if not hasattr(handler, "attach") and not callable(handler):
            raise TypeError(f"handler must have attach(engine) or be callable, got {type(handler).__name__}.")
        self.handler = handler

    def attach(self, engine: Engine) -> None:
        if not is_rank0():
            return
        lazy = isinstance(self.handler, type) or not hasattr(self.handler, "attach")
        h = self.handler() if lazy else self.handler
        if not hasattr(h, "attach"):
            raise TypeError(f"handler factory returned {type(h).__name__}, which has no attach(engine).")
        h.attach(engine)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)):
        return [v.item() if isinstance(v, torch.Tensor) else v for v in value]
    return [value]


def _positive_prob(pred: Any) -> torch.Tensor:
    p = torch.as_tensor(pred).float()
    if p.ndim == 1:
        p = p[None]
    return torch.softmax(p, -1)[..., -1] if p.shape[-1] > 1 else torch.sigmoid(p[..., 0])


class PredictionsWriter:
    """Collect patch predictions of an evaluator and write per-lesion probabilities as CSV.

    Lesion probability = ``reduction`` (default max, seed 1) over its patches of the
    positive-class softmax probability, via :func:`dce_monai.metrics.aggregation.aggregate_by_lesion`;
    rows follow :func:`dce_monai.workflows.results.write_predictions`
    (``experiment, model, fold, split, patient_id, lesion_id, label, prob``). Reads ``pred``
    from ``engine.state.output`` and ``label``/``lesion_id``/``patient_id`` from
    ``engine.state.batch`` (decollated lists or collated dicts). Rank 0 writes.

    Args:
        filename: CSV path (parents created).
        experiment: experiment name column.
        model: model name column.
        fold: fold column: the fold whose training patients the model learnt from (``-1``: none,
            e.g. a model applied to a whole cohort).
        split: split column: ``train`` (the model trained on these patients), ``val``/``test``
            (held-out: it did not) or ``inference`` (it may have: never counted as held-out).
            The bundles' ``inference.json`` writes ``inference`` with fold ``-1``; runs that predict
            a held-out fold override ``predictions_split`` and ``predictions_fold``.
        reduction: ``"max"`` or ``"mean"``.

    Example:
        >>> PredictionsWriter("out/predictions.csv", fold=0, split="test").attach(evaluator)  # doctest: +SKIP
    """

    def __init__(self, filename: str | Path, experiment: str = "transfer_resnet34", model: str = "resnet34",
                 fold: int | str = 0, split: str = "test", reduction: str = "max") -> None:
        self.filename = Path(filename)
        self.experiment, self.model, self.fold = str(experiment), str(model), fold
        self.split = look_up_option(split, SPLITS_WRITTEN)
        self.reduction = look_up_option(reduction, ("max", "mean"))
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self._p: list[float] = []
        self._y: list[int] = []
        self._ids: list[str] = []
        self._pid: dict[str, str] = {}

    def collect(self, engine: Engine) -> None:
        out, batch = engine.state.output, engine.state.batch
        outs: list[Any] = out if isinstance(out, list) else [out]
        batches: list[Any] = batch if isinstance(batch, list) else [batch]
        for o, b in zip(outs, batches):
            probs = _positive_prob(o["pred"]).reshape(-1).tolist()
            ids = [str(i) for i in _as_list(b["lesion_id"])]
            labels = [int(v) for v in _as_list(b["label"])]
            pids = [str(i) for i in _as_list(b["patient_id"])]
            if not (len(probs) == len(ids) == len(labels) == len(pids)):
                raise ValueError(f"PredictionsWriter: {len(probs)} predictions but {len(ids)} lesion ids, {len(labels)} labels.")
            self._p.extend(probs)
            self._y.extend(labels)
            self._ids.extend(ids)
            self._pid.update(zip(ids, pids))

    def write(self, engine: Engine | None = None) -> Path | None:
        """Aggregate per lesion and write the CSV (rank 0 only); return its path."""
        if not self._ids:
            raise ValueError(f"PredictionsWriter: no prediction collected for {str(self.filename)!r}.")
        ids, scores, labels = aggregate_by_lesion(self._p, self._ids, self._y, self.reduction)
        self.rows = [
            {"experiment": self.experiment, "model": self.model, "fold": self.fold, "split": self.split,
             "patient_id": self._pid[str(i)], "lesion_id": str(i), "label": int(y), "prob": float(s)}
            for i, s, y in zip(ids, np.asarray(scores), np.asarray(labels))
        ]
        if not is_rank0():
            return None
        return write_predictions(self.filename, self.rows)


class MetricsJsonWriter:
    """Write ``engine.state.metrics`` (plus ``extra`` entries) as JSON when the engine completes.

    A plain writer because MONAI's ``MetricsSaver`` writes CSV files only. Rank 0 writes.

    Args:
        filename: JSON path (parents created).
        extra: constant entries added to the file (fold, split, channels, ...).

    Example:
        >>> MetricsJsonWriter("out/metrics.json", extra={"fold": 0}).attach(evaluator)  # doctest: +SKIP
    """

    def __init__(self, filename: str | Path, extra: Mapping[str, Any] | None = None) -> None:
        self.filename = Path(filename)
        self.extra = dict(extra or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not is_rank0():
            return
        metrics = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
                   for k, v in engine.state.metrics.items()}
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.filename.with_name(f".{self.filename.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**self.extra, "metrics": metrics}, indent=1, default=str))
        os.replace(tmp, self.filename)


def init_distributed(backend: str = "auto") -> torch.device:
    """Initialise ``torch.distributed`` from the ``torchrun`` environment; return this rank's device.

    ``backend="auto"`` picks ``nccl`` when CUDA is available, else ``gloo``; the device is
    ``cuda:<LOCAL_RANK>`` (also made current) or ``cpu``. Does nothing but return the device
    when already initialised.

    Args:
        backend: ``"auto"``, ``"nccl"`` or ``"gloo"``.

    Returns:
        The torch device of this process.

    Raises:
        ValueError: run outside ``torchrun`` (no ``RANK``/``WORLD_SIZE`` environment variables).
    """
    backend = look_up_option(backend, ("auto", "nccl", "gloo"))
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k not in os.environ]
    if missing and not dist.is_initialized():
        raise ValueError(f"init_distributed needs torchrun's environment; missing {missing}. Launch with torchrun.")
    cuda = torch.cuda.is_available()
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    # ignite creates its own process-group view lazily, with a collective call, the first
    # time any rank asks for its rank; do it here on every rank so that handlers built on
    # rank 0 only (RankZeroOnly) cannot deadlock the others.
    idist.sync()
    if cuda and backend == "nccl":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def destroy_distributed() -> None:
    """Tear the process group down if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class LrToMetrics:
    """Put the optimizer's current learning rate into ``engine.state.metrics["lr"]`` each epoch.

    Attach it before ``LrScheduleHandler`` and before the stats handlers, so ``StatsHandler``
    and ``TensorBoardStatsHandler`` log the rate used during the epoch that just ended
    (MONAI's ``LrScheduleHandler`` prints it but does not write it to TensorBoard).

    Args:
        optimizer: a torch optimizer (the first parameter group's ``lr`` is used).
        name: metric name.

    Raises:
        TypeError: ``optimizer`` has no ``param_groups``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, name: str = "lr") -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"optimizer must be a torch optimizer with param_groups, got {type(optimizer).__name__}.")
        self.optimizer, self.name = optimizer, str(name)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        engine.state.metrics[self.name] = float(self.optimizer.param_groups[0]["lr"])


def lesion_auc_output(output: Any, id_key: str = "pred_lesion_id") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``output_transform`` for :class:`dce_monai.handlers.LesionAUC` in a MONAI evaluator.

    MONAI evaluators keep batch keys out of ``engine.state.output``; the bundle copies
    ``lesion_id`` into the output as ``id_key`` with ``CopyItemsd`` in the evaluator's
    postprocessing, and this function hands ``(probabilities, labels, lesion ids)`` on.

    Args:
        output: decollated evaluator output (list of dicts with ``pred``, ``label``, ``id_key``).
        id_key: key holding the lesion id.

    Returns:
        Positive-class probabilities, labels and lesion ids, one per patch.

    Raises:
        KeyError: an output item lacks ``id_key``.
    """
    items = output if isinstance(output, list) else [output]
    probs: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    ids: list[str] = []
    for it in items:
        if id_key not in it:
            raise KeyError(f"evaluator output lacks {id_key!r} (has {sorted(map(str, it))}); copy lesion_id into it with CopyItemsd.")
        probs.append(_positive_prob(it["pred"]).reshape(-1))
        labels.append(torch.as_tensor(it["label"]).reshape(-1))
        ids.extend(str(i) for i in _as_list(it[id_key]))
    return torch.cat(probs), torch.cat(labels), ids


def first_image(batch: Any) -> tuple[list[Any], list[None]]:
    """``batch_transform`` for ``TensorBoardImageHandler``: the patches' ``image``, no label image."""
    items = batch if isinstance(batch, list) else [batch]
    return [it["image"] for it in items], [None] * len(items)


def no_output(output: Any) -> list[None]:
    """``output_transform`` for ``TensorBoardImageHandler``: classification logits are not images."""
    return [None] * (len(output) if isinstance(output, list) else 1)


def attention_output(output: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image, label, mask)`` batches for ``dce_monai.handlers.AttentionInMask``.

    Reads the evaluator output after MONAI's decollation (a list of per-sample dicts, the mask
    copied into the output as ``pred_mask`` by the bundle's postprocessing) or a collated dict.

    Raises:
        KeyError: an output item without ``image``, ``label`` or ``pred_mask``.
    """
    items = output if isinstance(output, list) else [output]
    for it in items:
        missing = [k for k in ("image", "label", "pred_mask") if k not in it]
        if missing:
            raise KeyError(f"attention_output: evaluator output lacks {missing}; keys: {sorted(it)}.")
    if not isinstance(output, list):
        return output["image"], output["label"], output["pred_mask"]
    image = torch.stack([torch.as_tensor(it["image"]) for it in items])
    label = torch.stack([torch.as_tensor(it["label"]).reshape(-1)[:1] for it in items]).reshape(-1)
    mask = torch.stack([torch.as_tensor(it["pred_mask"]) for it in items])
    return image, label, mask


def loss_parts(output: Any) -> dict[str, float]:
    """Training loss and, for the mask-guided trainer, its parts ``ce`` and ``dice`` (TensorBoard tags).

    Reads the first item of MONAI's decollated output (every item carries the batch's values).
    The tag ``train_loss`` keeps the name the other variants and the seed 1 bundle use.
    """
    first = output[0] if isinstance(output, list) else output
    tags = {"loss": "train_loss", "ce": "train_ce", "dice": "train_cam_dice"}
    return {tag: float(first[k]) for k, tag in tags.items() if k in first}


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
