"""Anatomy of the phantom: body, breasts, fibroglandular tissue and lesions.

:func:`_anatomy` draws the tissue map of one patient (thorax, lungs, heart, two breasts of
fat and fibroglandular tissue under a skin shell); :func:`_place_lesions` places 1-5
lesions in the breasts with a malignancy-dependent shape (round/oval or irregular with
spicules), size (from the reference tumour-volume distribution) and kinetics: discrete
archetypes for the ``easy`` preset, overlapping continuous draws for ``realistic``
(:func:`_realistic_kinetics`), one class-free distribution plus a planted parameter for the
informative-channel variants (:func:`_signal_kinetics`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .config import BLOOD, FAT, FIBRO, LUNG, MUSCLE, SKIN, _coords, _quantile_sample
from .physics import _ARCHETYPES, _CURVE_MIX


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: Any) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field (white noise through a Gaussian filter)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-8)



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


def _place_lesions(
    rng: np.random.Generator,
    tissue: np.ndarray,
    breast: np.ndarray,
    spacing: tuple[float, float, float],
    n: int,
    malignant_fraction: float,
    table: dict[str, tuple[float, ...]] | None = None,
    mode: str = "easy",
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Place ``n`` lesions in the breasts; return the label map and one property dict per lesion.

    ``mode`` selects how shape, size and kinetics depend on malignancy: ``"easy"`` (clear class
    differences; the historical draws, unchanged), ``"realistic"`` (overlapping continuous
    distributions, see :func:`_realistic_lesion`) or a planted-signal variant ``"washout"`` /
    ``"t2"`` (one class-free distribution, see :func:`_signal_lesion`; the class difference is
    added by the caller).
    """
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
        vol = _quantile_sample(rng, "tum_vol", table) * _VOLUME_FACTOR[mode][malignant]
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
        if mode == "easy":
            irregular = rng.random() < (0.8 if malignant else 0.2)
            amp, spiculated = (0.35 if irregular else 0.06), irregular
        else:
            # margin irregularity on a continuum: amp 0.04 (smooth) .. 0.40 (lobulated/irregular)
            a, b = _MARGIN_BETA[mode][malignant]
            amp = 0.04 + 0.36 * float(rng.beta(a, b))
            spiculated = bool(rng.random() < _SPICULE_P[mode][malignant])
            irregular = bool(amp > 0.2 or spiculated)
        sig = tuple(float(np.clip(0.35 * radius / s, 0.6, 4)) for s in spacing)
        noise = _smooth_field(rng, shape, sig)
        inside = (r + amp * noise) < 1.0
        if spiculated:
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
        if mode == "easy":
            archetype = rng.choice(list(_CURVE_MIX[malignant]), p=list(_CURVE_MIX[malignant].values()))
            alpha0, beta0 = _ARCHETYPES[str(archetype)]
            kin = {
                "A_mM": float(rng.uniform(0.25, 0.5) if malignant else rng.uniform(0.12, 0.35)),
                "alpha_per_min": float(alpha0 * rng.lognormal(0, 0.2)),
                "beta_per_min": float(beta0 * rng.lognormal(0, 0.25)),
                "rim": bool(malignant and rng.random() < 0.6),
                "heterogeneity": float(rng.uniform(0.25, 0.5) if malignant else rng.uniform(0.05, 0.2)),
            }
        elif mode == "realistic":
            kin = _realistic_kinetics(rng, malignant)
            archetype = _archetype_of(kin["beta_per_min"])
        else:
            kin = _signal_kinetics(rng, malignant, mode)
            archetype = "washout" if (mode == "washout" and malignant) else "plateau"
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


# ----------------------------------------------------------------------------- non-easy lesion draws

#: Volume factor per mode and class (index 0 benign, 1 malignant) applied to the reference
#: tumour-volume draw: easy shrinks benign lesions to 45 %, realistic to 85 % (benign lesions
#: are smaller on average, with a wide overlap), the planted-signal variants use one factor.
_VOLUME_FACTOR = {"easy": (0.45, 1.0), "realistic": (0.85, 1.0), "washout": (0.85, 0.85), "t2": (0.85, 0.85)}
#: Beta(a, b) of the margin-irregularity draw per mode and class: malignant margins are more
#: often irregular (mean 0.54 vs 0.43 of the 0.04-0.40 range), but the two overlap widely.
_MARGIN_BETA = {"realistic": ((1.8, 2.4), (2.2, 1.9)), "washout": ((1.8, 2.2), (1.8, 2.2)), "t2": ((1.8, 2.2), (1.8, 2.2))}
#: P(spiculated) per mode and class (benign: radial scar, fat necrosis; malignant: not all).
_SPICULE_P = {"realistic": (0.20, 0.32), "washout": (0.25, 0.25), "t2": (0.25, 0.25)}


def _realistic_kinetics(rng: np.random.Generator, malignant: int) -> dict[str, Any]:
    """Continuous, overlapping kinetic parameters of the ``realistic`` preset.

    A latent kinetic aggressiveness ``z ~ N(+0.8, 1)`` (malignant) or ``N(-0.8, 1)`` (benign)
    sets both curve parameters: wash-in ``alpha = 1.3 exp(0.55 z + N(0, 0.3^2))`` /min and
    washout ``beta = 0.04 + 0.045 z + N(0, 0.015^2)`` /min (floored at -0.02: a slowly rising
    curve). ``z`` itself would separate the classes with AUC ``Phi(1.6 / sqrt 2) = 0.87``; the
    image features see it through the extra parameter noise and the acquisition. Peak uptake ``A`` ~ U(0.15,
    0.45) mM whatever the class. With the default protocol (T1post1 at 1.5 min, T1post4 at
    6 min) the measured BI-RADS curve types of 100 demo patients come out 10/30/60 %
    persistent/plateau/washout for malignant lesions (Kuhl et al. 1999, Radiology 211:101:
    9/34/57 %) and 63/31/6 % for benign ones (Kuhl: 83/12/6 %; wider overlap here). Rim enhancement with a darker
    (necrotic) core occurs in 45 % of malignant and 15 % of benign lesions; heterogeneity
    overlaps (0.15-0.45 vs 0.05-0.35).
    """
    z = rng.normal(0.8 if malignant else -0.8, 1.0)
    alpha = 1.3 * math.exp(0.55 * z + rng.normal(0, 0.3))
    beta = max(0.04 + 0.045 * z + rng.normal(0, 0.015), -0.02)
    a = rng.uniform(0.15, 0.45)
    rim = rng.random() < (0.45 if malignant else 0.15)
    het = rng.uniform(0.15, 0.45) if malignant else rng.uniform(0.05, 0.35)
    return {"A_mM": float(a), "alpha_per_min": float(alpha), "beta_per_min": float(beta),
            "rim": bool(rim), "heterogeneity": float(het), "aggressiveness": float(z)}


def _signal_kinetics(rng: np.random.Generator, malignant: int, mode: str) -> dict[str, Any]:
    """Class-free kinetics of the planted-signal variants, plus the planted parameter.

    Every lesion draws ``A`` ~ U(0.2, 0.35) mM, ``alpha`` = 1.5 LN(0, 0.4) /min, ``beta`` = 0
    (a plateau/persistent base curve), rim with P 0.3, heterogeneity ~ U(0.1, 0.4), whatever
    its class. The planted parameter, drawn for every lesion (so both classes consume the same
    random numbers), is used for one class only: ``late_washout_per_min`` (``washout``:
    malignant 0.15-0.3 /min, benign 0) applied after the time of ``T1post2``, or ``t2_ms``
    (``t2``: malignant 60 ms, benign 110 ms, times LN(0, 0.08)).
    """
    kin: dict[str, Any] = {
        "A_mM": float(rng.uniform(0.2, 0.35)),
        "alpha_per_min": float(1.5 * rng.lognormal(0, 0.4)),
        "beta_per_min": 0.0,
        "rim": bool(rng.random() < 0.3),
        "heterogeneity": float(rng.uniform(0.1, 0.4)),
    }
    planted = float(rng.uniform(0.15, 0.3))
    spread = float(rng.lognormal(0, 0.08))
    if mode == "washout":
        kin["late_washout_per_min"] = planted if malignant else 0.0
    else:
        kin["t2_ms"] = (60.0 if malignant else 110.0) * spread
    return kin


def _archetype_of(beta: float) -> str:
    """Nominal curve class of a realistic lesion from its washout rate (the measured
    ``curve_type`` comes from the signal): beta > 0.045 /min washout, > 0.01 plateau."""
    if beta > 0.045:
        return "washout"
    if beta > 0.01:
        return "plateau"
    return "persistent"


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.astype(np.float32)
