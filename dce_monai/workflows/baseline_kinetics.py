"""Classical kinetic-feature baseline: hand-crafted lesion features + scikit-learn classifiers.

Both seed papers measure their deep models against what radiologists read from DCE-MRI:
the enhancement kinetics (BI-RADS curve type, wash-in, washout, signal enhancement ratio)
and the lesion's size and shape. This workflow computes those per lesion, caches them in a
CSV, and fits a standardised logistic regression and a histogram gradient-boosting
classifier on the *same patient-wise folds* as the deep models
(:func:`dce_monai.data.folds.patient_folds` with the same ``k`` and ``seed``, or a folds
file), so its per-lesion predictions are directly comparable.

Features of one lesion (mask = ``label_map == label_value``; maps from
:class:`~dce_monai.transforms.EnhancementMaps`; all kinetic values are unitless ratios):

- ``washin_mean``/``washin_p90``, ``washout_mean``/``washout_p90``, ``ser_mean``/``ser_p90``:
  mean and 90th percentile over the lesion voxels;
- ``frac_persistent``/``frac_plateau``/``frac_washout``/``frac_nonenhancing``: fraction of
  lesion voxels of each BI-RADS delayed-phase curve type;
- ``top_washin``/``top_washout``/``top_ser``: the same ratios of the mean curve of the most
  enhancing 10 % of voxels (ranked by wash-in), the "hot spot" a radiologist places an ROI on;
- ``re_top_<phase>`` and ``re_mean_<phase>``: relative enhancement (S_k - S0)/S0 of the hot-spot
  and of the whole-lesion mean curve per post phase (kept for the kinetic-curve plot; the
  classifiers use only the phases every lesion has);
- ``volume_mm3`` = n_voxels x |det(A[:3, :3])| (A the NIfTI affine), ``surface_mm2``
  (marching-cubes mesh), ``surface_to_volume`` (1/mm), ``sphericity`` = pi^(1/3) (6 V)^(2/3) / S
  with V the mesh volume, ``elongation`` = sqrt(lambda_2/lambda_1) and ``flatness`` =
  sqrt(lambda_3/lambda_1) from the eigenvalues lambda_1 >= lambda_2 >= lambda_3 of the covariance
  of the voxel-centre coordinates in mm (the IBSI / pyradiomics definitions).

Feature groups (:data:`FEATURE_GROUPS`): ``kinetic`` (every enhancement feature: wash-in,
washout, SER, curve-type fractions, hot-spot ratios and relative enhancement per phase),
``shape`` (volume, surface, surface-to-volume, sphericity, elongation, flatness) and
``combined`` (both). Each classifier is fitted on each group separately, so the table shows
what kinetics alone, shape alone and both together give: a "kinetic" baseline whose score
comes from shape would otherwise pass unnoticed (on the phantom, lesion size and shape
differ by class, and ``surface_to_volume`` alone can separate a cohort).

Outputs under ``--out``: ``features.csv`` (the per-lesion cache, reused when the settings
match ``features.json``), ``folds.json``, ``predictions.csv`` (experiment
``baseline_kinetics``, models ``<classifier>_<group>``, e.g. ``logreg_kinetic``, split ``test``: the held-out fold),
``baseline_kinetics_table.csv``/``.md`` (from :func:`dce_monai.metrics.results.summarize`,
one row per classifier and feature group), ``baseline_kinetics_feature_auc.csv``/``.md``
(:func:`feature_aucs`: the AUC of every single feature) and ``run.json`` (the arguments).

References:
    ACR BI-RADS MRI lexicon (kinetic curve assessment).
    Hylton NM et al., "Locally advanced breast cancer: MR imaging for prediction of response
    to neoadjuvant chemotherapy", Radiology 2006 (signal enhancement ratio).
    Zwanenburg A et al., "The Image Biomarker Standardization Initiative", Radiology 2020
    (sphericity, elongation, flatness).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import look_up_option

from dce_monai.sequences import PRE, is_post, post_index
from dce_monai.transforms.kinetics import EnhancementMaps
from dce_monai.transforms.utils import (
    check_binary_mask,
    check_same_grid,
    check_spatial_dims,
)

__all__ = [
    "EXPERIMENT",
    "FEATURES_VERSION",
    "FEATURE_GROUPS",
    "LABELS",
    "MODELS",
    "SCALAR_FEATURES",
    "SHAPE_FEATURES",
    "add_cli_arguments",
    "cli_main",
    "extract_features",
    "feature_aucs",
    "feature_group",
    "fit_predict_folds",
    "lesion_features",
    "limit_threads",
    "make_model",
    "model_feature_names",
    "read_feature_table",
    "run_baseline",
    "shape_features",
]

EXPERIMENT = "baseline_kinetics"
#: Bumped whenever the feature definitions change; a cache of another version is recomputed.
FEATURES_VERSION = 1
MODELS = ("logreg", "gboost")
LABELS = ("malignant", "her2", "recurrence_event")
#: Phase-count-independent features (every lesion has them); the classifiers' inputs.
SCALAR_FEATURES = (
    "washin_mean",
    "washin_p90",
    "washout_mean",
    "washout_p90",
    "ser_mean",
    "ser_p90",
    "frac_persistent",
    "frac_plateau",
    "frac_washout",
    "frac_nonenhancing",
    "top_washin",
    "top_washout",
    "top_ser",
    "volume_mm3",
    "surface_mm2",
    "surface_to_volume",
    "sphericity",
    "elongation",
    "flatness",
)
ID_COLUMNS = ("patient_id", "lesion_id", "label_value", "n_post")
#: Size and shape of the lesion mask (no intensity): the ``shape`` group.
SHAPE_FEATURES = ("volume_mm3", "surface_mm2", "surface_to_volume", "sphericity", "elongation", "flatness")
#: Feature groups each classifier is fitted on separately (see :func:`feature_group`).
FEATURE_GROUPS = ("kinetic", "shape", "combined")


def _option(value: str, choices: Sequence[str], name: str) -> str:
    """``look_up_option`` with a message naming the argument."""
    try:
        return str(look_up_option(value, tuple(choices)))
    except ValueError:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.") from None


def _affine_of(mask: Any, affine: Any | None, case: str) -> np.ndarray:
    if affine is not None:
        a = np.asarray(affine, dtype=np.float64)
    elif isinstance(mask, MetaTensor):
        a = np.asarray(mask.affine, dtype=np.float64)
    else:
        raise TypeError(
            f"{case}: lesion features need voxel spacing: pass the mask as a MetaTensor with its affine "
            f"or give affine=, got a bare {type(mask).__name__}."
        )
    if a.shape != (4, 4) or not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise ValueError(f"{case}: affine must be a finite, invertible 4x4 matrix, got {a.tolist()}.")
    return a


def _mask_array(mask: Any, case: str) -> np.ndarray:
    check_spatial_dims(mask, 3, "mask", case)
    if mask.shape[0] != 1:
        raise ValueError(f"{case}: 'mask' must have 1 channel, got shape {tuple(mask.shape)}.")
    check_binary_mask(mask, "mask", case)
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    return m[0].astype(bool)


def shape_features(mask: Any, affine: Any | None = None, case: str = "input") -> dict[str, float]:
    """Volume, surface and shape descriptors of a binary lesion mask, in mm.

    ``volume_mm3`` = n_voxels x |det(A[:3, :3])|; the surface is the marching-cubes mesh of
    the zero-padded mask in physical coordinates (scikit-image), ``surface_to_volume`` =
    S / volume (1/mm), ``sphericity`` = pi^(1/3) (6 V_mesh)^(2/3) / S (1 for a sphere; the
    mesh volume V_mesh, as in IBSI, keeps it <= 1); ``elongation`` = sqrt(l2/l1) and
    ``flatness`` = sqrt(l3/l1) from the eigenvalues l1 >= l2 >= l3 of the covariance of the
    voxel centres in mm. A lesion of one voxel has no extent: its elongation and flatness are
    defined as 1 (no preferred direction).

    Args:
        mask: binary mask (1, X, Y, Z): numpy array, tensor or MetaTensor.
        affine: voxel-to-mm affine (4x4); default the MetaTensor's.
        case: case name used in error messages.

    Returns:
        dict with ``n_voxels``, ``volume_mm3``, ``surface_mm2``, ``surface_to_volume``,
        ``sphericity``, ``elongation``, ``flatness``.

    Raises:
        TypeError: a bare array without ``affine`` (spacing unknown).
        ValueError: not (1, X, Y, Z), not binary, empty, or a singular affine.

    Example:
        >>> m = np.zeros((1, 9, 9, 9), np.uint8); m[0, 2:7, 2:7, 2:7] = 1
        >>> round(shape_features(m, affine=np.diag([2.0, 2.0, 2.0, 1.0]))["volume_mm3"])
        1000

    Reference: Zwanenburg A et al., IBSI, Radiology 2020.
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    m = _mask_array(mask, case)
    a = _affine_of(mask, affine, case)
    lin = a[:3, :3]
    n = int(m.sum())
    volume = n * abs(float(np.linalg.det(lin)))
    padded = np.pad(m.astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(padded, level=0.5)
    verts_mm = (verts - 1.0) @ lin.T  # padding offset removed; translation does not change area/volume
    surface = float(mesh_surface_area(verts_mm, faces))
    tri = verts_mm[faces]
    mesh_volume = abs(float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0)
    sphericity = float(math.pi ** (1 / 3) * (6 * mesh_volume) ** (2 / 3) / surface) if surface > 0 else 0.0
    coords = np.argwhere(m).astype(np.float64) @ lin.T
    if n > 1:
        ev = np.sort(np.clip(np.linalg.eigvalsh(np.cov(coords.T)), 0.0, None))[::-1]
        elong = float(math.sqrt(ev[1] / ev[0])) if ev[0] > 0 else 1.0
        flat = float(math.sqrt(ev[2] / ev[0])) if ev[0] > 0 else 1.0
    else:
        elong = flat = 1.0
    return {
        "n_voxels": float(n),
        "volume_mm3": volume,
        "surface_mm2": surface,
        "surface_to_volume": surface / volume,
        "sphericity": sphericity,
        "elongation": elong,
        "flatness": flat,
    }


def lesion_features(
    image: Any,
    mask: Any,
    phase_names: Sequence[str] | None = None,
    affine: Any | None = None,
    top_fraction: float = 0.1,
    maps: EnhancementMaps | None = None,
    case: str = "input",
) -> dict[str, float]:
    """Kinetic and shape features of one lesion (see the module docstring for the list).

    The kinetic maps come from :class:`~dce_monai.transforms.EnhancementMaps` on the whole
    volume (its noise floor is a percentile of the whole pre-contrast image); statistics are
    taken over the mask. The hot-spot curve is the mean signal of the ``ceil(top_fraction x n)``
    voxels with the highest wash-in; its ratios are computed from that mean curve:
    RE_k = (S_k - S_0)/S_0, washout = (S_late - S_early)/S_early, SER = (S_early - S_0)/(S_late - S_0)
    (0 when S_late <= S_0).

    Args:
        image: (1 + K, X, Y, Z) pre-contrast then K post phases in time order.
        mask: binary lesion mask (1, X, Y, Z) on the same grid.
        phase_names: names of the K post phases (default ``T1post1..K``), used in column names.
        affine: voxel-to-mm affine; default the MetaTensor affine of ``mask`` (or ``image``).
        top_fraction: fraction of lesion voxels in the hot spot, in (0, 1].
        maps: the :class:`EnhancementMaps` to use (default ``EnhancementMaps()``).
        case: case name used in error messages.

    Returns:
        dict of floats: :data:`SCALAR_FEATURES`, ``n_voxels``, ``n_post`` and
        ``re_top_<phase>``/``re_mean_<phase>`` per post phase.

    Raises:
        TypeError: no affine available.
        ValueError: bad ``top_fraction``, ``phase_names`` of the wrong length, grids differ,
            empty or non-binary mask, NaN/Inf voxels (from :class:`EnhancementMaps`).

    Example:
        >>> feats = lesion_features(phases, lesion_mask)  # doctest: +SKIP
        >>> feats["washout_mean"], feats["volume_mm3"]  # doctest: +SKIP
    """
    if not 0.0 < float(top_fraction) <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}.")
    check_spatial_dims(image, 3, "image", case)
    n_post = int(image.shape[0]) - 1
    names = list(phase_names) if phase_names is not None else [f"T1post{k}" for k in range(1, n_post + 1)]
    if len(names) != n_post:
        raise ValueError(f"{case}: phase_names has {len(names)} names for {n_post} post phase(s): {names}.")
    check_same_grid({"image": image, "mask": mask}, case)
    if affine is None and not isinstance(mask, MetaTensor) and isinstance(image, MetaTensor):
        affine = image.affine
    shape = shape_features(mask, affine, case)
    m = torch.as_tensor(_mask_array(mask, case))
    op = maps or EnhancementMaps()
    mp = op(image, case)
    sel = {k: v.as_tensor()[:, m].double() if isinstance(v, MetaTensor) else v[:, m].double() for k, v in mp.items()}
    x = torch.as_tensor(np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image), dtype=torch.float64)
    sig = x[:, m]  # (1 + K, n)
    n = sig.shape[1]
    out: dict[str, float] = {}
    for k in ("washin", "washout", "ser"):
        v = sel[k][0]
        out[f"{k}_mean"] = float(v.mean())
        out[f"{k}_p90"] = float(torch.quantile(v, 0.9))
    ct = sel["curve_type"][0]
    for code, name in ((1, "persistent"), (2, "plateau"), (3, "washout"), (0, "nonenhancing")):
        out[f"frac_{name}"] = float((ct == code).double().mean())
    e = op.early_index(n_post, None, case)
    n_top = max(1, math.ceil(top_fraction * n))
    top = torch.topk(sel["washin"][0], n_top).indices
    for tag, curve in (("top", sig[:, top].mean(1)), ("mean", sig.mean(1))):
        s0 = float(curve[0])
        re = [(float(c) - s0) / s0 if s0 > 0 else 0.0 for c in curve[1:]]
        for nm, r in zip(names, re):
            out[f"re_{tag}_{nm}"] = r
        if tag == "top":
            se, sl = float(curve[e]), float(curve[-1])
            out["top_washin"] = re[e - 1]
            out["top_washout"] = (sl - se) / se if se > 0 else 0.0
            out["top_ser"] = (se - s0) / (sl - s0) if sl - s0 > 0 else 0.0
    out.update(shape)
    out["n_post"] = float(n_post)
    return out


# ----------------------------------------------------------------------------- cohort extraction


def _settings(top_fraction: float, early_phase: int) -> dict[str, Any]:
    return {"features_version": FEATURES_VERSION, "top_fraction": float(top_fraction), "early_phase": int(early_phase)}


def _post_keys(d: Mapping[str, Any]) -> list[str]:
    return sorted((k for k in d if isinstance(k, str) and is_post(k)), key=lambda k: post_index(k) or 0)


def read_feature_table(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``features.csv`` written by :func:`extract_features` (numbers as floats, empty cells as NaN).

    Raises:
        FileNotFoundError: no such file.
        ValueError: no ``lesion_id`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature table {str(path)!r} does not exist.")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "lesion_id" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: not a feature table (no 'lesion_id' column).")
        rows = []
        for r in reader:
            row: dict[str, Any] = {}
            for k, v in r.items():
                if k in ("patient_id", "lesion_id"):
                    row[k] = v
                else:
                    row[k] = float(v) if v not in ("", None) else math.nan
            rows.append(row)
    return rows


def _write_csv_atomic(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def extract_features(
    datalist: Sequence[Mapping[str, Any]],
    cache_csv: str | Path,
    top_fraction: float = 0.1,
    early_phase: int = 1,
    progress: bool = True,
    threads: int = 1,
    register: bool = False,
) -> list[dict[str, Any]]:
    """Features of every lesion of a lesion-level datalist, cached per lesion in ``cache_csv``.

    Images are read with MONAI's ``LoadImaged`` + ``EnsureChannelFirstd`` once per patient.
    Lesions already in the cache (same ``lesion_id``, same settings recorded in the sidecar
    ``<cache>.json``) are not recomputed; a cache of other settings is recomputed whole.
    The mask of a lesion is ``label_map == label_value``.

    Args:
        datalist: from ``Manifest.to_datalist(level="lesion")`` (needs ``patient_id``,
            ``lesion_id``, ``label_value``, ``label_map``, ``T1pre`` and ``T1post<k>`` paths).
        cache_csv: the feature table (created / extended).
        top_fraction: hot-spot fraction (see :func:`lesion_features`).
        early_phase: 1-based early post phase for wash-in/washout/SER.
        progress: print one line per patient.
        threads: torch/BLAS threads while computing (see :func:`limit_threads`).
        register: rigidly register the post phases to T1pre first
            (:class:`~dce_monai.transforms.RegisterPhasesd`; the manifest's ``register_phases``).

    Returns:
        One dict per datalist entry (same order): ``patient_id``, ``lesion_id``,
        ``label_value``, ``n_post`` and the features; acquisition times of the post phases
        (``time_<phase>_s``) when the datalist has them.

    Raises:
        ValueError: a lesion without ``label_value``/``label_map``/phases, or a lesion whose
            ``label_value`` is absent from its label map (each naming the case).
    """
    with limit_threads(threads):
        return _extract(datalist, Path(cache_csv), top_fraction, early_phase, progress, register)


def _extract(datalist: Sequence[Mapping[str, Any]], cache_csv: Path, top_fraction: float, early_phase: int, progress: bool,
             register: bool = False) -> list[dict[str, Any]]:
    from monai.transforms import EnsureChannelFirstd, LoadImaged

    from dce_monai.transforms import RegisterPhasesd

    cache_csv.parent.mkdir(parents=True, exist_ok=True)
    meta_path = cache_csv.with_suffix(".json")
    settings = {**_settings(top_fraction, early_phase), "register_phases": bool(register)}
    cached: dict[str, dict[str, Any]] = {}
    if cache_csv.is_file() and meta_path.is_file():
        try:
            same = json.loads(meta_path.read_text()) == settings
        except json.JSONDecodeError:
            same = False
        if same:
            cached = {r["lesion_id"]: r for r in read_feature_table(cache_csv)}
        elif progress:
            print(f"[baseline-kinetics] {cache_csv} was computed with other settings; recomputing all features")
    maps = EnhancementMaps(early_phase=early_phase)
    by_patient: dict[str, list[Mapping[str, Any]]] = {}
    for d in datalist:
        for key in ("patient_id", "lesion_id"):
            if key not in d:
                raise ValueError(f"datalist entry {dict(d)!r} has no {key!r}; use Manifest.to_datalist(level='lesion').")
        by_patient.setdefault(str(d["patient_id"]), []).append(d)
    rows: dict[str, dict[str, Any]] = {}
    n_new = 0
    for i, (pid, entries) in enumerate(by_patient.items()):
        todo = [d for d in entries if str(d["lesion_id"]) not in cached]
        for d in entries:
            if str(d["lesion_id"]) in cached:
                rows[str(d["lesion_id"])] = cached[str(d["lesion_id"])]
        if not todo:
            continue
        d0 = todo[0]
        posts = _post_keys(d0)
        case = f"patient {pid!r}"
        missing = [k for k in [PRE, "label_map"] if k not in d0] + ([] if posts else ["T1post<k>"])
        if missing:
            raise ValueError(f"{case}: the datalist entry lacks {missing}; available: {sorted(map(str, d0))}.")
        keys = [PRE, *posts, "label_map"]
        loaded: dict[Any, Any] = EnsureChannelFirstd(keys)(LoadImaged(keys, image_only=True)({k: d0[k] for k in keys}))
        if register:
            loaded = RegisterPhasesd(keys=posts)(loaded)
        check_same_grid({k: loaded[k] for k in keys}, case)
        image = torch.cat([loaded[k].as_tensor().float() for k in [PRE, *posts]])
        image = MetaTensor(image, affine=loaded[PRE].affine.clone())
        label_maps = {d0["label_map"]: loaded["label_map"]}  # lesions given by their own masks each have one
        for d in todo:
            lcase = f"patient {pid!r} lesion {d['lesion_id']!r}"
            if d.get("label_value") is None:
                raise ValueError(f"{lcase}: no 'label_value' in the datalist entry; the lesion mask is label_map == label_value.")
            if d["label_map"] not in label_maps:
                lmd = EnsureChannelFirstd(["label_map"])(LoadImaged(["label_map"], image_only=True)({"label_map": d["label_map"]}))
                check_same_grid({PRE: loaded[PRE], "label_map": lmd["label_map"]}, lcase)
                label_maps[d["label_map"]] = lmd["label_map"]
            lm = label_maps[d["label_map"]].as_tensor()
            mask = (lm == int(d["label_value"])).to(torch.uint8)
            if not bool(mask.any()):
                present = sorted(int(v) for v in torch.unique(lm).tolist() if v != 0)
                raise ValueError(f"{lcase}: label_value {d['label_value']!r} does not occur in {d['label_map']}; values present: {present}.")
            feats = lesion_features(image, MetaTensor(mask, affine=loaded["label_map"].affine.clone()), posts, None, top_fraction, maps, lcase)
            row: dict[str, Any] = {"patient_id": pid, "lesion_id": str(d["lesion_id"]), "label_value": int(d["label_value"]), **feats}
            times = d.get("acquisition_times_s") or {}
            for k in posts:
                if k in times and PRE in times:
                    row[f"time_{k}_s"] = float(times[k]) - float(times[PRE])
            rows[row["lesion_id"]] = row
            n_new += 1
        if progress:
            print(f"[baseline-kinetics] features {i + 1}/{len(by_patient)} patients ({pid}: {len(todo)} lesion(s))", flush=True)
    out = [rows[str(d["lesion_id"])] for d in datalist]
    if n_new or not cache_csv.is_file():
        all_rows = list({**cached, **rows}.values())
        cols: list[str] = list(ID_COLUMNS)
        for r in all_rows:
            cols += [c for c in r if c not in cols]
        _write_csv_atomic(cache_csv, all_rows, cols)
        meta_path.write_text(json.dumps(settings, indent=1))
    if progress:
        print(f"[baseline-kinetics] {n_new} lesion(s) computed, {len(out) - n_new} from the cache {cache_csv}")
    return out


# ----------------------------------------------------------------------------- models


def make_model(name: str, seed: int = 0) -> Any:
    """A fresh scikit-learn classifier: ``logreg`` (StandardScaler + LogisticRegression) or ``gboost``.

    ``gboost`` is ``HistGradientBoostingClassifier`` with small-data settings (shallow trees,
    at least 5 samples per leaf); scale-invariant, so no scaler.

    Raises:
        ValueError: unknown name.

    Example:
        >>> make_model("logreg").steps[-1][0]
        'logisticregression'
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = _option(name, MODELS, "model")
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.1, max_iter=100, min_samples_leaf=5, random_state=seed)


def model_feature_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The classifier inputs: :data:`SCALAR_FEATURES` plus hot-spot RE of the phases all lesions have."""
    if not rows:
        raise ValueError("no feature rows: the datalist has no lesion.")
    common = None
    for r in rows:
        s = {c for c in r if c.startswith("re_top_") and isinstance(r[c], float) and math.isfinite(r[c])}
        common = s if common is None else common & s
    phases = sorted(common or (), key=lambda c: post_index(c[len("re_top_") :]) or 0)
    return list(SCALAR_FEATURES) + phases


def feature_group(names: Sequence[str], group: str) -> list[str]:
    """The classifier inputs of one feature group, in the order of ``names``.

    ``shape``: :data:`SHAPE_FEATURES`; ``kinetic``: every other feature (enhancement ratios,
    curve-type fractions, hot-spot relative enhancement per phase); ``combined``: all.

    Raises:
        ValueError: unknown group, or a group with no feature in ``names``.

    Example:
        >>> feature_group(["washin_mean", "volume_mm3", "re_top_T1post1"], "kinetic")
        ['washin_mean', 're_top_T1post1']
    """
    group = _option(group, FEATURE_GROUPS, "group")
    out = [n for n in names if group == "combined" or (n in SHAPE_FEATURES) == (group == "shape")]
    if not out:
        raise ValueError(f"feature group {group!r} has no feature among {list(names)}.")
    return out


def feature_aucs(rows: Sequence[Mapping[str, Any]], labels: Sequence[int], names: Sequence[str]) -> list[dict[str, Any]]:
    """ROC AUC of every single feature used as a score (higher value = positive class), over all lesions.

    No model is fitted, so no fold is needed; AUC < 0.5 means that lower values go with the
    positive class (``1 - AUC`` is then the separation). Shows which features carry a
    baseline's score, e.g. a shape feature alone at AUC 1.0.

    Returns:
        One dict per feature, sorted by ``separation = |AUC - 0.5|`` (largest first): ``feature``,
        ``group`` (``kinetic`` or ``shape``), ``auc``, ``separation``, ``n``.

    Raises:
        ValueError: lengths differ, one class only, or a missing/non-finite feature (naming the lesion).
    """
    from dce_monai.metrics.stats import roc_auc

    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} feature rows but {len(labels)} labels.")
    y = [int(v) for v in labels]
    if len(set(y)) < 2:
        raise ValueError(f"single-feature AUCs need both classes; labels hold only {sorted(set(y))}.")
    out = []
    for c in names:
        vals = []
        for r in rows:
            v = r.get(c)
            if v is None or not math.isfinite(float(v)):
                raise ValueError(f"patient {r['patient_id']!r} lesion {r['lesion_id']!r}: feature {c!r} is missing or not finite ({v!r}).")
            vals.append(float(v))
        auc = roc_auc(y, vals)
        out.append({"feature": c, "group": "shape" if c in SHAPE_FEATURES else "kinetic", "auc": auc, "separation": abs(auc - 0.5), "n": len(y)})
    return sorted(out, key=lambda r: (-r["separation"], r["feature"]))


def fit_predict_folds(
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[int],
    folds: Sequence[Sequence[str]],
    models: Sequence[str] = MODELS,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
    threads: int = 1,
    group: str | None = None,
) -> list[dict[str, Any]]:
    """Cross-validated per-lesion probabilities: for fold f, fit on the other folds' patients.

    Args:
        rows: feature rows (``patient_id``, ``lesion_id`` and the features).
        labels: 0/1 target per row.
        folds: lists of patient ids; every row's patient must be in exactly one.
        models: names from :data:`MODELS`.
        seed: seed of the gradient-boosting model.
        feature_names: inputs (default :func:`model_feature_names`).
        threads: OpenMP/BLAS threads while fitting (see :func:`limit_threads`).
        group: feature-group name appended to the model column (``logreg_kinetic``); None: the
            classifier name alone.

    Returns:
        Prediction rows in the :mod:`dce_monai.metrics.results` format (split ``test``: each lesion predicted by the model of the fold that holds it out).

    Raises:
        ValueError: lengths differ, a patient in no fold, a missing/non-finite feature, or a
            training fold holding one class only (naming fold and lesion/patient).
    """
    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} feature rows but {len(labels)} labels.")
    models = [_option(m, MODELS, "model") for m in models]
    names = list(feature_names) if feature_names is not None else model_feature_names(rows)
    fold_of = {pid: f for f, ids in enumerate(folds) for pid in ids}
    lost = sorted({str(r["patient_id"]) for r in rows if str(r["patient_id"]) not in fold_of})
    if lost:
        raise ValueError(f"patient(s) {lost[:5]} are in no fold; the folds belong to another cohort or label.")
    x = np.empty((len(rows), len(names)))
    for i, r in enumerate(rows):
        for j, c in enumerate(names):
            v = r.get(c)
            if v is None or not math.isfinite(float(v)):
                raise ValueError(f"patient {r['patient_id']!r} lesion {r['lesion_id']!r}: feature {c!r} is missing or not finite ({v!r}).")
            x[i, j] = float(v)
    y = np.asarray([int(v) for v in labels])
    fid = np.asarray([fold_of[str(r["patient_id"])] for r in rows])
    with limit_threads(threads):
        return _cross_validate(rows, x, y, fid, len(folds), models, seed, "" if group is None else f"_{group}")


def _cross_validate(rows: Sequence[Mapping[str, Any]], x: np.ndarray, y: np.ndarray, fid: np.ndarray, k: int, models: Sequence[str], seed: int,
                    suffix: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in range(k):
        test, train = fid == f, fid != f
        if not test.any():
            continue
        if len(np.unique(y[train])) < 2:
            raise ValueError(f"fold {f}: the training patients hold one class only ({np.unique(y[train]).tolist()}); use a smaller k.")
        for name in models:
            model = make_model(name, seed)
            model.fit(x[train], y[train])
            p = model.predict_proba(x[test])[:, 1]
            for j, prob in zip(np.flatnonzero(test).tolist(), p):
                out.append({"experiment": EXPERIMENT, "model": name + suffix, "fold": f, "split": "test", "patient_id": str(rows[j]["patient_id"]),
                            "lesion_id": str(rows[j]["lesion_id"]), "label": int(y[j]), "prob": float(np.clip(prob, 0.0, 1.0))})
    return out


# ----------------------------------------------------------------------------- workflow


@contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Run a block with at most ``n`` BLAS/OpenMP and torch intra-op threads, restoring them after.

    Small per-lesion arrays and small tree ensembles gain nothing from threads, and on a
    shared machine OpenMP's busy-waiting threads make them hundreds of times slower
    (gradient boosting on 40 lesions: 130 s with the default threads on 2 busy cores, 0.2 s with one).

    Raises:
        ValueError: ``n`` < 1.
    """
    from threadpoolctl import threadpool_limits

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}.")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def run_baseline(
    manifest: str | Path,
    out_dir: str | Path,
    k: int = 5,
    seed: int = 0,
    label: str | None = None,
    folds_file: str | Path | None = None,
    n_boot: int = 1000,
    top_fraction: float = 0.1,
    progress: bool = True,
    threads: int = 1,
    skip_invalid: bool = False,
) -> dict[str, Path]:
    """Run the kinetic baseline end to end (features, folds, both models, table).

    Args:
        manifest: cohort manifest (JSON).
        out_dir: output folder (created).
        k: number of patient-wise folds (ignored with ``folds_file``).
        seed: fold and model seed (same ``k``/``seed`` as the deep workflows: same folds).
        label: the target (default: the manifest's target); lesions whose patient lacks it are
            skipped and listed.
        folds_file: folds JSON (from ``dce-monai folds``) instead of computing them.
        n_boot: bootstrap resamples of the AUC CI.
        top_fraction: hot-spot fraction of the lesion voxels.
        progress: print progress lines.
        threads: BLAS/OpenMP/torch threads while computing (see :func:`limit_threads`).
        skip_invalid: continue with the patients that pass validation (see
            :func:`dce_monai.data.validate.require_valid`) instead of stopping.

    Returns:
        Paths: ``features``, ``folds``, ``predictions``, ``table_csv``, ``table_md``,
        ``feature_auc_csv``, ``feature_auc_md``, ``run``.

    Raises:
        ValueError: a label the manifest does not have, bad k, too few patients per class,
            unusable folds or a fold with one class.
        FileNotFoundError: manifest or folds file missing.

    Example:
        >>> run_baseline("cohort/manifest.json", "runs/baseline", k=5)["table_md"]  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    with limit_threads(threads):
        return _run(manifest, Path(out_dir), k, seed, label, folds_file, n_boot, top_fraction, progress, t0, skip_invalid)


def _run(manifest: str | Path, out: Path, k: int, seed: int, label: str | None, folds_file: str | Path | None, n_boot: int, top_fraction: float, progress: bool, t0: float,
         skip_invalid: bool = False) -> dict[str, Path]:
    from dce_monai.data.folds import check_fold_classes, patient_folds, read_folds, write_folds
    from dce_monai.data.validate import require_valid
    from dce_monai.metrics.results import summarize, write_predictions, write_table

    out.mkdir(parents=True, exist_ok=True)
    m = require_valid(manifest, skip_invalid=skip_invalid)  # every problem listed before any work
    report: dict[str, Any] = {}
    label = m.target if label is None else label
    dl = m.to_datalist(level="lesion", label=label, skip_missing_labels=True, report=report)
    if report.get("skipped") and progress:
        print(f"[baseline-kinetics] {len(report['skipped'])} lesion(s) without label {label!r} left out: {report['skipped']}")
    if not dl:
        raise ValueError(f"{manifest}: no lesion has the label {label!r}.")
    if folds_file is not None:
        folds = read_folds(folds_file)
    else:
        folds = patient_folds(dl, k=k, seed=seed)
    check_fold_classes(dl, folds, source=str(folds_file or out / "folds.json"))
    folds_path = write_folds(folds, out / "folds.json", seed=seed, label=label, manifest=str(manifest))
    rows = extract_features(dl, out / "features.csv", top_fraction=top_fraction, progress=progress, register=m.register_phases)
    names = model_feature_names(rows)
    labels = [int(d["label"]) for d in dl]
    groups = {g: feature_group(names, g) for g in FEATURE_GROUPS}
    preds = [p for g in FEATURE_GROUPS for p in fit_predict_folds(rows, labels, folds, MODELS, seed, groups[g], group=g)]
    pred_path = write_predictions(out / "predictions.csv", preds)
    table = summarize(preds, by=("experiment", "model", "split"), n_boot=n_boot, seed=seed)
    for r in table:
        g = str(r["model"]).rsplit("_", 1)[1]
        r.update({"features": g, "n_features": len(groups[g])})
    cols = ["experiment", "model", "features", "n_features", "split"] + [c for c in table[0] if c not in ("experiment", "model", "features", "n_features", "split")]
    table_csv, table_md = write_table(table, out / "baseline_kinetics_table", columns=cols)
    table_md.write_text(
        "Kinetic baseline: each classifier on kinetic features only, shape features only, and both (`features`); "
        "`auc` pools the held-out lesions of all folds, `auc_fold_mean`/`auc_fold_sd` summarise the per-fold AUCs; "
        "`collapsed_folds` counts folds whose scores collapse.\n\n" + table_md.read_text())
    fa = feature_aucs(rows, labels, names)
    fa_csv, fa_md = write_table(fa, out / "baseline_kinetics_feature_auc")
    fa_md.write_text("Single-feature AUCs (the raw feature as the score, higher = positive; all lesions, no model fitted; "
                     "AUC < 0.5: lower values go with the positive class):\n\n" + fa_md.read_text())
    run_path = out / "run.json"
    run_path.write_text(json.dumps({
        "command": "baseline-kinetics", "manifest": str(manifest), "k": len(folds), "seed": seed, "label": label,
        "folds_file": str(folds_file) if folds_file else None, "n_boot": n_boot, "top_fraction": top_fraction,
        "features": names, "feature_groups": groups, "n_lesions": len(dl), "n_positive": int(sum(int(d["label"]) for d in dl)),
        "folds_sha": hashlib.sha256(json.dumps(folds).encode()).hexdigest()[:16], "seconds": round(time.perf_counter() - t0, 2),
    }, indent=1))
    if progress:
        for r in table:
            print(f"[baseline-kinetics] {r['model']}: AUC {r['auc']:.3f} [{r['auc_ci_low']:.3f}, {r['auc_ci_high']:.3f}], n={r['n']}"
                  + (f" (collapsed: {r['collapse']})" if r["collapsed_folds"] else ""))
        top = ", ".join(f"{r['feature']} {r['auc']:.3f}" for r in fa[:3])
        print(f"[baseline-kinetics] strongest single features (AUC): {top}")
    return {"features": out / "features.csv", "folds": folds_path, "predictions": pred_path, "table_csv": table_csv, "table_md": table_md,
            "feature_auc_csv": fa_csv, "feature_auc_md": fa_md, "run": run_path}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dce-monai baseline-kinetics MANIFEST --out DIR [--k 5] [--seed 0] [--label malignant] [--folds FILE]``."""
    parser.add_argument("manifest", help="cohort manifest (JSON)")
    parser.add_argument("--out", required=True, help="output folder (features.csv, predictions.csv, baseline_kinetics_table.md)")
    parser.add_argument("--k", type=int, default=5, help="patient-wise folds (default 5; same k and seed as the deep models)")
    parser.add_argument("--seed", type=int, default=0, help="fold and model seed (default 0)")
    parser.add_argument("--label", default=None, help="target (default: the manifest's target, else malignant)")
    parser.add_argument("--folds", default=None, help="folds JSON (dce-monai folds) instead of --k/--seed")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the AUC CI (default 1000)")
    parser.add_argument("--skip-invalid", action="store_true", help="continue with the valid patients when validation finds problems")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads (default 1: fastest for small data)")


def cli_main(args: argparse.Namespace) -> int:
    """Run ``dce-monai baseline-kinetics``; print the table; return 0."""
    paths = run_baseline(args.manifest, args.out, k=args.k, seed=args.seed, label=args.label, folds_file=args.folds, n_boot=args.n_boot, threads=args.threads,
                         skip_invalid=args.skip_invalid)
    print(Path(paths["table_md"]).read_text())
    return 0
