"""Physics of the phantom: tissue properties, contrast kinetics, signal equation and acquisition.

Tissue relaxation times and background kinetics (tables indexed by the tissue classes of
:mod:`.config`), the Parker population AIF, the empirical concentration model of Fan et al.,
the spoiled gradient-echo signal, the BI-RADS curve type of a signal curve, and the
acquisition effects applied to noise-free images: the multiplicative bias field, rigid motion
between phases and Rician noise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .config import FAT, FIBRO, MUSCLE, SKIN, _coords

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
_TR_S, _FLIP_DEG, _TE_T2_MS = 0.005, 15.0, 80.0


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


def _move_phases(
    rng: np.random.Generator,
    t1_sig: np.ndarray,
    phase_names: list[str],
    spacing: tuple[float, float, float],
    motion_mm: float,
) -> dict[str, tuple[float, float, float]]:
    """Rigid motion between phases: shift every phase after the first, in place.

    Each moved phase ``p`` of ``t1_sig`` (T, X, Y, Z) is displaced by ``d ~ N(0, motion_mm^2 I)``
    mm (linear interpolation, edge values repeated); returns ``{phase name: d}``, RAS mm (the
    affine is diagonal with positive spacing, so voxel axes are RAS axes).
    """
    truth: dict[str, tuple[float, float, float]] = {}
    for p in range(1, len(phase_names)):
        shift = rng.normal(0, motion_mm, 3) / np.asarray(spacing)
        t1_sig[p] = ndimage.shift(t1_sig[p], shift, order=1, mode="nearest")
        truth[phase_names[p]] = tuple(float(v) for v in shift * np.asarray(spacing))  # type: ignore[assignment]
    return truth


def _rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Rician magnitude ``sqrt((S + n_re)^2 + n_im^2)``, ``n_re, n_im ~ N(0, sigma^2)`` (real part drawn first)."""
    return np.sqrt((signal + rng.normal(0, sigma, signal.shape)) ** 2 + rng.normal(0, sigma, signal.shape) ** 2)


def _rician_phases(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`_rician` of every phase of ``signal`` (T, X, Y, Z), as float64.

    Computed phase by phase in place: the same random stream as drawing all real parts then
    all imaginary parts at once, but about a quarter of the peak memory (this matters for the
    ``full`` preset's large grids).
    """
    shape = signal.shape[1:]
    real = np.empty(signal.shape, np.float64)
    for p in range(len(signal)):
        np.add(signal[p], rng.normal(0, sigma, shape), out=real[p])
    for p in range(len(signal)):
        np.square(real[p], out=real[p])
        real[p] += rng.normal(0, sigma, shape) ** 2
        np.sqrt(real[p], out=real[p])
    return real
