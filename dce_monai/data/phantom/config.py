"""Phantom parameters: the reference cohort table, presets, validation and the case container.

Everything a simulation is configured by lives here: :class:`PhantomConfig` (with its
``demo``/``tiny``/``full`` presets and the checks of every field), the BreastDCEDL quantile
table the ``full`` preset samples from (:data:`REFERENCE_QUANTILES`, or one recomputed from a
CSV by :func:`load_reference_csv`), the voxel grid of a patient (:func:`_geometry`,
:func:`_coords`), the tissue classes of the anatomy map, and :class:`PhantomCase`, the
in-memory result of :func:`dce_monai.data.phantom.simulate_patient`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dce_monai.sequences import PRE, SUB, T2, post_name

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
#: Difficulty presets (``PhantomConfig.difficulty``): ``easy`` (well separated classes, the
#: default for smoke tests) and ``realistic`` (clinical overlap of kinetics, shape and size).
DIFFICULTIES = ("easy", "realistic")
#: Informative-channel variants (``PhantomConfig.signal``): the class signal is planted in
#: known channels only (see :func:`informative_channels`).
SIGNALS = ("washout", "t2")
#: Where the label-correlated shortcut artefact is drawn (``PhantomConfig.shortcut_site``).
SHORTCUT_SITES = ("lung", "near_lesion")
#: Reference CSV column per quantile key (the CSV is the BreastDCEDL metadata layout).
_REFERENCE_COLUMNS = ("n_xy", "n_z", "slice_thick", "xy_spacing", "n_times", "tum_vol")

# Tissue classes of the anatomy map.
AIR, FAT, FIBRO, SKIN, MUSCLE, BLOOD, LUNG, LESION = range(8)
TISSUE_NAMES = ("air", "fat", "fibroglandular", "skin", "muscle", "blood", "lung", "lesion")


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
        difficulty: ``"easy"`` (default; the classes differ clearly in kinetics, shape and
            size: hand-crafted kinetic features reach AUC ~0.99) or ``"realistic"``
            (continuous, overlapping kinetic, shape and size distributions, rim/necrotic
            enhancement in both classes, partial volume and a per-patient SNR; calibrated
            so that hand-crafted baselines land near the clinical AUC 0.80-0.90, see
            docs/phantom.md).
        signal: ``None`` (default) or an informative-channel variant from :data:`SIGNALS`:
            lesions of both classes are drawn from one distribution (shape, size, kinetics,
            rim, heterogeneity; no malignancy-linked peritumoral shell) except for one
            planted difference, ``"washout"`` (malignant lesions wash out after the second
            post phase only: the class signal is in ``T1post3``.. and absent from ``T2``,
            ``T1pre``, ``T1post1``, ``T1post2`` and ``sub``) or ``"t2"`` (malignant lesions
            have a shorter T2, 60 vs 110 ms: signal in ``T2`` only). See
            :func:`informative_channels`.
        shortcut_site: where the shortcut artefact goes when drawn: ``"lung"`` (default, a
            bright blob in the right lung, outside any lesion window) or ``"near_lesion"``
            (a bright skin-marker-like ball, radius 5 mm, centred on the skin voxel nearest
            to each malignant lesion's bounding-box centre: inside the lesion-centred field
            of view of the seed 2 bundle, outside the lesion mask).

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
    difficulty: str = "easy"
    signal: str | None = None
    shortcut_site: str = "lung"

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
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"PhantomConfig.difficulty must be one of {list(DIFFICULTIES)}, got {self.difficulty!r}.")
        if self.signal is not None and self.signal not in SIGNALS:
            raise ValueError(f"PhantomConfig.signal must be None or one of {list(SIGNALS)}, got {self.signal!r}.")
        if self.shortcut_site not in SHORTCUT_SITES:
            raise ValueError(f"PhantomConfig.shortcut_site must be one of {list(SHORTCUT_SITES)}, got {self.shortcut_site!r}.")
        if self.signal == "washout" and (self.n_post < 3 or self.sample_n_post):
            raise ValueError(
                "PhantomConfig.signal 'washout' needs a fixed protocol with n_post >= 3 (the signal lives in "
                f"T1post3 onwards), got n_post={self.n_post!r}, sample_n_post={self.sample_n_post!r}."
            )

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


def informative_channels(config: PhantomConfig) -> dict[str, list[str]]:
    """Channels that carry the planted class signal of ``config.signal`` and those that do not.

    Only defined for the informative-channel variants: with ``signal="washout"`` malignant and
    benign lesions have identical concentration curves up to the time of ``T1post2`` and the
    malignant ones then wash out, so ``T1post3``..``T1post<n_post>`` (and any difference with
    them) carry the class signal while ``T2``, ``T1pre``, ``T1post1``, ``T1post2`` and
    ``sub = T1post1 - T1pre`` carry none; with ``signal="t2"`` only ``T2`` differs.

    Raises:
        ValueError: ``config.signal`` is None.

    Example:
        >>> informative_channels(PhantomConfig.tiny(signal="washout"))["informative"]
        ['T1post3', 'T1post4']
    """
    if config.signal is None:
        raise ValueError("informative_channels: PhantomConfig.signal is None (no planted signal).")
    posts = [post_name(k) for k in range(1, config.n_post + 1)]
    every = [T2, PRE, *posts, SUB]
    informative = posts[2:] if config.signal == "washout" else [T2]
    return {"informative": informative, "uninformative": [c for c in every if c not in informative]}


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



def _coords(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates in mm relative to the volume centre, as broadcastable grids."""
    return tuple(
        ((np.arange(n, dtype=np.float32) - (n - 1) / 2) * s).reshape([-1 if i == d else 1 for i in range(3)])
        for d, (n, s) in enumerate(zip(shape, spacing))
    )

