"""Synthetic breast DCE-MRI cohort: a physically grounded digital reference object.

No real breast DCE-MRI can be shipped, so this generator is the default data of the toolkit
(demo, tests, benchmarks), and a pipeline-testing tool in its own right. Each patient is
simulated in four steps:

1. **Anatomy** (axial volume, X = left-right, Y = posterior->anterior, Z = slice): air, two
   breasts (half-ellipsoids of varied size) made of fat and fibroglandular tissue (a smoothed
   Gaussian random field thresholded at a per-patient density) under a skin shell, the chest
   wall muscle, the heart (blood pool) and the lungs.
2. **Lesions** (1-3 per patient, label map values 1..n) inside the fibroglandular/breast
   tissue. Malignant ones are mostly irregular/spiculated with fast wash-in, plateau/washout
   curves and rim enhancement; benign ones mostly round/oval, smooth and persistent, with
   a realistic overlap of the two.
3. **Contrast kinetics**: every tissue and lesion voxel gets a concentration curve from the
   empirical model of Fan et al. (2004, 2007), ``C(t) = A (1 - exp(-alpha t)) exp(-beta t)``
   (t in minutes, A in mM); the blood pool follows the Parker population AIF (Parker et al.
   2006) converted to plasma with Hct = 0.42. Signal is the spoiled gradient echo equation
   ``S = M0 sin(theta) (1 - E1) / (1 - cos(theta) E1)``, ``E1 = exp(-TR R1)``,
   ``R1 = 1/T1 + r1 C`` (r1 = 4 /mM/s), with tissue T1 at 3 T (fat 423 ms, fibroglandular
   1680 ms, tumour 1600 ms, blood 1440 ms). The T2-weighted image uses a spin-echo
   ``PD exp(-TE/T2)`` contrast with TE = 80 ms.
4. **Acquisition**: a smooth multiplicative bias field shared by all sequences of a patient,
   optional small rigid motion between phases, Rician noise at a set SNR, and storage as
   uint16 with ONE scale for all T1 phases (so relative enhancement survives).

Patient outcomes (HER2 status, 5-year recurrence) are drawn from latent tumour properties,
including a peritumoral (stromal) enhancement shell that is visible in the images, plus noise,
so they are harder to predict than malignancy. An optional label-correlated shortcut artefact
(a bright blob in the lung region) makes attention studies possible (seed 2).

Presets (:class:`PhantomConfig` ``.demo()``, ``.tiny()``, ``.full()``): ``demo`` is a fixed
128x128x32 grid at 1.6x1.6x3 mm, ``tiny`` the same field of view at 64x64x16 for fast
statistics, and ``full`` samples matrix, slices, slice thickness and the number of post phases
from quantiles of the 2,070 real patients of BreastDCEDL (Fridman et al. 2025, CC BY 4.0); see
:data:`REFERENCE_QUANTILES`, or pass a CSV of that layout (:func:`load_reference_csv`,
``generate_cohort(reference_csv=...)``, ``dce-monai phantom --reference-csv``) to recompute the
table at generation time. Tumour volumes and the HER2 prevalence come from the same table.

Example:
    >>> case = simulate_patient(0)
    >>> sorted(case.images)[:2], case.label_map.shape
    (['T1post1', 'T1post2'], (128, 128, 32))
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import ndimage

from dce_monai.sequences import PRE, T2, post_name

__all__ = [
    "REFERENCE_HER2_PREVALENCE",
    "REFERENCE_QUANTILES",
    "PhantomCase",
    "PhantomConfig",
    "add_cli_arguments",
    "cli_main",
    "curve_type_from_signal",
    "empirical_concentration",
    "generate_cohort",
    "load_reference_csv",
    "parker_aif",
    "simulate_patient",
    "spgr_signal",
    "write_case",
]

#: Quantiles (0, 10, 25, 50, 75, 90, 100 %) of the BreastDCEDL metadata (2,070 patients),
#: computed with ``numpy.quantile`` over the non-blank cells of each column of
#: ``shared/reference/BreastDCEDL_metadata.csv`` (tum_vol: 1,456 non-blank cells, mm^3).
REFERENCE_QUANTILES: dict[str, tuple[float, ...]] = {
    "n_xy": (128.0, 256.0, 256.0, 384.0, 512.0, 512.0, 512.0),
    "n_z": (44.0, 64.0, 80.0, 144.0, 174.0, 192.0, 256.0),
    "slice_thick": (0.8, 1.1, 1.2, 2.0, 2.0, 2.4, 4.0),
    "xy_spacing": (0.3125, 0.5859, 0.6641, 0.7031, 0.7812, 0.86, 1.4062),
    "n_times": (3.0, 4.0, 4.0, 5.0, 7.0, 8.0, 11.0),
    "tum_vol": (37.5, 2944.5, 5900.2, 13438.0, 29296.9, 62227.4, 495008.4),
}
_Q_LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
#: HER2-positive fraction in BreastDCEDL (mean of the 2,065 non-blank ``HER2`` cells).
REFERENCE_HER2_PREVALENCE = 0.222
#: Fixed grids of the small presets: (shape, spacing mm). Both cover 205x205x96 mm.
_PRESET_GRIDS: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "demo": ((128, 128, 32), (1.6, 1.6, 3.0)),
    "tiny": ((64, 64, 16), (3.2, 3.2, 6.0)),
}
#: Reference CSV column per quantile key (the CSV is the BreastDCEDL metadata layout).
_REFERENCE_COLUMNS = ("n_xy", "n_z", "slice_thick", "xy_spacing", "n_times", "tum_vol")

# Tissue classes of the anatomy map.
AIR, FAT, FIBRO, SKIN, MUSCLE, BLOOD, LUNG, LESION = range(8)
TISSUE_NAMES = ("air", "fat", "fibroglandular", "skin", "muscle", "blood", "lung", "lesion")
# T1 (ms, 3 T), T2 (ms), proton density (relative); literature values listed in docs/phantom.md.
_T1 = np.array([1e9, 423.0, 1680.0, 1000.0, 1420.0, 1440.0, 1200.0, 1600.0])
_T2 = np.array([1.0, 154.0, 71.0, 50.0, 50.0, 250.0, 30.0, 90.0])
_PD = np.array([0.0, 0.9, 0.8, 0.6, 0.7, 0.9, 0.08, 0.85])
# Background-tissue kinetics (A mM, alpha /min, beta /min) of the empirical model.
_TISSUE_KINETICS = {
    FAT: (0.01, 0.5, 0.0),
    FIBRO: (0.06, 0.35, 0.0),
    SKIN: (0.08, 1.0, 0.02),
    MUSCLE: (0.12, 1.2, 0.02),
}
# Lesion curve archetypes (alpha, beta) from Fan et al.; A drawn separately.
_ARCHETYPES = {"washout": (3.0, 0.08), "plateau": (2.0, 0.01), "persistent": (0.4, 0.0)}
# P(curve archetype | class): the overlap between classes is deliberate.
_CURVE_MIX = {
    1: {"washout": 0.55, "plateau": 0.30, "persistent": 0.15},
    0: {"washout": 0.12, "plateau": 0.23, "persistent": 0.65},
}
_R1_RELAXIVITY = 4.0  # /mM/s
_HER2_NOISE_SD = 1.6  # SD of the unexplained part of the HER2 latent
_TR_S, _FLIP_DEG, _TE_T2_MS = 0.005, 15.0, 80.0


@dataclass(frozen=True)
class PhantomConfig:
    """Parameters of one simulated patient.

    Attributes:
        size: ``"demo"`` (128x128x32 voxels at 1.6x1.6x3 mm: CPU-friendly, lesions 4-20
            voxels across), ``"tiny"`` (64x64x16 at 3.2x3.2x6 mm, same field of view: for
            fast statistical tests, lesions only 2-10 voxels across) or ``"full"`` (matrix,
            slices and spacing sampled from the real BreastDCEDL distribution).
        n_post: number of post-contrast phases (real protocols have 2-7).
        first_post_s: time of the first post-contrast phase after injection, s.
        post_interval_s: time between post-contrast phases, s.
        snr: signal-to-noise ratio of fibroglandular tissue in the pre-contrast image.
        bias_strength: peak-to-mean amplitude of the log bias field (0 = none).
        motion_mm: standard deviation of the rigid shift between phases, mm (0 = none).
        lesions: inclusive range of lesions per patient.
        malignant_fraction: probability that a lesion is malignant.
        field_strength_t: field strength written to the manifest (tissue T1s are 3 T values).
        storage_max: value the brightest T1 voxel of a patient is scaled to in uint16.
        sample_n_post: draw the number of post phases per patient from the reference
            ``n_times`` distribution (minus the pre phase, clipped to 2-7) instead of
            ``n_post``; :meth:`full` turns it on.
        her2_prevalence: P(HER2-positive) among patients with a malignant lesion; the HER2
            logit threshold is set so that this is the expected prevalence.
        reference_quantiles: quantile table (same keys and levels as
            :data:`REFERENCE_QUANTILES`) to sample geometry, protocol and tumour volume
            from; ``None`` uses the embedded BreastDCEDL table. See :func:`load_reference_csv`.

    Example:
        >>> PhantomConfig.demo(n_post=2).times_s
        {'T1pre': 0.0, 'T1post1': 90.0, 'T1post2': 180.0}
    """

    size: str = "demo"
    n_post: int = 4
    first_post_s: float = 90.0
    post_interval_s: float = 90.0
    snr: float = 30.0
    bias_strength: float = 0.3
    motion_mm: float = 0.0
    lesions: tuple[int, int] = (1, 3)
    malignant_fraction: float = 0.5
    field_strength_t: float = 3.0
    storage_max: int = 4000
    sample_n_post: bool = False
    her2_prevalence: float = REFERENCE_HER2_PREVALENCE
    reference_quantiles: dict[str, tuple[float, ...]] | None = None

    @classmethod
    def demo(cls, **overrides: Any) -> PhantomConfig:
        """Demo preset: fixed 128x128x32 grid at 1.6x1.6x3 mm, seed 1's protocol."""
        return cls(**{"size": "demo", **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> PhantomConfig:
        """Tiny preset: fixed 64x64x16 grid at 3.2x3.2x6 mm (fast statistics in tests)."""
        return cls(**{"size": "tiny", **overrides})

    @classmethod
    def full(cls, **overrides: Any) -> PhantomConfig:
        """Full preset: grid, slice thickness and number of post phases from the reference cohort."""
        return cls(**{"size": "full", "sample_n_post": True, **overrides})

    def __post_init__(self) -> None:
        if self.size not in ("tiny", "demo", "full"):
            raise ValueError(f"PhantomConfig.size must be 'tiny', 'demo' or 'full', got {self.size!r}.")
        if isinstance(self.n_post, bool) or not isinstance(self.n_post, int) or not 1 <= self.n_post <= 12:
            raise ValueError(f"PhantomConfig.n_post must be an integer in [1, 12], got {self.n_post!r}.")
        if not (self.first_post_s > 0 and self.post_interval_s > 0):
            raise ValueError(
                "PhantomConfig.first_post_s and post_interval_s must be > 0 s, got "
                f"{self.first_post_s!r} and {self.post_interval_s!r}."
            )
        if not self.snr > 0:
            raise ValueError(f"PhantomConfig.snr must be > 0, got {self.snr!r}.")
        if not 0 <= self.bias_strength < 1:
            raise ValueError(f"PhantomConfig.bias_strength must be in [0, 1), got {self.bias_strength!r}.")
        if self.motion_mm < 0:
            raise ValueError(f"PhantomConfig.motion_mm must be >= 0, got {self.motion_mm!r}.")
        lo, hi = self.lesions
        if not 1 <= lo <= hi <= 5:
            raise ValueError(f"PhantomConfig.lesions must be (lo, hi) with 1 <= lo <= hi <= 5, got {self.lesions!r}.")
        if not 0 <= self.malignant_fraction <= 1:
            raise ValueError(
                f"PhantomConfig.malignant_fraction must be in [0, 1], got {self.malignant_fraction!r}."
            )
        if not 100 <= self.storage_max <= 60000:
            raise ValueError(f"PhantomConfig.storage_max must be in [100, 60000], got {self.storage_max!r}.")
        if not 0 < self.her2_prevalence < 1:
            raise ValueError(f"PhantomConfig.her2_prevalence must be in (0, 1), got {self.her2_prevalence!r}.")
        if self.reference_quantiles is not None:
            _check_quantile_table(self.reference_quantiles)

    @property
    def quantiles(self) -> dict[str, tuple[float, ...]]:
        """The quantile table in use (``reference_quantiles`` or the embedded one)."""
        return self.reference_quantiles if self.reference_quantiles is not None else REFERENCE_QUANTILES

    @property
    def times_s(self) -> dict[str, float]:
        """Acquisition time of each T1 phase after injection, s (pre-contrast at 0)."""
        return self.times_for(self.n_post)

    def times_for(self, n_post: int) -> dict[str, float]:
        """Acquisition times (s) of the pre phase and ``n_post`` post phases of this protocol."""
        t = {PRE: 0.0}
        for k in range(1, n_post + 1):
            t[post_name(k)] = self.first_post_s + (k - 1) * self.post_interval_s
        return t


def _check_quantile_table(table: Any) -> None:
    if not isinstance(table, dict):
        raise TypeError(f"PhantomConfig.reference_quantiles must be a dict, got {type(table).__name__}.")
    missing = [k for k in _REFERENCE_COLUMNS if k not in table]
    if missing:
        raise ValueError(f"PhantomConfig.reference_quantiles lacks keys {missing}; expected {list(_REFERENCE_COLUMNS)}.")
    for k in _REFERENCE_COLUMNS:
        v = np.asarray(table[k], dtype=np.float64)
        if v.shape != (len(_Q_LEVELS),) or not np.all(np.isfinite(v)) or np.any(np.diff(v) < 0) or v[0] <= 0:
            raise ValueError(
                f"PhantomConfig.reference_quantiles[{k!r}] must be {len(_Q_LEVELS)} positive non-decreasing "
                f"values (quantiles {_Q_LEVELS}), got {table[k]!r}."
            )


def load_reference_csv(path: str | Path) -> tuple[dict[str, tuple[float, ...]], float]:
    """Quantile table and HER2 prevalence of a reference cohort CSV (BreastDCEDL metadata layout).

    Each column of ``n_xy, n_z, slice_thick, xy_spacing, n_times, tum_vol`` is summarised by
    ``numpy.quantile`` at levels 0, 10, 25, 50, 75, 90, 100 % over its non-blank cells (this is
    how :data:`REFERENCE_QUANTILES` was computed); the HER2 prevalence is the mean of the
    non-blank ``HER2`` cells. The standard library ``csv`` reader is used so that no data-frame
    library is needed.

    Args:
        path: CSV file with a header row containing the columns above.

    Returns:
        ``(quantiles, her2_prevalence)``, ready for ``PhantomConfig(reference_quantiles=...,
        her2_prevalence=...)``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if a column is missing, holds a non-numeric cell, or has no value.

    Example:
        >>> q, p = load_reference_csv("shared/reference/BreastDCEDL_metadata.csv")  # doctest: +SKIP
        >>> q["n_z"][3], round(p, 3)  # doctest: +SKIP
        (144.0, 0.222)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference_csv {str(path)!r} does not exist.")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in (*_REFERENCE_COLUMNS, "HER2") if c not in header]
        if missing:
            raise ValueError(f"reference_csv {str(path)!r} lacks columns {missing}; its header is {header}.")
        cols: dict[str, list[float]] = {c: [] for c in (*_REFERENCE_COLUMNS, "HER2")}
        for line, row in enumerate(reader, start=2):
            for c, values in cols.items():
                cell = (row.get(c) or "").strip()
                if not cell:
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    raise ValueError(
                        f"reference_csv {str(path)!r} line {line}, column {c!r}: expected a number, got {cell!r}."
                    ) from None
    empty = [c for c, v in cols.items() if not v]
    if empty:
        raise ValueError(f"reference_csv {str(path)!r} has no values in columns {empty}.")
    table = {c: tuple(float(v) for v in np.quantile(cols[c], _Q_LEVELS)) for c in _REFERENCE_COLUMNS}
    her2 = float(np.mean(cols["HER2"]))
    if not 0 < her2 < 1:
        raise ValueError(f"reference_csv {str(path)!r}: HER2 prevalence must be in (0, 1), got {her2!r}.")
    _check_quantile_table(table)
    return table, her2


@dataclass
class PhantomCase:
    """One simulated patient, in memory.

    Attributes:
        patient_id: identifier.
        images: uint16 volumes (X, Y, Z) keyed T2, T1pre, T1post1..k (no ``sub``).
        label_map: lesion label map, 0 = background, lesion k = k (uint8).
        breast_mask: 1 inside the breasts (skin included), uint8.
        bias_field: the true multiplicative bias field (float32, mean log 0 in the body).
        tissue_map: tissue class per voxel (see ``TISSUE_NAMES``), uint8.
        affine: 4x4 RAS voxel-to-mm affine shared by every volume.
        spacing_mm: voxel size (x, y, z), mm.
        times_s: acquisition time of each T1 phase, s.
        lesions: one dict per lesion (lesion_id, label_value, malignant, curve_type,
            volume_mm3, centre_vox, kinetics, mean_signal (noise-free mean curve)).
        labels: patient labels (malignant, her2, recurrence_event, recurrence_days).
        shortcut_present: whether the label-correlated artefact was drawn.
        heart_signal / breast_signal: noise-free mean T1 curves of blood and breast tissue.
        field_strength_t: field strength of the simulated scanner, T.
        latent: hidden patient properties the outcomes were drawn from (``stromal``: the
            standard-normal peritumoral stromal activity), for ideal-feature baselines.
        motion_shift_mm: the true rigid shift of each moved phase (``T1post1``.. when
            ``motion_mm > 0``; empty otherwise), RAS mm: the phase's content is displaced by
            this vector relative to ``T1pre`` (and to ``label_map`` / ``breast_mask``).
    """

    patient_id: str
    images: dict[str, np.ndarray]
    label_map: np.ndarray
    breast_mask: np.ndarray
    bias_field: np.ndarray
    tissue_map: np.ndarray
    affine: np.ndarray
    spacing_mm: tuple[float, float, float]
    times_s: dict[str, float]
    lesions: list[dict[str, Any]]
    labels: dict[str, Any]
    shortcut_present: bool
    heart_signal: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    breast_signal: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    field_strength_t: float = 3.0
    latent: dict[str, float] = field(default_factory=dict)
    motion_shift_mm: dict[str, tuple[float, float, float]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- physics


def parker_aif(t_min: np.ndarray, hct: float = 0.42) -> np.ndarray:
    """Parker et al. (2006) population AIF, converted to plasma concentration (mM).

    ``Cb(t) = sum_i A_i/(sigma_i sqrt(2 pi)) exp(-(t-T_i)^2/(2 sigma_i^2))
    + alpha exp(-beta t)/(1 + exp(-s (t - tau)))``, t in minutes; ``Cp = Cb/(1 - Hct)``.
    """
    t = np.asarray(t_min, dtype=np.float64)
    a1, a2, t1, t2, s1, s2 = 0.809, 0.330, 0.17046, 0.365, 0.0563, 0.132
    alpha, beta, s, tau = 1.050, 0.1685, 38.078, 0.483
    g1 = a1 / (s1 * math.sqrt(2 * math.pi)) * np.exp(-((t - t1) ** 2) / (2 * s1**2))
    g2 = a2 / (s2 * math.sqrt(2 * math.pi)) * np.exp(-((t - t2) ** 2) / (2 * s2**2))
    cb = g1 + g2 + alpha * np.exp(-beta * t) / (1 + np.exp(-s * (t - tau)))
    return np.where(t > 0, cb, 0.0) / (1 - hct)


def empirical_concentration(t_min: np.ndarray, a: Any, alpha: Any, beta: Any) -> np.ndarray:
    """Fan et al. empirical model ``C(t) = A (1 - exp(-alpha t)) exp(-beta t)`` (q = 1).

    Broadcasts: scalar parameters give (T,); parameter arrays of shape (N,) give (N, T).
    """
    t = np.asarray(t_min, dtype=np.float64)
    a, alpha, beta = (np.asarray(v, dtype=np.float64)[..., None] for v in (a, alpha, beta))  # (..., 1)
    return a * (1 - np.exp(-alpha * t)) * np.exp(-beta * t)


def spgr_signal(m0: Any, t1_ms: Any, conc_mm: Any, tr_s: float = _TR_S, flip_deg: float = _FLIP_DEG) -> np.ndarray:
    """Spoiled gradient-echo signal ``M0 sin(theta)(1 - E1)/(1 - cos(theta) E1)``.

    ``E1 = exp(-TR R1)``, ``R1 = 1000/T1 + r1 C`` (T1 in ms, C in mM, r1 = 4 /mM/s).
    """
    r1 = 1000.0 / np.asarray(t1_ms, dtype=np.float64) + _R1_RELAXIVITY * np.asarray(conc_mm, dtype=np.float64)
    e1 = np.exp(-tr_s * r1)
    th = math.radians(flip_deg)
    return np.asarray(m0) * math.sin(th) * (1 - e1) / (1 - math.cos(th) * e1)


def curve_type_from_signal(signal: np.ndarray, early: int = 1) -> str:
    """BI-RADS delayed-phase curve type of a mean signal curve (pre first).

    ``(S_last - S_early)/S_early``: > +10 % persistent, < -10 % washout, else plateau.
    """
    s = np.asarray(signal, dtype=np.float64)
    change = (s[-1] - s[early]) / s[early]
    if change > 0.10:
        return "persistent"
    if change < -0.10:
        return "washout"
    return "plateau"


# ----------------------------------------------------------------------------- anatomy


def _quantile_sample(rng: np.random.Generator, key: str, table: dict[str, tuple[float, ...]] | None = None) -> float:
    """Inverse-CDF draw, piecewise linear between the tabulated quantiles."""
    return float(np.interp(rng.random(), _Q_LEVELS, (table or REFERENCE_QUANTILES)[key]))


def _geometry(cfg: PhantomConfig, rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    if cfg.size in _PRESET_GRIDS:
        return _PRESET_GRIDS[cfg.size]
    q = cfg.quantiles
    n_xy = max(32, int(round(_quantile_sample(rng, "n_xy", q) / 32) * 32))
    n_z = int(_quantile_sample(rng, "n_z", q))
    # keep the field of view realistic (260-400 mm) whatever matrix was drawn
    fov = rng.uniform(260.0, 400.0)
    sxy = float(np.clip(fov / n_xy, 0.5, 1.5))
    sz = _quantile_sample(rng, "slice_thick", q)
    n_z = int(np.clip(n_z, 48, int(200 / sz)))
    return (n_xy, n_xy, n_z), (sxy, sxy, float(sz))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: Any) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field (white noise through a Gaussian filter)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-8)


def _coords(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates in mm relative to the volume centre, as broadcastable grids."""
    return tuple(
        ((np.arange(n, dtype=np.float32) - (n - 1) / 2) * s).reshape([-1 if i == d else 1 for i in range(3)])
        for d, (n, s) in enumerate(zip(shape, spacing))
    )


def _anatomy(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    x, y, z = _coords(shape, spacing)
    fx, fy, fz = (n * s for n, s in zip(shape, spacing))
    tissue = np.zeros(shape, np.uint8)
    y_chest = -0.05 * fy + rng.uniform(-0.03, 0.03) * fy  # chest wall surface (mm)
    # thorax: a wide ellipse behind the chest wall, through all slices
    thorax = (x / (0.46 * fx)) ** 2 + ((y - y_chest) / (0.42 * fy)) ** 2 <= 1
    thorax = thorax & (y <= y_chest) & (np.abs(z) <= fz)
    tissue[np.broadcast_to(thorax, shape)] = MUSCLE
    inner = (x / (0.40 * fx)) ** 2 + ((y - y_chest + 12) / (0.36 * fy)) ** 2 <= 1
    inner = np.broadcast_to(inner & (y <= y_chest - 12), shape)
    tissue[inner] = FAT
    lungs = np.zeros(shape, bool)
    for side in (-1, 1):
        lungs |= (
            ((x - side * 0.2 * fx) / (0.15 * fx)) ** 2
            + ((y - y_chest + 0.22 * fy) / (0.15 * fy)) ** 2
            + (z / (0.7 * fz + 20)) ** 2
            <= 1
        )
    tissue[lungs & inner] = LUNG
    heart = ((x + 0.02 * fx) / (0.11 * fx)) ** 2 + ((y - y_chest + 0.15 * fy) / (0.1 * fy)) ** 2 + (z / (0.45 * fz + 15)) ** 2 <= 1
    tissue[np.broadcast_to(heart, shape) & inner] = BLOOD
    # breasts: half-ellipsoids anterior to the chest wall, sizes varying per patient
    breast = np.zeros(shape, bool)
    sep = rng.uniform(0.2, 0.26) * fx
    for side in (-1, 1):
        rx = rng.uniform(0.13, 0.2) * fx
        ry = min(rng.uniform(0.2, 0.4) * fy, 0.5 * fy + (-y_chest) - 6)
        rz = rng.uniform(0.35, 0.48) * fz
        e = ((x - side * sep) / rx) ** 2 + ((y - y_chest) / ry) ** 2 + (z / rz) ** 2 <= 1
        breast |= e & (y > y_chest)
    skin = breast & ~ndimage.binary_erosion(breast, iterations=1)
    density = rng.uniform(0.15, 0.6)  # fibroglandular fraction of the breast
    sigma = tuple(float(np.clip(4.0 / s, 0.7, 6)) for s in spacing)
    fg_field = _smooth_field(rng, shape, sigma)
    interior = breast & ~skin
    thr = np.quantile(fg_field[interior], 1 - density) if interior.any() else 0.0
    # glandular tissue concentrates near the centre of each breast
    tissue[interior] = FAT
    tissue[interior & (fg_field > thr)] = FIBRO
    tissue[skin] = SKIN
    info = {"y_chest_mm": float(y_chest), "density": float(density)}
    return tissue, breast.astype(np.uint8), info


def _bias_field(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float], body: np.ndarray, strength: float) -> np.ndarray:
    if strength == 0:
        return np.ones(shape, np.float32)
    x, y, z = _coords(shape, spacing)
    fx, fy, fz = (n * s for n, s in zip(shape, spacing))
    u, v, w = x / fx, y / fy, z / fz
    c = rng.normal(0, 1, 6)
    logb = c[0] * u + c[1] * v + 0.5 * c[2] * w + c[3] * u * v + c[4] * (u**2 - 1 / 12) + c[5] * (v**2 - 1 / 12)
    logb = np.broadcast_to(logb, shape).astype(np.float32)
    peak = np.abs(logb[body]).max() if body.any() else 1.0
    logb = logb * (strength / max(float(peak), 1e-6))
    logb -= logb[body].mean() if body.any() else 0.0
    return np.exp(logb).astype(np.float32)


# ----------------------------------------------------------------------------- lesions


def _place_lesions(
    rng: np.random.Generator,
    tissue: np.ndarray,
    breast: np.ndarray,
    spacing: tuple[float, float, float],
    n: int,
    malignant_fraction: float,
    table: dict[str, tuple[float, ...]] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    shape = tissue.shape
    label_map = np.zeros(shape, np.uint8)
    dist_in = ndimage.distance_transform_edt(breast, sampling=spacing)
    lesions: list[dict[str, Any]] = []
    centres_mm: list[np.ndarray] = []
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float32) * np.asarray(spacing, np.float32)
    for _ in range(n):
        malignant = int(rng.random() < malignant_fraction)
        # volume from the real tumour-volume distribution, shrunk to fit a small breast;
        # benign lesions are smaller on average, with overlap
        vol = _quantile_sample(rng, "tum_vol", table) * (1.0 if malignant else 0.45)
        radius = float(np.clip((3 * vol / (4 * math.pi)) ** (1 / 3), 4.0, 16.0))
        for _attempt in range(60):
            cand = np.argwhere((dist_in > radius + 3) & (tissue != SKIN))
            if len(cand) == 0:
                radius *= 0.8
                continue
            c = cand[rng.integers(len(cand))] * np.asarray(spacing)
            if all(np.linalg.norm(c - o) > radius + r + 4 for o, r in centres_mm):
                break
        else:
            continue
        centres_mm.append((c, radius))  # type: ignore[arg-type]
        d = grid - c.astype(np.float32)
        axes = rng.uniform(0.75, 1.25, 3)
        rot = _random_rotation(rng)
        q = (d @ rot.T) / (radius * axes.astype(np.float32))
        r = np.sqrt((q**2).sum(-1))
        # shape: irregular (malignant, mostly) = strong low-frequency radial modulation + spicules
        irregular = rng.random() < (0.8 if malignant else 0.2)
        sig = tuple(float(np.clip(0.35 * radius / s, 0.6, 4)) for s in spacing)
        noise = _smooth_field(rng, shape, sig)
        amp = 0.35 if irregular else 0.06
        inside = (r + amp * noise) < 1.0
        if irregular:
            for _s in range(int(rng.integers(3, 7))):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                length = radius * rng.uniform(0.8, 1.6)
                t = np.linspace(0.8 * radius, 0.8 * radius + length, 24)
                pts = c + t[:, None] * direction
                idx = np.round(pts / np.asarray(spacing)).astype(int)
                ok = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
                idx = idx[ok]
                inside[tuple(idx.T)] = True
        inside &= breast.astype(bool) & (label_map == 0) & (tissue != SKIN)
        if inside.sum() < 8:
            centres_mm.pop()
            continue
        value = len(lesions) + 1
        label_map[inside] = value
        archetype = rng.choice(list(_CURVE_MIX[malignant]), p=list(_CURVE_MIX[malignant].values()))
        alpha0, beta0 = _ARCHETYPES[str(archetype)]
        kin = {
            "A_mM": float(rng.uniform(0.25, 0.5) if malignant else rng.uniform(0.12, 0.35)),
            "alpha_per_min": float(alpha0 * rng.lognormal(0, 0.2)),
            "beta_per_min": float(beta0 * rng.lognormal(0, 0.25)),
            "rim": bool(malignant and rng.random() < 0.6),
            "heterogeneity": float(rng.uniform(0.25, 0.5) if malignant else rng.uniform(0.05, 0.2)),
        }
        lesions.append(
            {
                "label_value": value,
                "malignant": malignant,
                "archetype": str(archetype),
                "irregular": bool(irregular),
                "radius_mm": radius,
                "centre_vox": [int(v) for v in np.round(c / np.asarray(spacing))],
                "volume_mm3": float(inside.sum() * np.prod(spacing)),
                "kinetics": kin,
            }
        )
    return label_map, lesions


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.astype(np.float32)


# ----------------------------------------------------------------------------- simulation


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
    label_map, lesions = _place_lesions(rng, tissue, breast, spacing, n_les, cfg.malignant_fraction, cfg.quantiles)
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
        dist = ndimage.distance_transform_edt(m, sampling=spacing)[m]
        depth = dist / max(dist.max(), 1e-6)
        scale = np.ones_like(depth)
        if k["rim"]:
            scale = 1.25 - 0.75 * depth  # bright rim, darker (necrotic) core
        scale = scale * np.clip(1 + k["heterogeneity"] * rng.normal(size=depth.shape), 0.2, None)
        conc[:, m] = base[:, None] * scale[None, :].astype(np.float32)
        if les["malignant"]:
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
    t2_sig = (_PD[tissue] * np.exp(-_TE_T2_MS / _T2[tissue])).astype(np.float32)

    shortcut_present = bool(malignant_any and rng.random() < shortcut)
    if shortcut_present:
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
        phase_names = list(times)
        for p in range(1, n_t):
            shift = rng.normal(0, cfg.motion_mm, 3) / np.asarray(spacing)
            t1_sig[p] = ndimage.shift(t1_sig[p], shift, order=1, mode="nearest")
            # the affine is diagonal with positive spacing: voxel axes are RAS axes
            motion_truth[phase_names[p]] = tuple(float(v) for v in shift * np.asarray(spacing))  # type: ignore[assignment]

    # noise-free mean curves for tests and docs
    les_curves = {les["label_value"]: t1_sig[:, label_map == les["label_value"]].mean(1) for les in lesions}
    heart_curve = t1_sig[:, tissue == BLOOD].mean(1) if (tissue == BLOOD).any() else np.zeros(n_t)
    breast_curve = t1_sig[:, tissue == FIBRO].mean(1) if (tissue == FIBRO).any() else np.zeros(n_t)

    # acquisition: bias, Rician noise, one uint16 scale for all T1 phases
    ref = float(np.median(t1_sig[0][tissue == FIBRO])) if (tissue == FIBRO).any() else float(t1_sig[0][body].mean())
    sigma = ref / cfg.snr
    # Rician magnitude sqrt((S + n_re)^2 + n_im^2), computed phase by phase in place: the same
    # random stream as drawing all real parts then all imaginary parts at once, but about a
    # quarter of the peak memory (this matters for the ``full`` preset's large grids).
    t1_obs = t1_sig * bias[None]
    del t1_sig, conc
    real = np.empty(t1_obs.shape, np.float64)
    for p in range(n_t):
        np.add(t1_obs[p], rng.normal(0, sigma, shape), out=real[p])
    for p in range(n_t):
        np.square(real[p], out=real[p])
        real[p] += rng.normal(0, sigma, shape) ** 2
        np.sqrt(real[p], out=real[p])
    t1_obs = real
    scale = cfg.storage_max / max(float(t1_obs.max()), 1e-12)
    t2_ref = float(np.median(t2_sig[tissue == FIBRO])) if (tissue == FIBRO).any() else 1.0
    t2_obs = t2_sig * bias
    s2 = t2_ref / cfg.snr
    t2_obs = np.sqrt((t2_obs + rng.normal(0, s2, shape)) ** 2 + rng.normal(0, s2, shape) ** 2)
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


def _save_nifti(arr: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(arr, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


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
        _save_nifti(arr, case.affine, out / rel)
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
        _save_nifti(arr, case.affine, out / rel)
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
    manifest = {
        "schema_version": "1.0",
        "dataset": {
            "name": f"dce_monai phantom (seed {seed})",
            "license": "CC0-1.0 (synthetic data)",
            "description": "Synthetic breast DCE-MRI cohort from dce_monai.data.phantom.",
            "generator": gen,
        },
        "patients": entries,
    }
    path = out / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- CLI


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

