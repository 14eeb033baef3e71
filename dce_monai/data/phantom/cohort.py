"""One simulated patient and a written cohort: simulation, outcomes, NIfTI files and manifest.

:func:`simulate_patient` runs the four steps of the phantom (anatomy, lesions, contrast
kinetics, acquisition) for one patient in memory and draws its outcomes (:func:`_outcomes`);
:func:`write_case` writes one patient as NIfTI files and returns its manifest entry;
:func:`generate_cohort` simulates a seeded cohort (optionally in several processes) and
writes ``manifest.json``.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import ndimage

from dce_monai.data.io import write_nifti
from dce_monai.sequences import T2

from .anatomy import _anatomy, _place_lesions
from .config import (
    AIR,
    BLOOD,
    FIBRO,
    LESION,
    SKIN,
    PhantomCase,
    PhantomConfig,
    _coords,
    _geometry,
    _quantile_sample,
    informative_channels,
    load_reference_csv,
)
from .physics import (
    _CURVE_MIX,
    _PD,
    _T1,
    _T2,
    _TE_T2_MS,
    _TISSUE_KINETICS,
    _bias_field,
    _move_phases,
    _rician,
    _rician_phases,
    curve_type_from_signal,
    empirical_concentration,
    parker_aif,
    spgr_signal,
)

_HER2_NOISE_SD = 1.6  # SD of the unexplained part of the HER2 latent


def simulate_patient(
    seed: int | np.random.SeedSequence,
    config: PhantomConfig | None = None,
    patient_id: str = "PH0000",
    shortcut: float = 0.0,
) -> PhantomCase:
    """Simulate one patient in memory (no I/O).

    Args:
        seed: integer seed or ``numpy.random.SeedSequence``; the same seed gives identical arrays.
        config: simulation parameters (default :class:`PhantomConfig` ``()``, demo size).
        patient_id: identifier written into lesion ids (``<pid>-L<k>``).
        shortcut: strength q in [0, 1] of the label-correlated artefact:
            P(artefact | malignant patient) = q, P(artefact | benign patient) = 0.

    Returns:
        A :class:`PhantomCase`.

    Raises:
        ValueError: if ``shortcut`` is outside [0, 1].
    """
    if not 0.0 <= float(shortcut) <= 1.0:
        raise ValueError(f"shortcut must be in [0, 1], got {shortcut!r}.")
    cfg = config or PhantomConfig()
    rng = np.random.default_rng(seed)
    shape, spacing = _geometry(cfg, rng)
    tissue, breast, info = _anatomy(rng, shape, spacing)
    n_les = int(rng.integers(cfg.lesions[0], cfg.lesions[1] + 1))
    mode = cfg.signal or cfg.difficulty
    label_map, lesions = _place_lesions(rng, tissue, breast, spacing, n_les, cfg.malignant_fraction, cfg.quantiles, mode=mode)
    tissue[label_map > 0] = LESION

    n_post = cfg.n_post
    if cfg.sample_n_post:
        n_post = int(np.clip(round(_quantile_sample(rng, "n_times", cfg.quantiles)) - 1, 2, 7))
    times = cfg.times_for(n_post)
    t_min = np.array(list(times.values())) / 60.0
    n_t = len(t_min)
    conc = np.zeros((n_t,) + shape, np.float32)
    for cls, (a, al, be) in _TISSUE_KINETICS.items():
        m = tissue == cls
        conc[:, m] = empirical_concentration(t_min, a, al, be)[:, None]
    # background parenchymal enhancement varies per patient
    conc[:, tissue == FIBRO] *= rng.uniform(0.5, 1.8)
    conc[:, tissue == BLOOD] = parker_aif(t_min)[:, None]

    # latent tumour biology: stromal (peritumoral) reaction drives outcomes and is visible
    stromal = float(rng.normal())
    t1_map = _T1[tissue].astype(np.float32)
    malignant_any = int(any(les["malignant"] for les in lesions))
    for les in lesions:
        m = label_map == les["label_value"]
        k = les["kinetics"]
        base = empirical_concentration(t_min, k["A_mM"], k["alpha_per_min"], k["beta_per_min"])
        if "late_washout_per_min" in k:
            # planted washout: identical to the benign curve up to T1post2, then exp(-w (t - t_2))
            base = base * np.exp(-k["late_washout_per_min"] * np.clip(t_min - t_min[2], 0.0, None))
        dist = ndimage.distance_transform_edt(m, sampling=spacing)[m]
        depth = dist / max(dist.max(), 1e-6)
        scale = np.ones_like(depth)
        if k["rim"]:
            scale = 1.25 - 0.75 * depth  # bright rim, darker (necrotic) core
        scale = scale * np.clip(1 + k["heterogeneity"] * rng.normal(size=depth.shape), 0.2, None)
        conc[:, m] = base[:, None] * scale[None, :].astype(np.float32)
        if les["malignant"] and cfg.signal is None:
            # peritumoral shell (3-6 mm) enhancing with the patient's stromal activity
            shell_mm = rng.uniform(3, 6)
            out = ndimage.distance_transform_edt(~m, sampling=spacing)
            shell = (out > 0) & (out <= shell_mm) & (tissue != AIR) & (label_map == 0) & breast.astype(bool)
            strength = 0.04 * max(stromal + 1.0, 0.0)
            conc[:, shell] += empirical_concentration(t_min, strength, 1.0, 0.02)[:, None]
        les["stromal"] = stromal

    m0 = _PD[tissue].astype(np.float32)
    t1_sig = np.empty(conc.shape, np.float32)  # (T, X, Y, Z); phase by phase to bound float64 temporaries
    for p in range(n_t):
        t1_sig[p] = spgr_signal(m0, t1_map, conc[p])
    t2_map = _T2[tissue]  # float64, as the T2 signal has always been computed
    for les in lesions:
        if "t2_ms" in les["kinetics"]:  # planted T2 difference (signal="t2")
            t2_map[label_map == les["label_value"]] = les["kinetics"]["t2_ms"]
    t2_sig = (_PD[tissue] * np.exp(-_TE_T2_MS / t2_map)).astype(np.float32)
    if cfg.difficulty == "realistic":
        # partial volume: the point-spread of the acquisition mixes each voxel with its
        # neighbours (Gaussian, SD half a voxel per axis), blurring lesion margins and thin spicules
        for p in range(n_t):
            t1_sig[p] = ndimage.gaussian_filter(t1_sig[p], 0.5, mode="nearest")
        t2_sig = ndimage.gaussian_filter(t2_sig, 0.5, mode="nearest")

    shortcut_present = bool(malignant_any and rng.random() < shortcut)
    if shortcut_present and cfg.shortcut_site == "near_lesion":
        marker = _skin_marker(tissue, label_map, lesions, spacing)
        t1_sig[:, marker] = t1_sig.max() * 0.8
        t2_sig[marker] = t2_sig.max() * 0.8
    elif shortcut_present:
        # a bright blob in the right lung region, present in every sequence
        x, y, z = _coords(shape, spacing)
        fx, fy = (n * s for n, s in zip(shape[:2], spacing[:2]))
        blob = ((x - 0.2 * fx) ** 2 + (y - info["y_chest_mm"] + 0.22 * fy) ** 2 + z**2) <= (0.04 * fx) ** 2
        blob = np.broadcast_to(blob, shape)
        t1_sig[:, blob] = t1_sig.max() * 0.8
        t2_sig[blob] = t2_sig.max() * 0.8

    body = tissue != AIR
    bias = _bias_field(rng, shape, spacing, body, cfg.bias_strength)
    motion_truth: dict[str, tuple[float, float, float]] = {}
    if cfg.motion_mm > 0:
        motion_truth = _move_phases(rng, t1_sig, list(times), spacing, cfg.motion_mm)

    # noise-free mean curves for tests and docs
    les_curves = {les["label_value"]: t1_sig[:, label_map == les["label_value"]].mean(1) for les in lesions}
    heart_curve = t1_sig[:, tissue == BLOOD].mean(1) if (tissue == BLOOD).any() else np.zeros(n_t)
    breast_curve = t1_sig[:, tissue == FIBRO].mean(1) if (tissue == FIBRO).any() else np.zeros(n_t)

    # acquisition: bias, Rician noise, one uint16 scale for all T1 phases
    ref = float(np.median(t1_sig[0][tissue == FIBRO])) if (tissue == FIBRO).any() else float(t1_sig[0][body].mean())
    snr = cfg.snr * (rng.uniform(0.6, 1.0) if cfg.difficulty == "realistic" else 1.0)  # realistic: scanner/coil spread
    sigma = ref / snr
    t1_obs = t1_sig * bias[None]
    del t1_sig, conc  # bound the peak memory of the noise step (the ``full`` preset's large grids)
    t1_obs = _rician_phases(rng, t1_obs, sigma)
    scale = cfg.storage_max / max(float(t1_obs.max()), 1e-12)
    t2_ref = float(np.median(t2_sig[tissue == FIBRO])) if (tissue == FIBRO).any() else 1.0
    t2_obs = t2_sig * bias
    s2 = t2_ref / snr
    t2_obs = _rician(rng, t2_obs, s2)
    t2_scale = cfg.storage_max / max(float(t2_obs.max()), 1e-12)

    images: dict[str, np.ndarray] = {T2: np.round(t2_obs * t2_scale).astype(np.uint16)}
    for p, name in enumerate(times):
        images[name] = np.round(t1_obs[p] * scale).astype(np.uint16)

    les_out = []
    for les in lesions:
        curve = les_curves[les["label_value"]] * scale
        les_out.append(
            {
                "lesion_id": f"{patient_id}-L{les['label_value']}",
                **{k: v for k, v in les.items() if k != "stromal"},
                "curve_type": curve_type_from_signal(curve),
                "mean_signal": [float(v) for v in curve],
            }
        )
    labels = _outcomes(rng, lesions, stromal, cfg.her2_prevalence)
    labels["malignant"] = malignant_any

    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, spacing)]
    return PhantomCase(
        patient_id=patient_id,
        images=images,
        label_map=label_map,
        breast_mask=breast,
        bias_field=bias,
        tissue_map=tissue,
        affine=affine,
        spacing_mm=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        times_s=dict(times),
        lesions=les_out,
        labels=labels,
        shortcut_present=shortcut_present,
        heart_signal=heart_curve * scale,
        breast_signal=breast_curve * scale,
        field_strength_t=float(cfg.field_strength_t),
        latent={"stromal": stromal},
        motion_shift_mm=motion_truth,
    )


def _skin_marker(tissue: np.ndarray, label_map: np.ndarray, lesions: list[dict[str, Any]], spacing: tuple[float, float, float],
                 radius_mm: float = 5.0) -> np.ndarray:
    """Voxels of the ``near_lesion`` shortcut: a ball on the skin next to every malignant lesion.

    For each malignant lesion the anchor is the centre of its label's bounding box (where a
    lesion-centred crop is centred); the ball (``radius_mm``) is centred on the skin voxel
    nearest to it (Euclidean distance in mm) and excludes every lesion voxel, so it is outside
    the lesion mask but within about a breast's half-width of the lesion: inside the seed 2
    bundle's lesion-centred field of view (64x64x32 voxels) at the demo and tiny grids. It
    mimics a skin marker (an oil capsule placed over a palpable finding) and draws no random
    number, so the rest of the patient is the same with or without it.
    """
    sp = np.asarray(spacing, np.float64)
    skin = np.argwhere(tissue == SKIN)
    marker = np.zeros(tissue.shape, bool)
    if len(skin) == 0:
        return marker
    x, y, z = (np.arange(n) * s for n, s in zip(tissue.shape, spacing))
    for les in lesions:
        if not les["malignant"]:
            continue
        idx = np.argwhere(label_map == les["label_value"])
        anchor = (idx.min(0) + idx.max(0)) / 2.0 * sp
        centre = skin[np.argmin((((skin * sp) - anchor) ** 2).sum(1))] * sp
        marker |= ((x[:, None, None] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2
                   + (z[None, None, :] - centre[2]) ** 2) <= radius_mm**2
    return marker & (label_map == 0)


def _outcomes(rng: np.random.Generator, lesions: list[dict[str, Any]], stromal: float, her2_prevalence: float) -> dict[str, Any]:
    """HER2 and 5-year recurrence from latent properties of the largest malignant lesion.

    HER2 is positive when ``stromal + 0.6 washout + e`` (e ~ N(0, 1.6^2), stromal ~ N(0, 1),
    washout ~ Bernoulli(0.55)) exceeds its ``1 - her2_prevalence`` quantile under the normal
    approximation (mean 0.33, SD sqrt(3.65)). The noise SD puts the ideal-feature AUC near
    0.77 (0.86 with SD 1, above the 0.65-0.8 target). Benign-only patients have no tumour receptor
    status (``her2`` None) and no recurrence (event 0, censored at 5 years).
    """
    mal = [les for les in lesions if les["malignant"]]
    if not mal:
        return {"her2": None, "recurrence_event": 0, "recurrence_days": 1825.0}
    big = max(mal, key=lambda les: les["volume_mm3"])
    washout = 1.0 if big["archetype"] == "washout" else 0.0
    size_z = (math.log(big["volume_mm3"] + 1) - 8.0) / 1.2
    p_w = _CURVE_MIX[1]["washout"]
    sd = math.sqrt(1.0 + _HER2_NOISE_SD**2 + 0.36 * p_w * (1 - p_w))
    threshold = 0.6 * p_w + sd * NormalDist().inv_cdf(1 - her2_prevalence)
    her2_logit = -threshold + 1.0 * stromal + 0.6 * washout + rng.normal(0, _HER2_NOISE_SD)
    her2 = int(her2_logit > 0)
    rec_logit = -1.2 + 0.7 * size_z + 0.6 * stromal + 0.4 * her2 + rng.normal(0, 1.0)
    event = int(rec_logit > 0)
    days = float(np.clip(rng.exponential(700), 60, 1824)) if event else 1825.0
    return {"her2": her2, "recurrence_event": event, "recurrence_days": round(days, 1)}


# ----------------------------------------------------------------------------- writing


def write_case(case: PhantomCase, out_dir: str | Path) -> dict[str, Any]:
    """Write a case as NIfTI files under ``out_dir/<pid>/``; return its manifest patient entry.

    Paths in the entry are relative to ``out_dir`` (where the manifest goes).
    """
    out = Path(out_dir)
    pid = case.patient_id
    d = out / pid
    d.mkdir(parents=True, exist_ok=True)
    seqs: dict[str, str] = {}
    for name, arr in case.images.items():
        rel = f"{pid}/{pid}_{name}.nii.gz"
        write_nifti(arr, case.affine, out / rel)
        seqs[name] = rel
    extra: dict[str, np.ndarray] = {
        "label_map": case.label_map.astype(np.uint8),
        "breast_mask": case.breast_mask.astype(np.uint8),
        "bias_field": case.bias_field.astype(np.float32),
    }
    exam: dict[str, Any] = {
        "sequences": seqs,
        "acquisition_times_s": {k: float(v) for k, v in case.times_s.items()},
    }
    for key, arr in extra.items():
        rel = f"{pid}/{pid}_{key}.nii.gz"
        write_nifti(arr, case.affine, out / rel)
        exam[key] = rel
    exam.update(
        spacing_mm=list(case.spacing_mm),
        field_strength_t=float(case.field_strength_t),
        fat_suppression=False,
        view="axial",
        scanner="dce_monai phantom",
    )
    return {
        "patient_id": pid,
        "exam": exam,
        "labels": {k: case.labels[k] for k in ("malignant", "her2", "recurrence_event", "recurrence_days")},
        "lesions": [
            {
                "lesion_id": les["lesion_id"],
                "label_value": int(les["label_value"]),
                "mask_source": "phantom",
                "malignant": int(les["malignant"]),
                "curve_type": les["curve_type"],
                "volume_mm3": round(float(les["volume_mm3"]), 2),
            }
            for les in case.lesions
        ],
    }


def _patient_task(args: tuple[Any, ...]) -> dict[str, Any]:
    seed_seq, cfg, pid, shortcut, cohort, out_dir = args
    case = simulate_patient(seed_seq, cfg, patient_id=pid, shortcut=shortcut)
    entry = write_case(case, out_dir)
    if cohort is not None:
        entry = {"patient_id": entry["patient_id"], "cohort": cohort, **{k: v for k, v in entry.items() if k != "patient_id"}}
    entry["_shortcut_present"] = case.shortcut_present
    return entry


def generate_cohort(
    out_dir: str | Path,
    n_patients: int,
    seed: int = 0,
    size: str = "demo",
    shortcut_train: float | None = None,
    shortcut_test: float | None = None,
    test_fraction: float = 0.3,
    workers: int = 1,
    reference_csv: str | Path | None = None,
    progress: bool = True,
    config: PhantomConfig | None = None,
) -> Path:
    """Simulate ``n_patients`` and write NIfTI files plus ``manifest.json`` into ``out_dir``.

    Patient ``i`` is simulated from ``SeedSequence(seed).spawn(...)[i]``, so it is the same
    whatever ``n_patients`` and ``workers`` are. When either shortcut strength is given, the
    first ``round(n * (1 - test_fraction))`` patients form the ``train`` cohort (artefact
    strength ``shortcut_train``) and the rest the ``test`` cohort (``shortcut_test``).

    Args:
        out_dir: output folder (created).
        n_patients: number of patients (>= 1).
        seed: cohort seed.
        size: ``"demo"`` or ``"full"`` (ignored when ``config`` is given).
        shortcut_train: artefact strength for the training cohort, in [0, 1].
        shortcut_test: artefact strength for the test cohort, in [0, 1].
        test_fraction: fraction of patients in the test cohort when a shortcut is set.
        workers: processes used (results identical for any value).
        reference_csv: cohort CSV (BreastDCEDL metadata layout) read now to sample geometry,
            protocol, tumour volume and HER2 prevalence from, instead of the embedded
            :data:`REFERENCE_QUANTILES`; see :func:`load_reference_csv`.
        progress: show a tqdm progress bar.
        config: full :class:`PhantomConfig` (overrides ``size``).

    Returns:
        Path of the written manifest.

    Raises:
        ValueError: for a non-positive ``n_patients``/``workers``, out-of-range fractions or
            an unusable ``reference_csv``.
        FileNotFoundError: if ``reference_csv`` does not exist.

    Example:
        >>> manifest = generate_cohort("cohort", 20, seed=0, workers=2)  # doctest: +SKIP
    """
    if isinstance(n_patients, bool) or not isinstance(n_patients, int) or n_patients < 1:
        raise ValueError(f"n_patients must be an integer >= 1, got {n_patients!r}.")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    for name, v in (("shortcut_train", shortcut_train), ("shortcut_test", shortcut_test)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v!r}.")
    cfg = config or PhantomConfig(size=size)
    if reference_csv is not None:
        table, her2 = load_reference_csv(reference_csv)
        cfg = replace(cfg, reference_quantiles=table, her2_prevalence=her2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seqs = np.random.SeedSequence(seed).spawn(n_patients)
    split = shortcut_train is not None or shortcut_test is not None
    n_train = round(n_patients * (1 - test_fraction)) if split else n_patients
    tasks = []
    for i in range(n_patients):
        in_train = i < n_train
        q = (shortcut_train if in_train else shortcut_test) or 0.0
        cohort = ("train" if in_train else "test") if split else None
        tasks.append((seqs[i], cfg, f"PH{i:04d}", q, cohort, out))
    from tqdm.auto import tqdm

    bar = tqdm(total=n_patients, desc="phantom", unit="patient", disable=not progress)
    entries: list[dict[str, Any]] = []
    if workers == 1:
        for t in tasks:
            entries.append(_patient_task(t))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for e in ex.map(_patient_task, tasks):
                entries.append(e)
                bar.update()
    bar.close()
    shortcut_flags = {e["patient_id"]: e.pop("_shortcut_present") for e in entries}
    gen = {
        "program": "dce_monai.data.phantom",
        "seed": seed,
        "n_patients": n_patients,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "shortcut_train": shortcut_train,
        "shortcut_test": shortcut_test,
        "test_fraction": test_fraction if split else None,
        "reference_csv": str(reference_csv) if reference_csv is not None else None,
        "shortcut_present": shortcut_flags,
    }
    description = "Synthetic breast DCE-MRI cohort from dce_monai.data.phantom."
    if cfg.difficulty != "easy":
        description += f" Difficulty {cfg.difficulty!r}."
    if cfg.signal is not None:
        chans = informative_channels(cfg)
        gen["informative_channels"] = chans["informative"]
        gen["uninformative_channels"] = chans["uninformative"]
        description += (
            f" Planted signal {cfg.signal!r}: malignant and benign lesions differ only in channels "
            f"{', '.join(chans['informative'])}; channels {', '.join(chans['uninformative'])} carry no class signal."
        )
    if split and cfg.shortcut_site != "lung":
        description += f" Shortcut artefact site {cfg.shortcut_site!r}."
    manifest = {
        "schema_version": "1.0",
        "dataset": {
            "name": f"dce_monai phantom (seed {seed})",
            "license": "CC0-1.0 (synthetic data)",
            "description": description,
            "generator": gen,
        },
        "patients": entries,
    }
    path = out / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)
    return path
